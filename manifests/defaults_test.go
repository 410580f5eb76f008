package manifests

import (
	"github.com/nodevirt/nodevirt/internal/testenv"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// vm-cirros-sata has `devices: {}`: KubeVirt derives sata disks from the
// volumes; nodevirt also adds the masquerade pod network.
func TestLoad_defaultsCirrosSata(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.KubeVirtExamples(t), "vm-cirros-sata.yaml"))
	if err != nil {
		t.Fatalf("corpus missing: %v", err)
	}
	s := Parse("vm-cirros-sata.yaml", data, Options{})
	vm := s.Objects[0].Value.(*kubevirtv1.VirtualMachine)
	spec := vm.Spec.Template.Spec
	sata := &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusSATA}
	wantDisks := []kubevirtv1.Disk{
		{Name: "containerdisk", DiskDevice: kubevirtv1.DiskDevice{Disk: sata}},
		{Name: "cloudinitdisk", DiskDevice: kubevirtv1.DiskDevice{Disk: sata}},
	}
	if diff := cmp.Diff(wantDisks, spec.Domain.Devices.Disks); diff != "" {
		t.Errorf("disks (-want +got):\n%s", diff)
	}
	wantNets := []kubevirtv1.Network{{Name: "default", NetworkSource: kubevirtv1.NetworkSource{Pod: &kubevirtv1.PodNetwork{}}}}
	if diff := cmp.Diff(wantNets, spec.Networks); diff != "" {
		t.Errorf("networks (-want +got):\n%s", diff)
	}
	wantIfaces := []kubevirtv1.Interface{{Name: "default", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Masquerade: &kubevirtv1.InterfaceMasquerade{}}}}
	if diff := cmp.Diff(wantIfaces, spec.Domain.Devices.Interfaces); diff != "" {
		t.Errorf("interfaces (-want +got):\n%s", diff)
	}
	wantCPU := &kubevirtv1.CPU{Sockets: 1, Cores: 1, Threads: 1, Model: "host-model"}
	if diff := cmp.Diff(wantCPU, spec.Domain.CPU); diff != "" {
		t.Errorf("cpu (-want +got):\n%s", diff)
	}
	if spec.Domain.Machine.Type != "q35" || !*spec.Domain.Features.ACPI.Enabled || spec.Domain.Firmware != nil {
		t.Errorf("machine %+v, features %+v, firmware %+v", spec.Domain.Machine, spec.Domain.Features, spec.Domain.Firmware)
	}
	if vm.Spec.Running != nil || *vm.Spec.RunStrategy != kubevirtv1.RunStrategyHalted {
		t.Errorf("running/runStrategy changed: %v %v", vm.Spec.Running, *vm.Spec.RunStrategy)
	}
}

func TestLoad_instancetypeNotDefaulted(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.KubeVirtExamples(t), "vm-windows-clarge-windows.yaml"))
	if err != nil {
		t.Fatalf("corpus missing: %v", err)
	}
	s := Parse("vm-windows-clarge-windows.yaml", data, Options{})
	spec := s.Objects[0].Value.(*kubevirtv1.VirtualMachine).Spec.Template.Spec
	// The preference's preferredDiskBus must still be able to fill the bus.
	if spec.Domain.Devices.Disks[0].Disk.Bus != "" || spec.Domain.CPU != nil {
		t.Errorf("defaults applied before instancetype expansion: %+v", spec.Domain)
	}
}

func q(s string) resource.Quantity { return resource.MustParse(s) }

func TestDefault(t *testing.T) {
	yes, no := true, false
	grace := int64(30)
	for _, tc := range []struct {
		name  string
		in    kubevirtv1.VirtualMachineInstanceSpec
		check func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec)
	}{
		{
			name: "socketsFromCPULimitRoundedUp",
			in: kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{Resources: kubevirtv1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: q("1500m")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: q("1")},
			}}},
			check: func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec) {
				want := &kubevirtv1.CPU{Sockets: 2, Cores: 1, Threads: 1, Model: "host-model"}
				if diff := cmp.Diff(want, s.Domain.CPU); diff != "" {
					t.Errorf("cpu (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "cpuRequestFromLimit",
			in: kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{Resources: kubevirtv1.ResourceRequirements{
				Limits: corev1.ResourceList{corev1.ResourceCPU: q("3")},
			}}},
			check: func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec) {
				if got := s.Domain.Resources.Requests[corev1.ResourceCPU]; got.Cmp(q("3")) != 0 {
					t.Errorf("requests.cpu = %s, want 3", got.String())
				}
				if s.Domain.CPU.Sockets != 3 {
					t.Errorf("sockets = %d, want 3", s.Domain.CPU.Sockets)
				}
			},
		},
		{
			name: "topologyKept",
			in:   kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{CPU: &kubevirtv1.CPU{Cores: 4, Model: "Conroe"}}},
			check: func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec) {
				want := &kubevirtv1.CPU{Cores: 4, Model: "Conroe"} // no maxSockets: no hotplug
				if diff := cmp.Diff(want, s.Domain.CPU); diff != "" {
					t.Errorf("cpu (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "guestFromRequests",
			in: kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{Resources: kubevirtv1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceMemory: q("1Gi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: q("2Gi")},
			}}},
			check: func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec) {
				if got := s.Domain.Memory.Guest; got.Cmp(q("1Gi")) != 0 || s.Domain.Memory.MaxGuest != nil {
					t.Errorf("memory = %+v, want guest 1Gi and no maxGuest", s.Domain.Memory)
				}
			},
		},
		{
			name: "guestFromLimits",
			in: kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{Resources: kubevirtv1.ResourceRequirements{
				Limits: corev1.ResourceList{corev1.ResourceMemory: q("2Gi")},
			}}},
			check: func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec) {
				if got := s.Domain.Memory.Guest; got.Cmp(q("2Gi")) != 0 {
					t.Errorf("guest = %v, want 2Gi", got)
				}
				if _, ok := s.Domain.Resources.Requests[corev1.ResourceMemory]; ok {
					t.Error("requests.memory was defaulted; only requests.cpu is")
				}
			},
		},
		{
			name: "guestFromHugepages",
			in: kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{Memory: &kubevirtv1.Memory{
				Hugepages: &kubevirtv1.Hugepages{PageSize: "1Gi"},
			}}},
			check: func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec) {
				if got := s.Domain.Memory.Guest; got.Cmp(q("1Gi")) != 0 {
					t.Errorf("guest = %v, want 1Gi", got)
				}
			},
		},
		{
			name: "disksAndBuses",
			in: kubevirtv1.VirtualMachineInstanceSpec{
				Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{
					{Name: "cd", DiskDevice: kubevirtv1.DiskDevice{CDRom: &kubevirtv1.CDRomTarget{}}},
					{Name: "lun", DiskDevice: kubevirtv1.DiskDevice{LUN: &kubevirtv1.LunTarget{}}},
					{Name: "fast", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}},
				}}},
				Volumes: []kubevirtv1.Volume{{Name: "cd"}, {Name: "lun"}, {Name: "fast"}, {Name: "extra"}},
			},
			check: func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec) {
				want := []kubevirtv1.Disk{
					{Name: "cd", DiskDevice: kubevirtv1.DiskDevice{CDRom: &kubevirtv1.CDRomTarget{Bus: "sata", ReadOnly: &yes, Tray: kubevirtv1.TrayStateClosed}}},
					{Name: "lun", DiskDevice: kubevirtv1.DiskDevice{LUN: &kubevirtv1.LunTarget{Bus: "scsi"}}},
					{Name: "fast", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: "virtio"}}},
					{Name: "extra", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: "sata"}}},
				}
				if diff := cmp.Diff(want, s.Domain.Devices.Disks); diff != "" {
					t.Errorf("disks (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "watchdogAction",
			in: kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{
				Watchdog: &kubevirtv1.Watchdog{Name: "wd", WatchdogDevice: kubevirtv1.WatchdogDevice{I6300ESB: &kubevirtv1.I6300ESBWatchdog{}}},
			}}},
			check: func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec) {
				if got := s.Domain.Devices.Watchdog.I6300ESB.Action; got != kubevirtv1.WatchdogActionReset {
					t.Errorf("action = %q, want reset", got)
				}
			},
		},
		{
			name: "noAutoattachPodInterface",
			in: kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{
				AutoattachPodInterface: &no,
			}}},
			check: func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec) {
				if len(s.Networks) != 0 || len(s.Domain.Devices.Interfaces) != 0 {
					t.Errorf("networks %v, interfaces %v; want none", s.Networks, s.Domain.Devices.Interfaces)
				}
			},
		},
		{
			name: "networksKept",
			in: kubevirtv1.VirtualMachineInstanceSpec{Networks: []kubevirtv1.Network{
				{Name: "br", NetworkSource: kubevirtv1.NetworkSource{Multus: &kubevirtv1.MultusNetwork{NetworkName: "br1"}}},
			}},
			check: func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec) {
				if len(s.Networks) != 1 || len(s.Domain.Devices.Interfaces) != 0 {
					t.Errorf("networks %v, interfaces %v", s.Networks, s.Domain.Devices.Interfaces)
				}
			},
		},
		{
			name: "firmwareUUIDNotInvented",
			in: kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{Firmware: &kubevirtv1.Firmware{
				Bootloader: &kubevirtv1.Bootloader{EFI: &kubevirtv1.EFI{}},
			}}},
			check: func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec) {
				if s.Domain.Firmware.UUID != "" || s.Domain.Firmware.Bootloader.EFI == nil {
					t.Errorf("firmware = %+v", s.Domain.Firmware)
				}
			},
		},
		{
			name: "pullPolicies",
			in: kubevirtv1.VirtualMachineInstanceSpec{Volumes: []kubevirtv1.Volume{
				{Name: "a", VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "registry:5000/cirros"}}},
				{Name: "b", VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "quay.io/fedora:latest"}}},
				{Name: "c", VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "registry:5000/cirros:devel"}}},
				{Name: "d", VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "quay.io/f@sha256:abc"}}},
			}},
			check: func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec) {
				var got []corev1.PullPolicy
				for _, v := range s.Volumes {
					got = append(got, v.ContainerDisk.ImagePullPolicy)
				}
				want := []corev1.PullPolicy{corev1.PullAlways, corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullIfNotPresent}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("pull policies (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "hypervDependencies",
			in: kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{Features: &kubevirtv1.Features{Hyperv: &kubevirtv1.FeatureHyperv{
				SyNICTimer: &kubevirtv1.SyNICTimer{},
				EVMCS:      &kubevirtv1.FeatureState{},
				Spinlocks:  &kubevirtv1.FeatureSpinlocks{},
			}}}},
			check: func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec) {
				hv := s.Domain.Features.Hyperv
				if !on(hv.SyNIC) || !on(hv.VPIndex) || !on(hv.VAPIC) || *hv.Spinlocks.Retries != 4096 {
					t.Errorf("hyperv = %+v", hv)
				}
				if diff := cmp.Diff([]kubevirtv1.CPUFeature{{Name: "vmx", Policy: "require"}}, s.Domain.CPU.Features); diff != "" {
					t.Errorf("cpu features (-want +got):\n%s", diff)
				}
			},
		},
		{
			// KubeVirt's mutator forces the policy: evmcs is nested
			// virtualization, useless without vmx in the guest.
			name: "evmcsForcesVMXRequire",
			in: kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{
				Features: &kubevirtv1.Features{Hyperv: &kubevirtv1.FeatureHyperv{EVMCS: &kubevirtv1.FeatureState{}}},
				CPU:      &kubevirtv1.CPU{Features: []kubevirtv1.CPUFeature{{Name: "pcid", Policy: "optional"}, {Name: "vmx", Policy: "disable"}}},
			}},
			check: func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec) {
				want := []kubevirtv1.CPUFeature{{Name: "pcid", Policy: "optional"}, {Name: "vmx", Policy: "require"}}
				if diff := cmp.Diff(want, s.Domain.CPU.Features); diff != "" {
					t.Errorf("cpu features (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "gracePeriod",
			in:   kubevirtv1.VirtualMachineInstanceSpec{},
			check: func(t *testing.T, s *kubevirtv1.VirtualMachineInstanceSpec) {
				if diff := cmp.Diff(&grace, s.TerminationGracePeriodSeconds); diff != "" {
					t.Errorf("terminationGracePeriodSeconds (-want +got):\n%s", diff)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.in.DeepCopy()
			Default(spec)
			tc.check(t, spec)
			// Defaulting twice changes nothing: the reconciler may default a
			// spec that already went through Load.
			again := spec.DeepCopy()
			Default(again)
			if diff := cmp.Diff(spec, again, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Default is not idempotent (-once +twice):\n%s", diff)
			}
		})
	}
}
