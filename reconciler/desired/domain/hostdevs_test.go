package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// Devices allocated before conversion become <hostdev managed='no'> with
// their PCI address and the request's alias; no allocation, no element.
func TestConfigureHostDevices(t *testing.T) {
	var s kubevirtv1.VirtualMachineInstanceSpec
	s.Domain.Devices.GPUs = []kubevirtv1.GPU{{Name: "g1", DeviceName: "nvidia.com/T4"}}
	s.Domain.Devices.HostDevices = []kubevirtv1.HostDevice{{Name: "nic", DeviceName: "intel.com/x710"}}
	in := testInput(s)
	if dom, _ := run(configureHostDevices, in); dom.Devices != nil {
		t.Fatalf("no allocation must add no element: %+v", dom.Devices)
	}
	in.Resources.HostDevices = []AssignedDevice{
		{Name: "g1", Resource: "nvidia.com/T4", GPU: true, Address: "0000:3b:00.0"},
		{Name: "nic", Resource: "intel.com/x710", Address: "0001:5e:1f.7"},
	}
	dom, out := run(configureHostDevices, in)
	hostdev := func(d, b, sl, f uint, alias string) libvirtxml.DomainHostdev {
		return libvirtxml.DomainHostdev{Managed: "no", SubsysPCI: &libvirtxml.DomainHostdevSubsysPCI{Source: &libvirtxml.DomainHostdevSubsysPCISource{
			Address: &libvirtxml.DomainAddressPCI{Domain: &d, Bus: &b, Slot: &sl, Function: &f}}}, Alias: &libvirtxml.DomainAlias{Name: alias}}
	}
	want := []libvirtxml.DomainHostdev{hostdev(0, 0x3b, 0, 0, "ua-gpu-g1"), hostdev(1, 0x5e, 0x1f, 7, "ua-hostdevice-nic")}
	if diff := cmp.Diff(want, dom.Devices.Hostdevs); diff != "" || len(out.diags) > 0 {
		t.Errorf("hostdevs (-want +got):\n%s\n%v", diff, diagLines(out))
	}
	in.Resources.HostDevices = []AssignedDevice{{Name: "nic", Resource: "intel.com/x710", Address: "nonsense"}}
	if _, out := run(configureHostDevices, in); len(out.diags) != 1 || out.diags[0].Path != "spec.template.spec.domain.devices.hostDevices[0]" {
		t.Errorf("a bad address must be reported at its request: %v", diagLines(out))
	}
}
