// Package nodedesc describes this node as `oc describe node` shows a
// KubeVirt node: its labels, capacity and allocatable (CPUs, memory, huge
// pages and KubeVirt's device plugins, read from the host root's /proc and
// /sys), its CPU, and the PCI devices the HyperConverged permits with the
// domains holding them and the VMs asking for them.
package nodedesc

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/nodeconfig"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/host"
	"github.com/nodevirt/nodevirt/runtime/hostfacts"
	"github.com/nodevirt/nodevirt/runtime/hostfs"
	"github.com/nodevirt/nodevirt/runtime/hv"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
)

// Description is `node describe`'s output.
type Description struct {
	Name        string            `json:"name"`
	Roles       []string          `json:"roles"`
	Labels      map[string]string `json:"labels"`
	CPU         CPUDescription    `json:"cpu"`
	Capacity    map[string]string `json:"capacity"`
	Allocatable map[string]string `json:"allocatable"`
	Devices     []NodeDevice      `json:"pciDevices,omitempty"`
	// Notes say what could not be read (libvirt, record).
	Notes []string `json:"notes,omitempty"`
}

// CPUDescription is the host CPU.
type CPUDescription struct {
	Vendor   string   `json:"vendor"`
	Model    string   `json:"model"`
	Features []string `json:"features,omitempty"`
}

// NodeDevice is a PCI device that a permitted selector matches.
type NodeDevice struct {
	Address     string   `json:"address"`
	ID          string   `json:"id"`
	Class       string   `json:"class,omitempty"`
	Driver      string   `json:"driver,omitempty"`
	IOMMUGroup  string   `json:"iommuGroup,omitempty"`
	Resource    string   `json:"resource"`
	Allocatable bool     `json:"allocatable"`
	HeldBy      []string `json:"heldBy,omitempty"`
	RequestedBy []string `json:"requestedBy,omitempty"`
}

// Devices lists the host's PCI devices.
type Devices interface {
	List() ([]host.Device, error)
}

// Domains lists the hypervisor's domains.
type Domains interface {
	Domains(ctx context.Context) ([]hv.Domain, error)
}

// Input is what a description is made of.
type Input struct {
	// Root is the host root; StateDir holds the host record (<state>/host).
	Root, StateDir string
	// CPUManager: the node has a CPU-manager pool (label cpumanager=true).
	CPUManager bool
	Facts      hostfacts.Facts
	// Host, State and Set are this revision rendered for the node.
	Host  *nodeconfig.HostConfig
	State *desired.State
	Set   *manifests.Set
	PCI   Devices
	// Domains is the hypervisor, or nil with DomainsErr saying why.
	Domains    Domains
	DomainsErr error
}

// kubevirtDeviceCount is what KubeVirt's kvm, tun and vhost-net device
// plugins advertise (the seed's `oc describe node` shows 110).
const kubevirtDeviceCount = 110

// CPUInfo reads <root>/proc/cpuinfo; an unreadable one is an unknown CPU.
func CPUInfo(root string) nodeconfig.CPUInfo {
	b, err := hostfs.New(root).ReadFile("/proc/cpuinfo")
	if err != nil {
		return nodeconfig.CPUInfo{}
	}
	return nodeconfig.ParseCPUInfo(b)
}

// Describe describes the node.
func Describe(ctx context.Context, in Input) (Description, error) {
	h, facts := in.Host, in.Facts
	cpu := CPUInfo(in.Root)
	nd := Description{Name: h.Node.Name, Roles: h.Node.Roles, Labels: map[string]string{}, Capacity: map[string]string{}, Allocatable: map[string]string{}}
	for k, v := range h.Node.Labels {
		nd.Labels[k] = v
	}
	nd.Labels["kubernetes.io/hostname"] = h.Node.Name
	nd.Labels["kubernetes.io/arch"] = facts.Arch
	for _, r := range h.Node.Roles {
		if _, ok := nd.Labels[nodeconfig.LabelRolePrefix+r]; !ok {
			nd.Labels[nodeconfig.LabelRolePrefix+r] = ""
		}
	}
	if in.CPUManager {
		nd.Labels["cpumanager"] = "true"
	} else if _, ok := nd.Labels["cpumanager"]; !ok {
		nd.Labels["cpumanager"] = "false"
	}
	if vendor := map[string]string{"intel": "Intel", "amd": "AMD"}[cpu.Vendor]; vendor != "" {
		nd.Labels["cpu-vendor.node.kubevirt.io/"+vendor] = "true"
	}
	nd.CPU = CPUDescription{Vendor: cpu.VendorID, Model: cpu.Model, Features: cpu.Flags}
	if facts.KVM {
		nd.Labels["kubevirt.io/schedulable"] = "true"
	}

	fsys := hostfs.New(in.Root)
	q := func(n int64, f resource.Format) string { return resource.NewQuantity(n, f).String() }
	nd.Capacity["cpu"] = strconv.Itoa(facts.CPUs)
	nd.Capacity["memory"] = q(facts.MemoryBytes, resource.BinarySI)
	var huge int64
	for _, hp := range []struct{ name, dir string }{{"hugepages-2Mi", "hugepages-2048kB"}, {"hugepages-1Gi", "hugepages-1048576kB"}} {
		n := int64(0)
		if b, err := fsys.ReadFile("/sys/kernel/mm/hugepages/" + hp.dir + "/nr_hugepages"); err == nil {
			n, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		}
		size := int64(2 << 20)
		if hp.name == "hugepages-1Gi" {
			size = 1 << 30
		}
		huge += n * size
		nd.Capacity[hp.name] = q(n*size, resource.BinarySI)
	}
	devCount := func(p string) string {
		if _, err := fsys.Lstat(p); err == nil {
			return strconv.Itoa(kubevirtDeviceCount)
		}
		return "0"
	}
	nd.Capacity["devices.kubevirt.io/kvm"] = "0"
	if facts.KVM {
		nd.Capacity["devices.kubevirt.io/kvm"] = strconv.Itoa(kubevirtDeviceCount)
	}
	nd.Capacity["devices.kubevirt.io/tun"] = devCount("/dev/net/tun")
	nd.Capacity["devices.kubevirt.io/vhost-net"] = devCount("/dev/vhost-net")

	// Permitted PCI resources: devices bound to vfio-pci count (KubeVirt's
	// rule); an external provider's devices count whatever their driver;
	// resources removed from the permitted list stay with 0, as in the seed.
	devs, err := in.PCI.List()
	if err != nil {
		return nd, err
	}
	rec, err := host.LoadRecord(hostfs.New(filepath.Join(in.StateDir, "host")))
	if err != nil {
		nd.Notes = append(nd.Notes, "host state record: "+err.Error())
	}
	held, heldNote := heldDevices(ctx, in)
	if heldNote != "" {
		nd.Notes = append(nd.Notes, heldNote)
	}
	requested := requestedDevices(in.Set, in.State)
	for _, r := range host.Resources(h, devs, rec) {
		nd.Capacity[r.Name] = strconv.Itoa(len(r.Allocatable))
		for _, d := range r.Devices {
			ok := r.External || d.Driver == "vfio-pci"
			nd.Devices = append(nd.Devices, NodeDevice{Address: d.Address, ID: d.ID(), Class: d.Class, Driver: d.Driver, IOMMUGroup: d.IOMMUGroup,
				Resource: r.Name, Allocatable: ok, HeldBy: held[d.Address], RequestedBy: requested[r.Name]})
		}
	}
	sort.Slice(nd.Devices, func(i, j int) bool { return nd.Devices[i].Address < nd.Devices[j].Address })
	for k, v := range nd.Capacity {
		nd.Allocatable[k] = v
	}
	// The kubelet takes pre-allocated huge pages out of allocatable memory.
	nd.Allocatable["memory"] = q(facts.MemoryBytes-huge, resource.BinarySI)
	return nd, nil
}

// heldDevices maps PCI addresses to the domains (and their VMs) that have
// them as <hostdev>, from libvirt's definitions; the note says why it is
// unknown.
func heldDevices(ctx context.Context, in Input) (map[string][]string, string) {
	out := map[string][]string{}
	if in.Domains == nil {
		return out, fmt.Sprintf("devices held by VMs unknown: %v", in.DomainsErr)
	}
	doms, err := in.Domains.Domains(ctx)
	if err != nil {
		return out, fmt.Sprintf("devices held by VMs unknown: %v", err)
	}
	for _, d := range doms {
		var name string
		if ow, ok := desired.OwnerOf(d.XML); ok {
			name = fmt.Sprintf("%s %s/%s (domain %s, %s)", ow.Kind, ow.Namespace, ow.Name, d.Name, d.State)
		} else {
			name = fmt.Sprintf("domain %s (%s)", d.Name, d.State)
		}
		addrs, err := virt.HostdevPCIAddresses(d.XML)
		if err != nil {
			continue // libvirt's own XML; one it wrote broken holds nothing we can name
		}
		for _, addr := range addrs {
			out[addr] = append(out[addr], name)
		}
	}
	return out, ""
}

// requestedDevices maps resource names to the VMs placed on this node that
// ask for them (hostDevices and gpus deviceName).
func requestedDevices(set *manifests.Set, st *desired.State) map[string][]string {
	out := map[string][]string{}
	here := map[string]bool{}
	for _, vm := range st.VMs {
		here[vm.Object] = true
	}
	for _, obj := range st.Invalid {
		here[obj] = true
	}
	for _, o := range set.Objects {
		if !here[o.Ref.String()] {
			continue
		}
		var devs *kubevirtv1.Devices
		switch v := o.Value.(type) {
		case *kubevirtv1.VirtualMachine:
			if v.Spec.Template != nil {
				devs = &v.Spec.Template.Spec.Domain.Devices
			}
		case *kubevirtv1.VirtualMachineInstance:
			devs = &v.Spec.Domain.Devices
		}
		if devs == nil {
			continue
		}
		for _, d := range devs.HostDevices {
			out[d.DeviceName] = append(out[d.DeviceName], o.Ref.String())
		}
		for _, g := range devs.GPUs {
			out[g.DeviceName] = append(out[g.DeviceName], o.Ref.String())
		}
	}
	return out
}
