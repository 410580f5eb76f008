package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	k8sv1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureCPUTune(t *testing.T) {
	quota := func(q int64) *libvirtxml.Domain {
		return &libvirtxml.Domain{CPUTune: &libvirtxml.DomainCPUTune{
			GlobalPeriod: &libvirtxml.DomainCPUTunePeriod{Value: 100000},
			GlobalQuota:  &libvirtxml.DomainCPUTuneQuota{Value: q},
		}}
	}
	for _, tc := range []struct {
		name   string
		limits k8sv1.ResourceList
		want   *libvirtxml.Domain
	}{
		{name: "no limit", want: &libvirtxml.Domain{}},
		{name: "memory limit only", limits: k8sv1.ResourceList{k8sv1.ResourceMemory: *qty("1Gi")}, want: &libvirtxml.Domain{}},
		{name: "two CPUs", limits: k8sv1.ResourceList{k8sv1.ResourceCPU: *qty("2")}, want: quota(200000)},
		{name: "millicores", limits: k8sv1.ResourceList{k8sv1.ResourceCPU: *qty("1500m")}, want: quota(150000)},
		// The kernel's minimum quota is 1ms; the kubelet rounds up to it.
		{name: "tiny limit", limits: k8sv1.ResourceList{k8sv1.ResourceCPU: *qty("5m")}, want: quota(1000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s kubevirtv1.VirtualMachineInstanceSpec
			s.Domain.Resources.Limits = tc.limits
			dom, out := run(configureCPUTune, testInput(s))
			if diff := cmp.Diff(tc.want, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if len(out.diags) > 0 {
				t.Errorf("unexpected diagnostics %v", diagLines(out))
			}
		})
	}
}

// Pins bound before conversion become <vcpupin> per vCPU and <emulatorpin>,
// beside a CPU limit; a pinning that does not fit the topology is refused.
func TestConfigureCPUTune_pins(t *testing.T) {
	var s kubevirtv1.VirtualMachineInstanceSpec
	s.Domain.CPU = &kubevirtv1.CPU{Sockets: 1, Cores: 2, Threads: 1, DedicatedCPUPlacement: true, IsolateEmulatorThread: true}
	s.Domain.Resources.Limits = k8sv1.ResourceList{k8sv1.ResourceCPU: *qty("2")}
	in := testInput(s)
	emu := uint(7)
	in.Resources.Pins = &Pinning{VCPUs: []uint{4, 6}, Emulator: &emu}
	dom, out := run(configureCPUTune, in)
	want := &libvirtxml.Domain{CPUTune: &libvirtxml.DomainCPUTune{
		GlobalPeriod: &libvirtxml.DomainCPUTunePeriod{Value: 100000},
		GlobalQuota:  &libvirtxml.DomainCPUTuneQuota{Value: 200000},
		VCPUPin:      []libvirtxml.DomainCPUTuneVCPUPin{{VCPU: 0, CPUSet: "4"}, {VCPU: 1, CPUSet: "6"}},
		EmulatorPin:  &libvirtxml.DomainCPUTuneEmulatorPin{CPUSet: "7"},
	}}
	if diff := cmp.Diff(want, dom); diff != "" || len(out.diags) > 0 {
		t.Errorf("domain (-want +got):\n%s\n%v", diff, diagLines(out))
	}
	if VCPUs(&s) != 2 {
		t.Errorf("VCPUs = %d, want 2", VCPUs(&s))
	}
	in.Resources.Pins = &Pinning{VCPUs: []uint{4}}
	if _, out := run(configureCPUTune, in); len(out.diags) != 1 || out.diags[0].Path != "spec.template.spec.domain.cpu.dedicatedCpuPlacement" {
		t.Errorf("a pinning of the wrong size must be refused: %v", diagLines(out))
	}
}

// Limits the domain has no counterpart for are warned, each by name.
func TestConfigureCPUTune_otherLimitsWarned(t *testing.T) {
	var s kubevirtv1.VirtualMachineInstanceSpec
	s.Domain.Resources.Limits = k8sv1.ResourceList{
		k8sv1.ResourceCPU: *qty("1"), "nvidia.com/gpu": *qty("1"), k8sv1.ResourceEphemeralStorage: *qty("1Gi"),
	}
	_, out := run(configureCPUTune, testInput(s))
	p := "spec.template.spec.domain.resources.limits"
	want := []diagLine{
		{"warning", p, "ignored: not supported yet; limit ephemeral-storage applies to KubeVirt's pod; only cpu and memory limit the domain (devices: use domain.devices.gpus or hostDevices)"},
		{"warning", p, "ignored: not supported yet; limit nvidia.com/gpu applies to KubeVirt's pod; only cpu and memory limit the domain (devices: use domain.devices.gpus or hostDevices)"},
	}
	if diff := cmp.Diff(want, diagLines(out)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
}
