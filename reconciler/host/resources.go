package host

import (
	"sort"

	"github.com/nodevirt/nodevirt/nodeconfig"
)

// Resource is one permitted PCI resource of the node, as KubeVirt's device
// manager advertises it: the devices a selector matches that are bound to
// vfio-pci (any driver for an external provider's resource).
type Resource struct {
	Name     string `json:"name"`
	Selector string `json:"selector,omitempty"`
	External bool   `json:"externalResourceProvider,omitempty"`
	// Devices are every device the selector matches; Allocatable the ones
	// that count.
	Devices     []Device `json:"devices,omitempty"`
	Allocatable []Device `json:"allocatable,omitempty"`
}

// Resources returns the node's permitted PCI resources. Names in the record
// that are no longer permitted stay, with no devices: a resource removed
// from the permitted list shows as 0, as the seed's `oc describe node` does.
// It is pure.
func Resources(h *nodeconfig.HostConfig, devs []Device, rec Record) []Resource {
	byName := map[string]*Resource{}
	var order []string
	get := func(name string) *Resource {
		r, ok := byName[name]
		if !ok {
			r = &Resource{Name: name}
			byName[name] = r
			order = append(order, name)
		}
		return r
	}
	for _, p := range h.PCI {
		r := get(p.ResourceName)
		r.Selector, r.External = p.Selector, p.External
		for _, d := range devs {
			if d.ID() != p.Selector {
				continue
			}
			r.Devices = append(r.Devices, d)
			if p.External || d.Driver == "vfio-pci" {
				r.Allocatable = append(r.Allocatable, d)
			}
		}
	}
	for _, name := range rec.Resources {
		get(name)
	}
	sort.Strings(order)
	out := make([]Resource, len(order))
	for i, n := range order {
		out[i] = *byName[n]
	}
	return out
}
