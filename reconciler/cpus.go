package reconciler

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/nodevirt/nodevirt/reconciler/desired"
)

// pinCPUs gives every VM with dedicatedCpuPlacement exclusive host CPUs from
// the node's CPU-manager pool, as the kubelet's static CPU manager does for
// KubeVirt. An allocation is kept for as long as its domain exists, so a VM
// keeps its CPUs across restarts of the VM and of the agent. It returns the
// pinned renderings, the allocations made now (persisted when the domain is
// defined) and the VMs that cannot be placed, with the reason.
func (r *Reconciler) pinCPUs(vms []*desired.VM) (pinned map[string]*desired.VM, fresh map[string]desired.Pinning, unsched map[string]string, err error) {
	pinned, fresh, unsched = map[string]*desired.VM{}, map[string]desired.Pinning{}, map[string]string{}
	var want []*desired.VM
	for _, vm := range vms {
		if vm.Dedicated != nil {
			want = append(want, vm)
		}
	}
	if len(want) == 0 {
		return pinned, fresh, unsched, nil
	}
	if r.cfg.CPUPool == nil {
		for _, vm := range want {
			unsched[vm.DomainName] = "dedicatedCpuPlacement needs the node's CPU-manager pool; start nodevirt with --cpu-manager"
		}
		return pinned, fresh, unsched, nil
	}
	pool, err := r.cfg.CPUPool()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("CPU-manager pool: %w", err)
	}
	held, err := r.rec.cpuAllocations()
	if err != nil {
		return nil, nil, nil, err
	}
	dedicated := map[string]bool{}
	for _, vm := range want {
		dedicated[vm.DomainName] = true
	}
	taken := map[uint]string{}
	for name, p := range held {
		for _, c := range cpusOf(p) {
			taken[c] = name
		}
	}
	// Keep valid allocations first, so a new VM never takes a running VM's CPUs.
	keep := map[string]desired.Pinning{}
	for _, vm := range want {
		p, ok := held[vm.DomainName]
		if ok && fits(p, *vm.Dedicated, pool) {
			keep[vm.DomainName] = p
			continue
		}
		for _, c := range cpusOf(p) {
			delete(taken, c)
		}
	}
	for _, vm := range want {
		p, ok := keep[vm.DomainName]
		if !ok {
			var free []uint
			for _, c := range pool {
				if _, used := taken[c]; !used {
					free = append(free, c)
				}
			}
			need := vm.Dedicated.Need()
			if len(free) < need {
				unsched[vm.DomainName] = fmt.Sprintf("needs %d dedicated CPUs; the CPU-manager pool %s has %d free", need, formatCPUs(pool), len(free))
				continue
			}
			p = desired.Pinning{VCPUs: slices.Clone(free[:vm.Dedicated.VCPUs])}
			if vm.Dedicated.EmulatorThread {
				e := free[vm.Dedicated.VCPUs]
				p.Emulator = &e
			}
			for _, c := range cpusOf(p) {
				taken[c] = vm.DomainName
			}
			fresh[vm.DomainName] = p
		}
		pv, err := desired.Pin(vm, p)
		if err != nil {
			return nil, nil, nil, err
		}
		pinned[vm.DomainName] = pv
	}
	return pinned, fresh, unsched, nil
}

func cpusOf(p desired.Pinning) []uint {
	out := slices.Clone(p.VCPUs)
	if p.Emulator != nil {
		out = append(out, *p.Emulator)
	}
	return out
}

func fits(p desired.Pinning, d desired.Dedicated, pool []uint) bool {
	if len(p.VCPUs) != d.VCPUs || (p.Emulator != nil) != d.EmulatorThread {
		return false
	}
	for _, c := range cpusOf(p) {
		if !slices.Contains(pool, c) {
			return false
		}
	}
	return true
}

func formatCPUs(cpus []uint) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = fmt.Sprint(c)
	}
	return "{" + strings.Join(s, ",") + "}"
}

// rememberCPUs persists an allocation made by the plan once its domain is
// defined, and drops one the VM no longer needs.
func (r *Reconciler) rememberCPUs(vm *desired.VM, fresh map[string]desired.Pinning) error {
	if p, ok := fresh[vm.DomainName]; ok {
		return r.rec.putCPUs(vm.DomainName, p)
	}
	if vm.Dedicated == nil {
		return r.rec.kv.Delete(bucketCPUs, vm.DomainName)
	}
	return nil
}

func (s records) cpuAllocations() (map[string]desired.Pinning, error) {
	out := map[string]desired.Pinning{}
	err := s.kv.ForEach(bucketCPUs, func(k string, v []byte) error {
		var p desired.Pinning
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("CPU allocation of %s: %w", k, err)
		}
		out[k] = p
		return nil
	})
	return out, err
}

func (s records) putCPUs(name string, p desired.Pinning) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.kv.Put(bucketCPUs, name, b)
}
