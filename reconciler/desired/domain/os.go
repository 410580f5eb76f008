package domain

import (
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// kubevirtArch maps spec.architecture (Go/Kubernetes names) to libvirt's.
var kubevirtArch = map[string]string{
	"amd64": "x86_64",
	"arm64": "aarch64",
	"s390x": "s390x",
}

// configureOS owns <os> (type, arch, machine, firmware, bios, kernel,
// initrd, cmdline, boot, smbios) and the kernel boot artifact.
// <os><smbios mode=sysinfo> is always set: configureSysInfo always writes
// the <sysinfo> it points at, as KubeVirt does.
func configureOS(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	spec := in.Spec
	os := &libvirtxml.DomainOS{Type: &libvirtxml.DomainOSType{Arch: ctx.Arch, Type: "hvm"}}
	if m := spec.Domain.Machine; m != nil {
		os.Type.Machine = m.Type
	}
	if a := spec.Architecture; a != "" && kubevirtArch[a] != ctx.Arch {
		out.refuse("architecture", "architecture "+a+" cannot run on this "+ctx.Arch+" host")
	}

	if fw := spec.Domain.Firmware; fw != nil {
		if bl := fw.Bootloader; bl != nil {
			if bl.BIOS != nil && isTrue(bl.BIOS.UseSerial) {
				os.BIOS = &libvirtxml.DomainBIOS{UseSerial: "yes"}
				if isFalse(spec.Domain.Devices.AutoattachSerialConsole) {
					// libvirt refuses serial BIOS output without a serial port.
					out.invalid("domain.firmware.bootloader.bios.useSerial", "needs the serial console, but domain.devices.autoattachSerialConsole is false")
				}
			}
			if bl.EFI != nil {
				configureEFI(os, bl.EFI)
			}
		}
		configureKernelBoot(in, ctx, os, out)
	}

	os.SMBios = &libvirtxml.DomainSMBios{Mode: "sysinfo"}

	// libvirt refuses <os><boot> together with per-device <boot order>, so a
	// spec with any bootOrder leaves the order entirely to the devices.
	if !anyBootOrder(spec) {
		os.BootDevices = []libvirtxml.DomainBootDevice{{Dev: "hd"}}
	}
	dom.OS = os
}

// configureEFI asks libvirt to pick the firmware (<os firmware="efi">) from
// the QEMU firmware descriptors instead of naming OVMF files: the file names
// differ per distribution (Debian 12 has no OVMF_VARS.secboot.fd, KubeVirt's
// choice), the descriptors do not.
func configureEFI(os *libvirtxml.DomainOS, efi *kubevirtv1.EFI) {
	// KubeVirt turns Secure Boot on when secureBoot is unset.
	secure := enabled(efi.SecureBoot)
	os.Firmware = "efi"
	// enrolled-keys follows secure-boot, as KubeVirt's file choice does: with
	// Secure Boot its VARS template has the Microsoft keys enrolled (so
	// Secure Boot is actually enforced), without it the VARS hold no keys.
	// The order is libvirt's, so the persistent XML reads back equal.
	os.FirmwareInfo = &libvirtxml.DomainOSFirmwareInfo{Features: []libvirtxml.DomainOSFirmwareFeature{
		{Enabled: yesNo(secure), Name: "enrolled-keys"},
		{Enabled: yesNo(secure), Name: "secure-boot"},
	}}
	// No <loader secure=…>: libvirt 9.0 (Debian 12) rejects it with
	// autoselection ("loader attribute 'secure' cannot be specified when
	// firmware autoselection is enabled"); the secure-boot feature already
	// selects a Secure Boot capable loader. No <nvram>: libvirt creates the
	// per-domain VARS file from the descriptor's template.
}

func anyBootOrder(spec *kubevirtv1.VirtualMachineInstanceSpec) bool {
	for _, d := range spec.Domain.Devices.Disks {
		if d.BootOrder != nil {
			return true
		}
	}
	for _, i := range spec.Domain.Devices.Interfaces {
		if i.BootOrder != nil {
			return true
		}
	}
	return false
}
