package domain

import (
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
// <access mode=shared>, backed by memfd unless huge pages back it (they are
// files already).
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
		}
	}
	if sharesMemory(in) {
		if mb.MemoryHugePages == nil {
			mb.MemorySource = &libvirtxml.DomainMemorySource{Type: "memfd"}
		}
		mb.MemoryAccess = &libvirtxml.DomainMemoryAccess{Mode: "shared"}
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
