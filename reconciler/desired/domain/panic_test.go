package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigurePanicDevices(t *testing.T) {
	model := func(m kubevirtv1.PanicDeviceModel) *kubevirtv1.PanicDeviceModel { return &m }
	for _, tc := range []struct {
		name      string
		panics    []kubevirtv1.PanicDevice
		want      *libvirtxml.Domain
		wantDiags []diagLine
	}{
		{name: "none", want: &libvirtxml.Domain{}},
		{
			name:   "hyperv and isa",
			panics: []kubevirtv1.PanicDevice{{Model: model(kubevirtv1.Hyperv)}, {Model: model(kubevirtv1.Isa)}},
			want: &libvirtxml.Domain{Devices: &libvirtxml.DomainDeviceList{Panics: []libvirtxml.DomainPanic{
				{Model: "hyperv"}, {Model: "isa"},
			}}},
		},
		{
			name:   "no model: libvirt's default",
			panics: []kubevirtv1.PanicDevice{{}},
			want:   &libvirtxml.Domain{Devices: &libvirtxml.DomainDeviceList{Panics: []libvirtxml.DomainPanic{{}}}},
		},
		{
			name:   "pvpanic becomes the ISA pvpanic device",
			panics: []kubevirtv1.PanicDevice{{Model: model(kubevirtv1.Pvpanic)}},
			want:   &libvirtxml.Domain{Devices: &libvirtxml.DomainDeviceList{Panics: []libvirtxml.DomainPanic{{Model: "isa"}}}},
			wantDiags: []diagLine{{"warning", "spec.template.spec.domain.devices.panicDevices[0].model",
				"ignored: libvirt 9.0 has no PCI pvpanic device; the guest gets the ISA pvpanic device (model isa) instead"}},
		},
		{
			name:   "pvpanic beside an isa device is left out: libvirt takes one per model",
			panics: []kubevirtv1.PanicDevice{{}, {Model: model(kubevirtv1.Pvpanic)}},
			want:   &libvirtxml.Domain{Devices: &libvirtxml.DomainDeviceList{Panics: []libvirtxml.DomainPanic{{}}}},
			wantDiags: []diagLine{{"warning", "spec.template.spec.domain.devices.panicDevices[1].model",
				"ignored: libvirt 9.0 has no PCI pvpanic device, and the guest has the ISA pvpanic device already"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := kubevirtv1.VirtualMachineInstanceSpec{}
			spec.Domain.Devices.PanicDevices = tc.panics
			dom, out := run(configurePanicDevices, testInput(spec))
			if diff := cmp.Diff(tc.want, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantDiags, diagLines(out)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}
