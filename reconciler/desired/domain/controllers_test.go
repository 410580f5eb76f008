package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureControllers(t *testing.T) {
	zero := uint(0)
	controllers := func(usb, serial string) []libvirtxml.DomainController {
		return []libvirtxml.DomainController{
			{Type: "usb", Index: &zero, Model: usb},
			{Type: "virtio-serial", Index: &zero, Model: serial},
		}
	}
	for _, tc := range []struct {
		name    string
		devices kubevirtv1.Devices
		want    []libvirtxml.DomainController
	}{
		{name: "nothing on USB", want: controllers("none", "virtio-non-transitional")},
		{name: "virtio input only", devices: kubevirtv1.Devices{Inputs: []kubevirtv1.Input{{Name: "k", Type: "keyboard", Bus: "virtio"}}},
			want: controllers("none", "virtio-non-transitional")},
		{name: "input on the default bus", devices: kubevirtv1.Devices{Inputs: []kubevirtv1.Input{{Name: "t", Type: "tablet"}}},
			want: controllers("qemu-xhci", "virtio-non-transitional")},
		{name: "autoattached tablet", devices: kubevirtv1.Devices{AutoattachInputDevice: ptr(true)},
			want: controllers("qemu-xhci", "virtio-non-transitional")},
		{name: "usb disk", devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{{Name: "d", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: "usb"}}}}},
			want: controllers("qemu-xhci", "virtio-non-transitional")},
		{name: "usb cdrom", devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{{Name: "d", DiskDevice: kubevirtv1.DiskDevice{CDRom: &kubevirtv1.CDRomTarget{Bus: "usb"}}}}},
			want: controllers("qemu-xhci", "virtio-non-transitional")},
		{name: "transitional", devices: kubevirtv1.Devices{UseVirtioTransitional: ptr(true)},
			want: controllers("none", "virtio-transitional")},
		{name: "no serial console: libvirt adds the virtio-serial controller", devices: kubevirtv1.Devices{AutoattachSerialConsole: ptr(false)},
			want: controllers("none", "")[:1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var spec kubevirtv1.VirtualMachineInstanceSpec
			spec.Domain.Devices = tc.devices
			dom, out := run(configureControllers, testInput(spec))
			if diff := cmp.Diff(tc.want, dom.Devices.Controllers); diff != "" {
				t.Errorf("controllers (-want +got):\n%s", diff)
			}
			if len(out.diags) != 0 {
				t.Errorf("unexpected diagnostics: %v", out.diags)
			}
		})
	}
}

// vmport joins whatever <features> configureFeatures wrote, and is only
// written for x86.
func TestConfigureVMPort(t *testing.T) {
	in := testInput(kubevirtv1.VirtualMachineInstanceSpec{})
	dom := &libvirtxml.Domain{Features: &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}}}
	configureVMPort(in, testContext, dom, &output{})
	want := &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}, VMPort: &libvirtxml.DomainFeatureState{State: "off"}}
	if diff := cmp.Diff(want, dom.Features); diff != "" {
		t.Errorf("features (-want +got):\n%s", diff)
	}

	dom = &libvirtxml.Domain{}
	configureVMPort(in, testContext, dom, &output{})
	if dom.Features == nil || dom.Features.VMPort == nil || dom.Features.VMPort.State != "off" {
		t.Errorf("no <features> before: want <vmport state=off>, got %+v", dom.Features)
	}

	arm := testContext
	arm.Arch = "aarch64"
	dom = &libvirtxml.Domain{}
	configureVMPort(in, arm, dom, &output{})
	if dom.Features != nil {
		t.Errorf("aarch64 has no VMware port, got %+v", dom.Features)
	}
}
