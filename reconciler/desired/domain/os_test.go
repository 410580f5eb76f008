package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureOS(t *testing.T) {
	osType := &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "q35", Type: "hvm"}
	hd := []libvirtxml.DomainBootDevice{{Dev: "hd"}}
	sysinfo := &libvirtxml.DomainSMBios{Mode: "sysinfo"}
	firmware := func(on string) *libvirtxml.DomainOSFirmwareInfo {
		return &libvirtxml.DomainOSFirmwareInfo{Features: []libvirtxml.DomainOSFirmwareFeature{
			{Enabled: on, Name: "enrolled-keys"}, {Enabled: on, Name: "secure-boot"},
		}}
	}
	for _, tc := range []struct {
		name  string
		edit  func(*kubevirtv1.VirtualMachineInstanceSpec)
		want  *libvirtxml.Domain
		diags []diagLine
	}{
		{
			name: "bios default boots from disk",
			want: &libvirtxml.Domain{OS: &libvirtxml.DomainOS{Type: osType, BootDevices: hd, SMBios: sysinfo}},
		},
		{
			name: "bios useSerial",
			edit: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
				s.Domain.Firmware = &kubevirtv1.Firmware{Bootloader: &kubevirtv1.Bootloader{BIOS: &kubevirtv1.BIOS{UseSerial: ptr(true)}}}
			},
			want: &libvirtxml.Domain{OS: &libvirtxml.DomainOS{Type: osType, BootDevices: hd, SMBios: sysinfo, BIOS: &libvirtxml.DomainBIOS{UseSerial: "yes"}}},
		},
		{
			name: "bios useSerial without a serial console",
			edit: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
				s.Domain.Firmware = &kubevirtv1.Firmware{Bootloader: &kubevirtv1.Bootloader{BIOS: &kubevirtv1.BIOS{UseSerial: ptr(true)}}}
				s.Domain.Devices.AutoattachSerialConsole = ptr(false)
			},
			want: &libvirtxml.Domain{OS: &libvirtxml.DomainOS{Type: osType, BootDevices: hd, SMBios: sysinfo, BIOS: &libvirtxml.DomainBIOS{UseSerial: "yes"}}},
			diags: []diagLine{{"error", "spec.template.spec.domain.firmware.bootloader.bios.useSerial",
				"invalid: needs the serial console, but domain.devices.autoattachSerialConsole is false"}},
		},
		{
			name: "efi {} means Secure Boot",
			edit: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
				s.Domain.Firmware = &kubevirtv1.Firmware{Bootloader: &kubevirtv1.Bootloader{EFI: &kubevirtv1.EFI{}}}
			},
			want: &libvirtxml.Domain{OS: &libvirtxml.DomainOS{Type: osType, BootDevices: hd, Firmware: "efi", FirmwareInfo: firmware("yes"), SMBios: sysinfo}},
		},
		{
			name: "efi without Secure Boot",
			edit: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
				s.Domain.Firmware = &kubevirtv1.Firmware{Bootloader: &kubevirtv1.Bootloader{EFI: &kubevirtv1.EFI{SecureBoot: ptr(false)}}}
			},
			want: &libvirtxml.Domain{OS: &libvirtxml.DomainOS{Type: osType, BootDevices: hd, Firmware: "efi", FirmwareInfo: firmware("no"), SMBios: sysinfo}},
		},
		{
			name: "a boot order anywhere drops boot dev",
			edit: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
				s.Domain.Devices.Interfaces = []kubevirtv1.Interface{{Name: "default", BootOrder: ptr(uint(1))}}
			},
			want: &libvirtxml.Domain{OS: &libvirtxml.DomainOS{Type: osType, SMBios: sysinfo}},
		},
		{
			name: "matching architecture",
			edit: func(s *kubevirtv1.VirtualMachineInstanceSpec) { s.Architecture = "amd64" },
			want: &libvirtxml.Domain{OS: &libvirtxml.DomainOS{Type: osType, BootDevices: hd, SMBios: sysinfo}},
		},
		{
			name:  "foreign architecture",
			edit:  func(s *kubevirtv1.VirtualMachineInstanceSpec) { s.Architecture = "arm64" },
			want:  &libvirtxml.Domain{OS: &libvirtxml.DomainOS{Type: osType, BootDevices: hd, SMBios: sysinfo}},
			diags: []diagLine{{"error", "spec.template.spec.architecture", "unsupported: architecture arm64 cannot run on this x86_64 host"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := kubevirtv1.VirtualMachineInstanceSpec{}
			spec.Domain.Machine = &kubevirtv1.Machine{Type: "q35"}
			if tc.edit != nil {
				tc.edit(&spec)
			}
			dom, out := run(configureOS, testInput(spec))
			if diff := cmp.Diff(tc.want, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.diags, diagLines(out)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}
