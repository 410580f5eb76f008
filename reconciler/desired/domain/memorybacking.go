package domain

import (
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// configureMemoryBacking owns <memoryBacking>: memory.hugepages (SPEC VM-7,
// seed 8.14.8) backs the guest with preallocated huge pages of the given
// size. Unlike KubeVirt, which writes a bare <hugepages/> and lets the pod's
// hugetlbfs mount decide the size, a plain host may have pools of several
// sizes, so the page size is explicit.
//
// A VM with virtiofs filesystems gets shared memory, as KubeVirt gives it:
// <access mode=shared>. As KubeVirt, guest memory comes from memfd whenever
// it is shared or backed by huge pages (QEMU allocates the pages through a
// hugetlb memfd instead of a file on hugetlbfs), unless the
// kubevirt.io/memfd annotation is "false" on a huge-page VM.
// annotationMemfd set to "false" keeps huge pages on hugetlbfs files.
const annotationMemfd = "kubevirt.io/memfd"

func configureMemoryBacking(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	mb := &libvirtxml.DomainMemoryBacking{}
	if m := in.Spec.Domain.Memory; m != nil && m.Hugepages != nil {
		pageKiB, _, ok := HugepagesNeeded(in.Spec)
		if !ok {
			out.invalid("domain.memory.hugepages.pageSize", "page size %q is not 2Mi or 1Gi", m.Hugepages.PageSize)
		} else {
			mb.MemoryHugePages = &libvirtxml.DomainMemoryHugepages{
				Hugepages: []libvirtxml.DomainMemoryHugepage{{Size: uint(pageKiB), Unit: "KiB"}},
			}
			if cells, _ := guestNUMA(in, ctx); len(cells) > 0 {
				// Guest NUMA, as KubeVirt: pages per guest cell, all
				// allocated at start, so each cell's pages come from
				// its host node (numatune) before the guest runs.
				mb.MemoryHugePages.Hugepages = nil
				for i := range cells {
					mb.MemoryHugePages.Hugepages = append(mb.MemoryHugePages.Hugepages, libvirtxml.DomainMemoryHugepage{
						Size: uint(pageKiB), Unit: "KiB", Nodeset: strconv.Itoa(i),
					})
				}
				mb.MemoryAllocation = &libvirtxml.DomainMemoryAllocation{Mode: "immediate"}
			}
		}
	}
	shared := sharesMemory(in)
	if shared {
		mb.MemoryAccess = &libvirtxml.DomainMemoryAccess{Mode: "shared"}
	}
	if shared || (mb.MemoryHugePages != nil && in.Annotations[annotationMemfd] != "false") {
		mb.MemorySource = &libvirtxml.DomainMemorySource{Type: "memfd"}
	}
	if *mb != (libvirtxml.DomainMemoryBacking{}) {
		dom.MemoryBacking = mb
	}
}

// HugepagesNeeded says which huge pages a VM needs from the host before it
// starts: the page size in KiB and how many pages of it (the guest memory
// divided by the page size, rounded up). ok is false when the VM uses no
// huge pages or its page size is not one nodevirt maps (2Mi, 1Gi). The
// reconciler compares it with <root>/sys/kernel/mm/hugepages/hugepages-<size>kB/free_hugepages.
func HugepagesNeeded(spec *kubevirtv1.VirtualMachineInstanceSpec) (pageSizeKiB, pages int64, ok bool) {
	m := spec.Domain.Memory
	if m == nil || m.Hugepages == nil {
		return 0, 0, false
	}
	page, err := resource.ParseQuantity(m.Hugepages.PageSize)
	if err != nil {
		return 0, 0, false
	}
	size := page.Value()
	if size != 2*mib && size != 1024*mib {
		return 0, 0, false
	}
	guest := guestMemory(spec)
	return size / 1024, (guest + size - 1) / size, true
}
