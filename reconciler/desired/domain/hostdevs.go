package domain

import (
	"fmt"

	"libvirt.org/go/libvirtxml"
)

// configureHostDevices owns <hostdev>: one per PCI device allocated to the
// VM's gpus and hostDevices (in.Resources.HostDevices). managed='no' because
// nodevirt (or the host's vfio.conf) binds the device to vfio-pci, as
// KubeVirt expects of permitted devices. A request without an allocation
// gets no element: the VM waits for its device (the caller says why).
func configureHostDevices(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	for _, d := range in.Resources.HostDevices {
		var pciDomain, bus, slot, fn uint
		if _, err := fmt.Sscanf(d.Address, "%x:%x:%x.%x", &pciDomain, &bus, &slot, &fn); err != nil {
			out.invalid(hostDevicePath(in, d), "PCI address %q of the allocated device: %v", d.Address, err)
			continue
		}
		alias := "ua-hostdevice-" + d.Name
		if d.GPU {
			alias = "ua-gpu-" + d.Name
		}
		devices(dom).Hostdevs = append(devices(dom).Hostdevs, libvirtxml.DomainHostdev{
			Managed: "no",
			SubsysPCI: &libvirtxml.DomainHostdevSubsysPCI{Source: &libvirtxml.DomainHostdevSubsysPCISource{
				Address: &libvirtxml.DomainAddressPCI{Domain: &pciDomain, Bus: &bus, Slot: &slot, Function: &fn},
			}},
			Alias: &libvirtxml.DomainAlias{Name: alias},
		})
	}
}

// hostDevicePath is the spec path of the request a device was allocated to.
func hostDevicePath(in Input, d AssignedDevice) string {
	if d.GPU {
		for i, g := range in.Spec.Domain.Devices.GPUs {
			if g.Name == d.Name {
				return fmt.Sprintf("domain.devices.gpus[%d]", i)
			}
		}
		return "domain.devices.gpus"
	}
	for i, h := range in.Spec.Domain.Devices.HostDevices {
		if h.Name == d.Name {
			return fmt.Sprintf("domain.devices.hostDevices[%d]", i)
		}
	}
	return "domain.devices.hostDevices"
}
