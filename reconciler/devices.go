package reconciler

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/nodevirt/nodevirt/reconciler/desired"
)

// bucketDevices holds PCI device allocations: domain → []desired.AssignedDevice.
const bucketDevices = "devices"

// assignDevices gives each VM's hostDevices/gpus requests a free device of the
// requested resource, as KubeVirt's device plugins do: only devices the
// HyperConverged permits and vfio-pci holds are allocatable. An allocation is
// kept while its device stays allocatable, so a VM keeps its device across
// restarts; no device is given to two VMs.
//
// It returns every VM's allocation (kept or new), the new ones (persisted when
// their domain is defined) and the VMs that cannot get their devices.
func (r *Reconciler) assignDevices(vms []*desired.VM) (all, fresh map[string][]desired.AssignedDevice, unsched map[string]string, err error) {
	all, fresh, unsched = map[string][]desired.AssignedDevice{}, map[string][]desired.AssignedDevice{}, map[string]string{}
	var want []*desired.VM
	for _, vm := range vms {
		if len(vm.HostDevices) > 0 {
			want = append(want, vm)
		}
	}
	if len(want) == 0 {
		return all, fresh, unsched, nil
	}
	var allocatable map[string][]string
	if r.cfg.Devices != nil {
		if allocatable, err = r.cfg.Devices(); err != nil {
			return nil, nil, nil, fmt.Errorf("permitted host devices: %w", err)
		}
	}
	held, err := r.rec.deviceAllocations()
	if err != nil {
		return nil, nil, nil, err
	}
	taken := map[string]string{}
	keep := map[string][]desired.AssignedDevice{}
	for _, vm := range want {
		if a, ok := held[vm.DomainName]; ok && stillValid(a, vm.HostDevices, allocatable) {
			keep[vm.DomainName] = a
		}
	}
	// Allocations of domains that are not in this plan (being deleted) stay
	// taken until their domain is gone.
	for name, a := range held {
		if _, mine := keep[name]; mine || !slices.ContainsFunc(want, func(v *desired.VM) bool { return v.DomainName == name }) {
			for _, d := range a {
				taken[d.Address] = name
			}
		}
	}
	for _, vm := range want {
		assigned, ok := keep[vm.DomainName]
		if !ok {
			assigned = nil
			for _, req := range vm.HostDevices {
				addrs, permitted := allocatable[req.Resource]
				if !permitted {
					unsched[vm.DomainName] = fmt.Sprintf("host device %q: resource %s is not permitted on this node (HyperConverged spec.permittedHostDevices, device bound to vfio-pci)", req.Name, req.Resource)
					break
				}
				addr := ""
				for _, a := range addrs {
					if _, used := taken[a]; !used {
						addr = a
						break
					}
				}
				if addr == "" {
					unsched[vm.DomainName] = fmt.Sprintf("host device %q: no free device of resource %s (%d on this node, all allocated)", req.Name, req.Resource, len(addrs))
					break
				}
				taken[addr] = vm.DomainName
				assigned = append(assigned, desired.AssignedDevice{Name: req.Name, Resource: req.Resource, GPU: req.GPU, Address: addr})
			}
			if _, bad := unsched[vm.DomainName]; bad {
				for _, d := range assigned {
					delete(taken, d.Address)
				}
				continue
			}
			fresh[vm.DomainName] = assigned
		}
		all[vm.DomainName] = assigned
	}
	return all, fresh, unsched, nil
}

func stillValid(a []desired.AssignedDevice, reqs []desired.DeviceRequest, allocatable map[string][]string) bool {
	if len(a) != len(reqs) {
		return false
	}
	for i, d := range a {
		if d.Name != reqs[i].Name || d.Resource != reqs[i].Resource || !slices.Contains(allocatable[d.Resource], d.Address) {
			return false
		}
	}
	return true
}

// rememberDevices persists an allocation made by the plan once its domain is
// defined, and drops one the VM no longer has.
func (r *Reconciler) rememberDevices(vm *desired.VM, fresh map[string][]desired.AssignedDevice) error {
	if a, ok := fresh[vm.DomainName]; ok {
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		return r.rec.kv.Put(bucketDevices, vm.DomainName, b)
	}
	if len(vm.HostDevices) == 0 {
		return r.rec.kv.Delete(bucketDevices, vm.DomainName)
	}
	return nil
}

func (s records) deviceAllocations() (map[string][]desired.AssignedDevice, error) {
	out := map[string][]desired.AssignedDevice{}
	err := s.kv.ForEach(bucketDevices, func(k string, v []byte) error {
		var a []desired.AssignedDevice
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("device allocation of %s: %w", k, err)
		}
		out[k] = a
		return nil
	})
	return out, err
}

// DeviceHolders maps PCI addresses to the domains they are allocated to,
// for node describe.
func (r *Reconciler) DeviceHolders() (map[string]string, error) {
	held, err := r.rec.deviceAllocations()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	names := make([]string, 0, len(held))
	for n := range held {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, d := range held[n] {
			out[d.Address] = n
		}
	}
	return out, nil
}
