package manifests

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// windowsVM is what `virtctl create vm --instancetype u1.large
// --preference NAME` writes, plus an installer CD-ROM.
func windowsVM(preference, passthrough string) string {
	return "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: win\n  namespace: lab\nspec:\n  runStrategy: Always\n" +
		"  instancetype: {name: u1.large}\n  preference: {name: " + preference + "}\n" +
		"  template:\n    spec:\n      domain:\n" + passthrough +
		"        devices:\n          disks: [{name: root}, {name: installer, cdrom: {}}]\n" +
		"      volumes:\n      - {name: root, persistentVolumeClaim: {claimName: win-root}}\n      - {name: installer, persistentVolumeClaim: {claimName: win-iso}}\n"
}

// windowsSpec loads the real common-instancetypes windows preferences with
// a VM that uses one of them and returns the VM's expanded, defaulted spec.
func windowsSpec(t *testing.T, vmDoc string) *kubevirtv1.VirtualMachineInstanceSpec {
	t.Helper()
	prefs, err := os.ReadFile(filepath.Join("testdata", "common-instancetypes", "windows.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := loadFiles(t, map[string]string{"windows.yaml": string(prefs), "vm.yaml": vmDoc})
	if errs := s.Diags.Errors(); len(errs) > 0 {
		t.Fatalf("unexpected errors:\n%v", errs.Err())
	}
	o, spec := vmSpec(t, s, "win")
	if !o.Valid {
		t.Fatal("the expanded VM is invalid")
	}
	return spec
}

// Every preferred* field the windows preferences set reaches the VM, with
// KubeVirt's defaults on top: the Hyper-V set (its dependencies already
// enabled by the preference), the clock, EFI with Secure Boot and SMM, a
// persistent TPM, and the SATA or virtio device choices.
func TestWindowsPreferences(t *testing.T) {
	on := &kubevirtv1.FeatureState{Enabled: ptrTo(true)}
	off := ptrTo(false)
	hyperv := &kubevirtv1.FeatureHyperv{
		Relaxed: on, VAPIC: on, VPIndex: on, Runtime: on, SyNIC: on, Reset: on,
		Frequencies: on, Reenlightenment: on, IPI: on,
		Spinlocks:  &kubevirtv1.FeatureSpinlocks{FeatureState: *on, Retries: ptrTo(uint32(8191))},
		SyNICTimer: &kubevirtv1.SyNICTimer{FeatureState: *on, Direct: on},
		TLBFlush:   &kubevirtv1.TLBFlush{FeatureState: *on},
	}
	clock := &kubevirtv1.Clock{
		ClockOffset: kubevirtv1.ClockOffset{UTC: &kubevirtv1.ClockOffsetUTC{}},
		Timer: &kubevirtv1.Timer{
			HPET:   &kubevirtv1.HPETTimer{Enabled: off},
			PIT:    &kubevirtv1.PITTimer{TickPolicy: kubevirtv1.PITTickPolicyDelay, Enabled: ptrTo(true)},
			RTC:    &kubevirtv1.RTCTimer{TickPolicy: kubevirtv1.RTCTickPolicyCatchup, Enabled: ptrTo(true)},
			Hyperv: &kubevirtv1.HypervTimer{Enabled: ptrTo(true)},
		},
	}
	type devices struct {
		DiskBus, CDROMBus, InterfaceModel string
		Inputs                            []kubevirtv1.Input
		Video                             *kubevirtv1.VideoDevice
		TPM                               *kubevirtv1.TPMDevice
	}
	type summary struct {
		Features                *kubevirtv1.Features
		Clock                   *kubevirtv1.Clock
		EFI                     *kubevirtv1.EFI
		Sockets, Cores, Threads uint32
		Devices                 devices
		Grace                   int64
	}
	windows := func(sockets, cores uint32, d devices) summary {
		return summary{
			Features: &kubevirtv1.Features{ACPI: *on, APIC: &kubevirtv1.FeatureAPIC{FeatureState: *on}, SMM: on, Hyperv: hyperv},
			Clock:    clock,
			EFI:      &kubevirtv1.EFI{Persistent: ptrTo(true), SecureBoot: ptrTo(true)},
			Sockets:  sockets, Cores: cores, Threads: 1,
			Devices: d,
			Grace:   3600,
		}
	}
	persistentTPM := &kubevirtv1.TPMDevice{Persistent: ptrTo(true)}
	for _, tc := range []struct {
		preference string
		want       summary
	}{
		{"windows.11", windows(1, 2, devices{
			DiskBus: "sata", CDROMBus: "sata", InterfaceModel: "e1000e",
			Inputs: []kubevirtv1.Input{{Name: "default-0", Bus: "usb", Type: "tablet"}}, TPM: persistentTPM,
		})},
		{"windows.11.virtio", windows(1, 2, devices{
			DiskBus: "virtio", CDROMBus: "sata", InterfaceModel: "virtio",
			Inputs: []kubevirtv1.Input{{Name: "default-0", Bus: "virtio", Type: "tablet"}},
			Video:  &kubevirtv1.VideoDevice{Type: "virtio"}, TPM: persistentTPM,
		})},
		{"windows.2k22", windows(2, 1, devices{
			DiskBus: "sata", CDROMBus: "sata", InterfaceModel: "e1000e",
			Inputs: []kubevirtv1.Input{{Name: "default-0", Bus: "usb", Type: "tablet"}}, TPM: persistentTPM,
		})},
	} {
		t.Run(tc.preference, func(t *testing.T) {
			spec := windowsSpec(t, windowsVM(tc.preference, ""))
			d := spec.Domain
			got := summary{
				Features: d.Features, Clock: d.Clock, EFI: d.Firmware.Bootloader.EFI,
				Sockets: d.CPU.Sockets, Cores: d.CPU.Cores, Threads: d.CPU.Threads,
				Devices: devices{
					DiskBus: string(d.Devices.Disks[0].Disk.Bus), CDROMBus: string(d.Devices.Disks[1].CDRom.Bus),
					InterfaceModel: d.Devices.Interfaces[0].Model, Inputs: d.Devices.Inputs,
					Video: d.Devices.Video, TPM: d.Devices.TPM,
				},
				Grace: *spec.TerminationGracePeriodSeconds,
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("expanded VM (-want +got):\n%s", diff)
			}
		})
	}
}

// A VM passing the host's enlightenments through takes none from the
// preference, as in KubeVirt, which refuses hyperv and hypervPassthrough
// together; the rest of the preference still applies.
func TestWindowsPreferences_hypervPassthrough(t *testing.T) {
	spec := windowsSpec(t, windowsVM("windows.11", "        features: {hypervPassthrough: {enabled: true}}\n"))
	f := spec.Domain.Features
	if f.Hyperv != nil {
		t.Errorf("hyperv = %+v, want none beside hypervPassthrough", f.Hyperv)
	}
	if f.HypervPassthrough == nil || f.SMM == nil || spec.Domain.Clock == nil || spec.Domain.Clock.Timer.Hyperv == nil {
		t.Errorf("features %+v, clock %+v: the preference's other settings are missing", f, spec.Domain.Clock)
	}
}
