package vm

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

// bucketDevices holds PCI device allocations: domain → []domain.AssignedDevice.
const bucketDevices = "devices"

// rememberDevices persists the devices a domain was just defined with, and
// drops the allocation of a VM that no longer asks for devices. desired.Build
// allocates them before conversion (KubeVirt's device plugins' rules).
func (r *Reconciler) rememberDevices(vm *desired.VM) error {
	switch {
	case len(vm.HostDevices) == 0:
		return r.rec.kv.Delete(bucketDevices, vm.DomainName)
	case len(vm.Devices) > 0:
		b, err := json.Marshal(vm.Devices)
		if err != nil {
			return err
		}
		return r.rec.kv.Put(bucketDevices, vm.DomainName, b)
	}
	return nil
}

func (s records) deviceAllocations() (map[string][]domain.AssignedDevice, error) {
	out := map[string][]domain.AssignedDevice{}
	err := s.kv.ForEach(bucketDevices, func(k string, v []byte) error {
		var a []domain.AssignedDevice
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
