package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureTPM(t *testing.T) {
	emulator := func(persistent string) *libvirtxml.DomainTPMBackend {
		return &libvirtxml.DomainTPMBackend{Emulator: &libvirtxml.DomainTPMBackendEmulator{Version: "2.0", PersistentState: persistent}}
	}
	for _, tc := range []struct {
		name string
		tpm  *kubevirtv1.TPMDevice
		want *libvirtxml.Domain
	}{
		{name: "no tpm", tpm: nil, want: &libvirtxml.Domain{}},
		{name: "disabled", tpm: &kubevirtv1.TPMDevice{Enabled: ptr(false)}, want: &libvirtxml.Domain{}},
		{
			name: "tpm: {} is a TIS TPM 2.0 whose state libvirt may drop",
			tpm:  &kubevirtv1.TPMDevice{},
			want: &libvirtxml.Domain{Devices: &libvirtxml.DomainDeviceList{TPMs: []libvirtxml.DomainTPM{{Model: "tpm-tis", Backend: emulator("")}}}},
		},
		{
			name: "enabled, persistent false",
			tpm:  &kubevirtv1.TPMDevice{Enabled: ptr(true), Persistent: ptr(false)},
			want: &libvirtxml.Domain{Devices: &libvirtxml.DomainDeviceList{TPMs: []libvirtxml.DomainTPM{{Model: "tpm-tis", Backend: emulator("")}}}},
		},
		{
			name: "persistent is CRB with persistent_state",
			tpm:  &kubevirtv1.TPMDevice{Persistent: ptr(true)},
			want: &libvirtxml.Domain{Devices: &libvirtxml.DomainDeviceList{TPMs: []libvirtxml.DomainTPM{{Model: "tpm-crb", Backend: emulator("yes")}}}},
		},
		{name: "disabled wins over persistent", tpm: &kubevirtv1.TPMDevice{Enabled: ptr(false), Persistent: ptr(true)}, want: &libvirtxml.Domain{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := kubevirtv1.VirtualMachineInstanceSpec{}
			spec.Domain.Devices.TPM = tc.tpm
			dom, out := run(configureTPM, testInput(spec))
			if diff := cmp.Diff(tc.want, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if len(out.diags) != 0 {
				t.Errorf("unexpected diagnostics: %v", diagLines(out))
			}
		})
	}
}
