package desired

import (
	"k8s.io/utils/cpuset"

	"fmt"
	"slices"
	"strings"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

// ReasonNoCPUPool is why a dedicatedCpuPlacement VM cannot run on a node
// without a CPU-manager pool.
const ReasonNoCPUPool = "dedicated CPUs need the CPU-manager pool: --cpu-manager or Node label cpumanager=true"

// Resources are what this node can give its VMs, read before they are
// rendered: the CPU-manager pool and permitted host devices, the allocations
// persisted in the state, and where storage keeps each claim. Allocation
// happens in Build, before conversion, so the domain is complete when it is
// converted; the allocations are persisted when the domain is defined.
type Resources struct {
	// CPUPool is the node's CPU-manager pool; nil means the node has none.
	CPUPool []uint
	// CPUs are the dedicated-CPU allocations persisted in the state, by domain.
	CPUs map[string]domain.Pinning
	// Devices maps each permitted resource name to the PCI addresses that can
	// be given to VMs (permitted and bound to vfio-pci).
	Devices map[string][]string
	// HostDevices are the device allocations persisted in the state, by domain.
	HostDevices map[string][]domain.AssignedDevice
	// Claims maps "namespace/name" to where storage keeps the claim's disk:
	// its persisted binding, or where the storage plan puts it.
	Claims map[string]domain.ClaimDisk
}

// demand is what one VM asks of the node's resources, known before conversion.
type demand struct {
	name      string // domain name
	dedicated *Dedicated
	devices   []DeviceRequest
}

// allocation is what the node gives one VM, or why it cannot.
type allocation struct {
	pins    *domain.Pinning
	devices []domain.AssignedDevice
	// why is set when the VM cannot get what it asks for: it is defined
	// without it and waits.
	why string
}

// allocate gives every VM its exclusive CPUs and host devices, in domain
// name order so the result does not depend on the order of the manifests.
// VMs that ask for neither have no entry.
func allocate(res Resources, want []demand) map[string]*allocation {
	want = slices.DeleteFunc(want, func(d demand) bool { return d.dedicated == nil && len(d.devices) == 0 })
	slices.SortFunc(want, func(a, b demand) int { return strings.Compare(a.name, b.name) })
	out := make(map[string]*allocation, len(want))
	for _, d := range want {
		out[d.name] = &allocation{}
	}
	pinCPUs(res, want, out)
	assignDevices(res, want, out)
	return out
}

// pinCPUs gives every VM with dedicatedCpuPlacement exclusive host CPUs from
// the node's CPU-manager pool, as the kubelet's static CPU manager does for
// KubeVirt. A persisted allocation is kept while it still fits, so a VM
// keeps its CPUs across restarts of the VM and of the agent.
func pinCPUs(res Resources, want []demand, out map[string]*allocation) {
	var ded []demand
	for _, d := range want {
		if d.dedicated != nil {
			ded = append(ded, d)
		}
	}
	if len(ded) == 0 {
		return
	}
	if res.CPUPool == nil {
		for _, d := range ded {
			out[d.name].why = ReasonNoCPUPool
		}
		return
	}
	pool := res.CPUPool
	taken := map[uint]string{}
	for name, p := range res.CPUs {
		for _, c := range p.CPUs() {
			taken[c] = name
		}
	}
	// Keep valid allocations first, so a new VM never takes a running VM's CPUs.
	keep := map[string]domain.Pinning{}
	for _, d := range ded {
		p, ok := res.CPUs[d.name]
		if ok && fits(p, *d.dedicated, pool) {
			keep[d.name] = p
			continue
		}
		for _, c := range p.CPUs() {
			delete(taken, c)
		}
	}
	for _, d := range ded {
		p, ok := keep[d.name]
		if !ok {
			var free []uint
			for _, c := range pool {
				if _, used := taken[c]; !used {
					free = append(free, c)
				}
			}
			need := d.dedicated.Need()
			if len(free) < need {
				out[d.name].why = fmt.Sprintf("needs %d dedicated CPUs; the CPU-manager pool %s has %d free", need, formatCPUs(pool), len(free))
				continue
			}
			p = domain.Pinning{VCPUs: slices.Clone(free[:d.dedicated.VCPUs])}
			if d.dedicated.EmulatorThread {
				e := free[d.dedicated.VCPUs]
				p.Emulator = &e
			}
			for _, c := range p.CPUs() {
				taken[c] = d.name
			}
		}
		out[d.name].pins = &p
	}
}

func fits(p domain.Pinning, d Dedicated, pool []uint) bool {
	if len(p.VCPUs) != d.VCPUs || (p.Emulator != nil) != d.EmulatorThread {
		return false
	}
	for _, c := range p.CPUs() {
		if !slices.Contains(pool, c) {
			return false
		}
	}
	return true
}

// formatCPUs writes a CPU list as the kernel and --reserved-cpus do ("1-3,8").
func formatCPUs(cpus []uint) string {
	ints := make([]int, len(cpus))
	for i, c := range cpus {
		ints[i] = int(c)
	}
	return cpuset.New(ints...).String()
}

// assignDevices gives each VM's hostDevices/gpus requests a free device of
// the requested resource, as KubeVirt's device plugins do: only devices the
// HyperConverged permits and vfio-pci holds are allocatable. A persisted
// allocation is kept while its device stays allocatable, so a VM keeps its
// device across restarts; no device is given to two VMs.
func assignDevices(res Resources, want []demand, out map[string]*allocation) {
	var wd []demand
	for _, d := range want {
		if len(d.devices) > 0 {
			wd = append(wd, d)
		}
	}
	if len(wd) == 0 {
		return
	}
	taken := map[string]string{}
	keep := map[string][]domain.AssignedDevice{}
	for _, d := range wd {
		if a, ok := res.HostDevices[d.name]; ok && stillValid(a, d.devices, res.Devices) {
			keep[d.name] = a
		}
	}
	// Allocations of domains that are not rendered now (being deleted) stay
	// taken until their domain is gone.
	for name, a := range res.HostDevices {
		if _, mine := keep[name]; mine || !slices.ContainsFunc(wd, func(d demand) bool { return d.name == name }) {
			for _, dev := range a {
				taken[dev.Address] = name
			}
		}
	}
	for _, d := range wd {
		if a, ok := keep[d.name]; ok {
			out[d.name].devices = a
			continue
		}
		var assigned []domain.AssignedDevice
		why := ""
		for _, req := range d.devices {
			addrs, permitted := res.Devices[req.Resource]
			if !permitted {
				why = fmt.Sprintf("host device %q: resource %s is not permitted on this node (HyperConverged spec.permittedHostDevices, device bound to vfio-pci)", req.Name, req.Resource)
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
				why = fmt.Sprintf("host device %q: no free device of resource %s (%d on this node, all allocated)", req.Name, req.Resource, len(addrs))
				break
			}
			taken[addr] = d.name
			assigned = append(assigned, domain.AssignedDevice{Name: req.Name, Resource: req.Resource, GPU: req.GPU, Address: addr})
		}
		if why != "" {
			for _, dev := range assigned {
				delete(taken, dev.Address)
			}
			if out[d.name].why == "" {
				out[d.name].why = why
			}
			continue
		}
		out[d.name].devices = assigned
	}
}

func stillValid(a []domain.AssignedDevice, reqs []DeviceRequest, allocatable map[string][]string) bool {
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

// claimsFor are the claim disks a VM's volumes refer to, by claim name.
func (r Resources) claimsFor(namespace string, spec *kubevirtv1.VirtualMachineInstanceSpec) map[string]domain.ClaimDisk {
	var out map[string]domain.ClaimDisk
	for _, v := range spec.Volumes {
		name := ""
		switch {
		case v.PersistentVolumeClaim != nil:
			name = v.PersistentVolumeClaim.ClaimName
		case v.DataVolume != nil:
			name = v.DataVolume.Name
		default:
			continue
		}
		if cd, ok := r.Claims[namespace+"/"+name]; ok {
			if out == nil {
				out = map[string]domain.ClaimDisk{}
			}
			out[name] = cd
		}
	}
	return out
}
