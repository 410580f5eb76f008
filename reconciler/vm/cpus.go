package vm

import (
	"encoding/json"
	"fmt"

	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

// Dedicated CPUs are allocated by desired.Build before conversion, from the
// pool and the allocations persisted here; the reconciler only persists the
// allocation a domain was defined with, so a VM keeps its CPUs across
// restarts of the VM and of the agent.

// rememberCPUs persists the pins a domain was just defined with, and drops
// the allocation of a VM that no longer needs one.
func (r *Reconciler) rememberCPUs(vm *desired.VM) error {
	switch {
	case vm.Pins != nil:
		return r.rec.putCPUs(vm.DomainName, *vm.Pins)
	case vm.Dedicated == nil:
		return r.rec.kv.Delete(bucketCPUs, vm.DomainName)
	}
	return nil
}

func (s records) cpuAllocations() (map[string]domain.Pinning, error) {
	out := map[string]domain.Pinning{}
	err := s.kv.ForEach(bucketCPUs, func(k string, v []byte) error {
		var p domain.Pinning
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("CPU allocation of %s: %w", k, err)
		}
		out[k] = p
		return nil
	})
	return out, err
}

func (s records) putCPUs(name string, p domain.Pinning) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.kv.Put(bucketCPUs, name, b)
}

// Allocations reads the dedicated-CPU and host-device allocations persisted
// in kv (the state database, opened read-only by a command beside a running
// agent), by domain: what desired.Build keeps for the VMs that still fit them.
func Allocations(kv KV) (cpus map[string]domain.Pinning, devices map[string][]domain.AssignedDevice, err error) {
	s := records{kv}
	if cpus, err = s.cpuAllocations(); err != nil {
		return nil, nil, err
	}
	if devices, err = s.deviceAllocations(); err != nil {
		return nil, nil, err
	}
	return cpus, devices, nil
}

// Allocations are the allocations persisted in the reconciler's state.
func (r *Reconciler) Allocations() (map[string]domain.Pinning, map[string][]domain.AssignedDevice, error) {
	return Allocations(r.rec.kv)
}
