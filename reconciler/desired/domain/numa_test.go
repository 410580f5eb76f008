package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// numaSpec is a guestMappingPassthrough VM of vcpus cores, memory in 2Mi pages.
func numaSpec(vcpus uint32, memory string) kubevirtv1.VirtualMachineInstanceSpec {
	var s kubevirtv1.VirtualMachineInstanceSpec
	s.Domain.CPU = &kubevirtv1.CPU{Cores: vcpus, DedicatedCPUPlacement: true,
		NUMA: &kubevirtv1.NUMA{GuestMappingPassthrough: &kubevirtv1.NUMAGuestMappingPassthrough{}}}
	s.Domain.Memory = &kubevirtv1.Memory{Guest: qty(memory), Hugepages: &kubevirtv1.Hugepages{PageSize: "2Mi"}}
	return s
}

func TestGuestNUMA(t *testing.T) {
	oneNode := []NUMANode{{ID: 0, CPUs: []uint{0, 1, 2, 3}}}
	// Host node IDs need not be dense nor start at 0.
	fourNodes := []NUMANode{{ID: 0, CPUs: []uint{0, 1}}, {ID: 1, CPUs: []uint{2, 3}}, {ID: 4, CPUs: []uint{4, 5}}, {ID: 5, CPUs: []uint{6, 7}}}
	for _, tc := range []struct {
		name    string
		spec    kubevirtv1.VirtualMachineInstanceSpec
		pins    []uint
		host    []NUMANode
		want    []guestCell
		problem string
	}{
		{
			name: "one host node: one cell with all memory",
			spec: numaSpec(2, "1Gi"), pins: []uint{1, 2}, host: oneNode,
			want: []guestCell{{hostNode: 0, vcpus: []uint{0, 1}, kib: 1048576}},
		},
		{
			name: "cells in host node order, vCPUs as pinned; the odd page goes to the first cell",
			// 3 cells, 1026Mi = 513 pages: 171 each.
			spec: numaSpec(4, "1026Mi"), pins: []uint{6, 0, 7, 4}, host: fourNodes,
			want: []guestCell{
				{hostNode: 0, vcpus: []uint{1}, kib: 171 * 2048},
				{hostNode: 4, vcpus: []uint{3}, kib: 171 * 2048},
				{hostNode: 5, vcpus: []uint{0, 2}, kib: 171 * 2048},
			},
		},
		{
			name: "pages that do not divide go one each to the first cells",
			// 2 cells, 1030Mi = 515 pages: 258 + 257.
			spec: numaSpec(2, "1030Mi"), pins: []uint{0, 2}, host: fourNodes,
			want: []guestCell{{hostNode: 0, vcpus: []uint{0}, kib: 258 * 2048}, {hostNode: 1, vcpus: []uint{1}, kib: 257 * 2048}},
		},
		{name: "no pins yet: the VM waits, nothing to map", spec: numaSpec(2, "1Gi"), host: oneNode},
		{
			name: "without dedicated CPUs", spec: func() kubevirtv1.VirtualMachineInstanceSpec {
				s := numaSpec(2, "1Gi")
				s.Domain.CPU.DedicatedCPUPlacement = false
				return s
			}(), host: oneNode,
			problem: "needs domain.cpu.dedicatedCpuPlacement: guest cells follow the host nodes of the pinned CPUs",
		},
		{
			name: "without hugepages", spec: func() kubevirtv1.VirtualMachineInstanceSpec {
				s := numaSpec(2, "1Gi")
				s.Domain.Memory.Hugepages = nil
				return s
			}(), pins: []uint{0, 1}, host: oneNode,
			problem: "needs domain.memory.hugepages of 2Mi or 1Gi: passing through a NUMA topology is restricted to VMs with hugepages, as in KubeVirt",
		},
		{
			name: "unknown host topology", spec: numaSpec(2, "1Gi"), pins: []uint{0, 1},
			problem: "the host's NUMA topology is unknown (no /sys/devices/system/node)",
		},
		{
			name: "a pin outside every node", spec: numaSpec(2, "1Gi"), pins: []uint{0, 9}, host: oneNode,
			problem: "vCPU 1 is pinned to host CPU 9, which is in no NUMA node of the host",
		},
		{
			name: "less than a page per cell", spec: numaSpec(2, "2Mi"), pins: []uint{0, 2}, host: fourNodes,
			problem: "guest memory 2097152 bytes is less than one 2Mi huge page for each of the 2 NUMA cells",
		},
		{
			name: "memory not in whole pages", spec: numaSpec(1, "3Mi"), pins: []uint{0}, host: oneNode,
			problem: "guest memory 3145728 bytes is not a whole number of 2Mi huge pages",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput(tc.spec)
			if tc.pins != nil {
				in.Resources.Pins = &Pinning{VCPUs: tc.pins}
			}
			ctx := testContext
			ctx.HostNUMA = tc.host
			cells, problem := guestNUMA(in, ctx)
			if diff := cmp.Diff(tc.want, cells, cmp.AllowUnexported(guestCell{})); diff != "" {
				t.Errorf("cells (-want +got):\n%s", diff)
			}
			if problem != tc.problem {
				t.Errorf("problem = %q, want %q", problem, tc.problem)
			}
		})
	}
}

// The three configurators that share the layout each write their own part,
// and only configureNUMATune reports a problem.
func TestGuestNUMA_elements(t *testing.T) {
	in := testInput(numaSpec(2, "1Gi"))
	in.Resources.Pins = &Pinning{VCPUs: []uint{3, 12}}

	dom, out := run(configureNUMATune, in)
	want := &libvirtxml.Domain{NUMATune: &libvirtxml.DomainNUMATune{
		Memory:   &libvirtxml.DomainNUMATuneMemory{Mode: "strict", Nodeset: "0,1"},
		MemNodes: []libvirtxml.DomainNUMATuneMemNode{{CellID: 0, Mode: "strict", Nodeset: "0"}, {CellID: 1, Mode: "strict", Nodeset: "1"}},
	}}
	if diff := cmp.Diff(want, dom); diff != "" || len(out.diags) > 0 {
		t.Errorf("numatune (-want +got):\n%s\n%v", diff, out.diags)
	}

	dom, _ = run(configureCPU, in)
	zero, one := uint(0), uint(1)
	wantNUMA := &libvirtxml.DomainNuma{Cell: []libvirtxml.DomainCell{
		{ID: &zero, CPUs: "0", Memory: 524288, Unit: "KiB"},
		{ID: &one, CPUs: "1", Memory: 524288, Unit: "KiB"},
	}}
	if diff := cmp.Diff(wantNUMA, dom.CPU.Numa); diff != "" {
		t.Errorf("cpu numa (-want +got):\n%s", diff)
	}

	dom, _ = run(configureMemoryBacking, in)
	wantMB := &libvirtxml.DomainMemoryBacking{
		MemoryHugePages: &libvirtxml.DomainMemoryHugepages{Hugepages: []libvirtxml.DomainMemoryHugepage{
			{Size: 2048, Unit: "KiB", Nodeset: "0"}, {Size: 2048, Unit: "KiB", Nodeset: "1"},
		}},
		MemorySource:     &libvirtxml.DomainMemorySource{Type: "memfd"},
		MemoryAllocation: &libvirtxml.DomainMemoryAllocation{Mode: "immediate"},
	}
	if diff := cmp.Diff(wantMB, dom.MemoryBacking); diff != "" {
		t.Errorf("memoryBacking (-want +got):\n%s", diff)
	}

	in.Spec.Domain.CPU.DedicatedCPUPlacement = false
	dom, out = run(configureNUMATune, in)
	if diff := cmp.Diff([]diagLine{{"error", "spec.template.spec.domain.cpu.numa.guestMappingPassthrough",
		"invalid: needs domain.cpu.dedicatedCpuPlacement: guest cells follow the host nodes of the pinned CPUs"}}, diagLines(out)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	if dom.NUMATune != nil {
		t.Error("numatune written despite the problem")
	}
	assertPathsAreFields(t, in, out.diags)
	if dom, _ := run(configureCPU, in); dom.CPU.Numa != nil {
		t.Error("cpu numa written despite the problem")
	}
}
