package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureMemoryBacking(t *testing.T) {
	page := func(kib uint) *libvirtxml.Domain {
		return &libvirtxml.Domain{MemoryBacking: &libvirtxml.DomainMemoryBacking{
			MemoryHugePages: &libvirtxml.DomainMemoryHugepages{Hugepages: []libvirtxml.DomainMemoryHugepage{{Size: kib, Unit: "KiB"}}},
			MemorySource:    &libvirtxml.DomainMemorySource{Type: "memfd"},
		}}
	}
	hugetlbfs := page(2048)
	hugetlbfs.MemoryBacking.MemorySource = nil
	shared := func(source string, hugeKiB uint) *libvirtxml.Domain {
		d := &libvirtxml.Domain{MemoryBacking: &libvirtxml.DomainMemoryBacking{MemoryAccess: &libvirtxml.DomainMemoryAccess{Mode: "shared"}}}
		if source != "" {
			d.MemoryBacking.MemorySource = &libvirtxml.DomainMemorySource{Type: source}
		}
		if hugeKiB != 0 {
			d.MemoryBacking.MemoryHugePages = page(hugeKiB).MemoryBacking.MemoryHugePages
		}
		return d
	}
	virtiofs := []kubevirtv1.Filesystem{{Name: "share", Virtiofs: &kubevirtv1.FilesystemVirtiofs{}}}
	for _, tc := range []struct {
		name        string
		memory      *kubevirtv1.Memory
		fs          []kubevirtv1.Filesystem
		annotations map[string]string
		want        *libvirtxml.Domain
		diags       []diagLine
	}{
		{name: "virtiofs shares memfd memory", memory: &kubevirtv1.Memory{Guest: qty("1Gi")}, fs: virtiofs, want: shared("memfd", 0)},
		{name: "virtiofs shares huge pages", memory: &kubevirtv1.Memory{Guest: qty("1Gi"), Hugepages: &kubevirtv1.Hugepages{PageSize: "2Mi"}}, fs: virtiofs, want: shared("memfd", 2048)},
		{name: "no hugepages", memory: &kubevirtv1.Memory{Guest: qty("1Gi")}, want: &libvirtxml.Domain{}},
		{name: "2Mi", memory: &kubevirtv1.Memory{Guest: qty("1Gi"), Hugepages: &kubevirtv1.Hugepages{PageSize: "2Mi"}}, want: page(2048)},
		{
			name:        "huge pages on hugetlbfs when the memfd annotation is false",
			memory:      &kubevirtv1.Memory{Guest: qty("1Gi"), Hugepages: &kubevirtv1.Hugepages{PageSize: "2Mi"}},
			annotations: map[string]string{"kubevirt.io/memfd": "false"},
			want:        hugetlbfs,
		},
		{name: "1Gi", memory: &kubevirtv1.Memory{Guest: qty("4Gi"), Hugepages: &kubevirtv1.Hugepages{PageSize: "1Gi"}}, want: page(1048576)},
		{
			name:   "other sizes are not mapped",
			memory: &kubevirtv1.Memory{Guest: qty("1Gi"), Hugepages: &kubevirtv1.Hugepages{PageSize: "16Ki"}},
			want:   &libvirtxml.Domain{},
			diags:  []diagLine{{"error", "spec.template.spec.domain.memory.hugepages.pageSize", `invalid: page size "16Ki" is not 2Mi or 1Gi`}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s kubevirtv1.VirtualMachineInstanceSpec
			s.Domain.Memory = tc.memory
			s.Domain.Devices.Filesystems = tc.fs
			in := testInput(s)
			in.Annotations = tc.annotations
			dom, out := run(configureMemoryBacking, in)
			if diff := cmp.Diff(tc.want, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.diags, diagLines(out)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHugepagesNeeded(t *testing.T) {
	type need struct {
		PageKiB, Pages int64
		OK             bool
	}
	for _, tc := range []struct {
		name   string
		memory *kubevirtv1.Memory
		want   need
	}{
		{name: "no memory", want: need{}},
		{name: "no hugepages", memory: &kubevirtv1.Memory{Guest: qty("1Gi")}, want: need{}},
		{name: "seed 8.14.8: 4Gi in 1Gi pages", memory: &kubevirtv1.Memory{Guest: qty("4Gi"), Hugepages: &kubevirtv1.Hugepages{PageSize: "1Gi"}}, want: need{1048576, 4, true}},
		{name: "1Gi in 2Mi pages", memory: &kubevirtv1.Memory{Guest: qty("1Gi"), Hugepages: &kubevirtv1.Hugepages{PageSize: "2Mi"}}, want: need{2048, 512, true}},
		{name: "partial page rounds up", memory: &kubevirtv1.Memory{Guest: qty("1025Mi"), Hugepages: &kubevirtv1.Hugepages{PageSize: "2Mi"}}, want: need{2048, 513, true}},
		{name: "unsupported size", memory: &kubevirtv1.Memory{Guest: qty("1Gi"), Hugepages: &kubevirtv1.Hugepages{PageSize: "64Ki"}}, want: need{}},
		{name: "unparsable size", memory: &kubevirtv1.Memory{Guest: qty("1Gi"), Hugepages: &kubevirtv1.Hugepages{PageSize: "big"}}, want: need{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s kubevirtv1.VirtualMachineInstanceSpec
			s.Domain.Memory = tc.memory
			var got need
			got.PageKiB, got.Pages, got.OK = HugepagesNeeded(&s)
			if got != tc.want {
				t.Errorf("HugepagesNeeded = %+v, want %+v", got, tc.want)
			}
		})
	}
}
