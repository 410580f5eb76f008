package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	k8sv1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureMemoryTune(t *testing.T) {
	hardLimit := func(kib uint64) *libvirtxml.Domain {
		return &libvirtxml.Domain{MemoryTune: &libvirtxml.DomainMemoryTune{
			HardLimit: &libvirtxml.DomainMemoryTuneLimit{Value: kib, Unit: "KiB"},
		}}
	}
	for _, tc := range []struct {
		name string
		spec kubevirtv1.VirtualMachineInstanceSpec
		want *libvirtxml.Domain
	}{
		{name: "no limit, no memtune", spec: memSpec("1Gi", nil, nil), want: &libvirtxml.Domain{}},
		{
			// Seed 8.14.1: requests 128Mi, limits 256Mi. Overhead: 128Mi/512
			// = 256Ki page tables + 240Mi + 8Mi (1 vCPU) + 8Mi (I/O thread)
			// + 32Mi (VNC) = 288Mi + 256Ki; the hard limit is 544Mi + 256Ki.
			name: "seed 8.14.1",
			spec: memSpec("128Mi", k8sv1.ResourceList{k8sv1.ResourceMemory: *qty("128Mi")}, k8sv1.ResourceList{k8sv1.ResourceMemory: *qty("256Mi")}),
			want: hardLimit(544*1024 + 256),
		},
		{
			// overcommitGuestOverhead lowers only KubeVirt's request; the
			// limit keeps the overhead (seed 8.14.7.2).
			name: "overcommitGuestOverhead changes nothing",
			spec: func() kubevirtv1.VirtualMachineInstanceSpec {
				s := memSpec("128Mi", k8sv1.ResourceList{k8sv1.ResourceMemory: *qty("128Mi")}, k8sv1.ResourceList{k8sv1.ResourceMemory: *qty("256Mi")})
				s.Domain.Resources.OvercommitGuestOverhead = true
				return s
			}(),
			want: hardLimit(544*1024 + 256),
		},
		{
			// 1Gi guest in 2Mi pages, limit 1Gi+512Mi: only the 512Mi above
			// the hugepage-backed guest memory is charged, plus 2Mi page
			// tables + 288Mi.
			name: "hugepages are not charged",
			spec: func() kubevirtv1.VirtualMachineInstanceSpec {
				s := memSpec("1Gi", nil, k8sv1.ResourceList{k8sv1.ResourceMemory: *qty("1536Mi")})
				s.Domain.Memory.Hugepages = &kubevirtv1.Hugepages{PageSize: "2Mi"}
				return s
			}(),
			want: hardLimit((512 + 2 + 288) * 1024),
		},
		{
			// A decimal limit is rounded up to whole KiB.
			name: "rounded up to KiB",
			spec: memSpec("1G", nil, k8sv1.ResourceList{k8sv1.ResourceMemory: *qty("1G")}),
			want: hardLimit((1000000000 + 1000000000/512 + 288*mib + 1023) / 1024),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dom, out := run(configureMemoryTune, testInput(tc.spec))
			if diff := cmp.Diff(tc.want, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if len(out.diags) > 0 {
				t.Errorf("unexpected diagnostics %v", diagLines(out))
			}
		})
	}
}

// memSpec is a defaulted-looking spec: one vCPU, guest memory, resources.
func memSpec(guest string, requests, limits k8sv1.ResourceList) kubevirtv1.VirtualMachineInstanceSpec {
	var s kubevirtv1.VirtualMachineInstanceSpec
	s.Domain.CPU = &kubevirtv1.CPU{Sockets: 1, Cores: 1, Threads: 1}
	s.Domain.Memory = &kubevirtv1.Memory{Guest: qty(guest)}
	s.Domain.Resources = kubevirtv1.ResourceRequirements{Requests: requests, Limits: limits}
	return s
}

// Each term of the documented formula, alone.
func TestMemoryOverhead(t *testing.T) {
	const base = 240*mib + 8*mib + 8*mib + 32*mib // fixed + 1 vCPU + I/O thread + VNC
	guest := int64(1 << 30)
	pagetables := guest / 512
	for _, tc := range []struct {
		name   string
		change func(s *kubevirtv1.VirtualMachineInstanceSpec)
		arch   string
		want   int64
	}{
		{name: "base", want: pagetables + base},
		{name: "page tables follow the larger of request and guest", change: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.Domain.Resources.Requests = k8sv1.ResourceList{k8sv1.ResourceMemory: *qty("4Gi")}
		}, want: 4*guest/512 + base},
		{name: "8Mi per vCPU", change: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.Domain.CPU = &kubevirtv1.CPU{Sockets: 2, Cores: 2, Threads: 2}
		}, want: pagetables + base + 7*8*mib},
		{name: "no graphics", change: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.Domain.Devices.AutoattachGraphicsDevice = ptr(false)
		}, want: pagetables + base - 32*mib},
		{name: "aarch64 pflash", arch: "aarch64", want: pagetables + base + 128*mib},
		{name: "VFIO", change: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.Domain.Devices.GPUs = []kubevirtv1.GPU{{Name: "gpu", DeviceName: "nvidia.com/T4"}}
		}, want: pagetables + base + 1024*mib},
		{name: "SR-IOV is VFIO", change: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.Domain.Devices.Interfaces = []kubevirtv1.Interface{{Name: "vf", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{SRIOV: &kubevirtv1.InterfaceSRIOV{}}}}
		}, want: pagetables + base + 1024*mib},
		{name: "TPM", change: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.Domain.Devices.TPM = &kubevirtv1.TPMDevice{}
		}, want: pagetables + base + 53*mib},
		{name: "disabled TPM", change: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.Domain.Devices.TPM = &kubevirtv1.TPMDevice{Enabled: ptr(false)}
		}, want: pagetables + base},
		{name: "downward metrics", change: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.Domain.Devices.DownwardMetrics = &kubevirtv1.DownwardMetrics{}
		}, want: pagetables + base + 1*mib},
		{name: "dedicated CPUs", change: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.Domain.CPU.DedicatedCPUPlacement = true
		}, want: pagetables + base + 100*mib},
		{name: "guaranteed QoS", change: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			rl := k8sv1.ResourceList{k8sv1.ResourceMemory: *qty("1Gi"), k8sv1.ResourceCPU: *qty("1")}
			s.Domain.Resources = kubevirtv1.ResourceRequirements{Requests: rl, Limits: rl.DeepCopy()}
		}, want: pagetables + base + 100*mib},
		{name: "reserved overhead", change: func(s *kubevirtv1.VirtualMachineInstanceSpec) {
			s.Domain.Memory.ReservedOverhead = &kubevirtv1.ReservedOverhead{AddedOverhead: qty("1Gi")}
		}, want: pagetables + base + 1024*mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := memSpec("1Gi", nil, nil)
			if tc.change != nil {
				tc.change(&s)
			}
			arch := tc.arch
			if arch == "" {
				arch = "x86_64"
			}
			if got := MemoryOverhead(&s, arch); got != tc.want {
				t.Errorf("MemoryOverhead = %d (%.2fMi), want %d (%.2fMi)", got, float64(got)/mib, tc.want, float64(tc.want)/mib)
			}
		})
	}
}
