package domain

import (
	"fmt"
	"strconv"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// NUMANode is one host NUMA node and its CPUs, as the host reports them
// (libvirt's capabilities, /sys/devices/system/node).
type NUMANode struct {
	ID   uint
	CPUs []uint
}

// guestCell is one guest NUMA cell of guestMappingPassthrough: the vCPUs
// pinned to one host node, and its share of guest memory.
type guestCell struct {
	hostNode uint
	vcpus    []uint
	kib      uint
}

// numaPath is where guest NUMA problems are reported.
const numaPath = "domain.cpu.numa.guestMappingPassthrough"

// guestNUMA lays out the guest NUMA cells of a guestMappingPassthrough VM
// as KubeVirt's numaMapping does: one guest cell per host node that holds
// pinned vCPUs (in host node order), each bound strictly to that node's
// memory, the guest memory split evenly in whole huge pages, the pages
// that do not divide going one each to the first cells. It returns no
// cells when the VM asks for no mapping or its CPUs are not pinned yet
// (it waits for them), and a problem when the mapping cannot be made.
func guestNUMA(in Input, ctx Context) (cells []guestCell, problem string) {
	c := in.Spec.Domain.CPU
	if c == nil || c.NUMA == nil || c.NUMA.GuestMappingPassthrough == nil {
		return nil, ""
	}
	if !c.DedicatedCPUPlacement {
		return nil, "needs domain.cpu.dedicatedCpuPlacement: guest cells follow the host nodes of the pinned CPUs"
	}
	pageKiB, _, ok := HugepagesNeeded(in.Spec)
	if !ok {
		return nil, "needs domain.memory.hugepages of 2Mi or 1Gi: passing through a NUMA topology is restricted to VMs with hugepages, as in KubeVirt"
	}
	pins := in.Resources.Pins
	if pins == nil || len(pins.VCPUs) != VCPUs(in.Spec) {
		// No pins (the VM waits for CPUs) or the wrong count, which
		// configureCPUTune reports.
		return nil, ""
	}
	if len(ctx.HostNUMA) == 0 {
		return nil, "the host's NUMA topology is unknown (no /sys/devices/system/node)"
	}
	nodeOf := map[uint]uint{}
	for _, n := range ctx.HostNUMA {
		for _, cpu := range n.CPUs {
			nodeOf[cpu] = n.ID
		}
	}
	byNode := map[uint][]uint{}
	for vcpu, cpu := range pins.VCPUs {
		node, ok := nodeOf[cpu]
		if !ok {
			return nil, fmt.Sprintf("vCPU %d is pinned to host CPU %d, which is in no NUMA node of the host", vcpu, cpu)
		}
		byNode[node] = append(byNode[node], uint(vcpu))
	}
	for _, n := range ctx.HostNUMA {
		if v, ok := byNode[n.ID]; ok {
			cells = append(cells, guestCell{hostNode: n.ID, vcpus: v})
		}
	}

	page := pageKiB * 1024
	mem := guestMemory(in.Spec)
	count := int64(len(cells))
	switch {
	case mem < count*page:
		return nil, fmt.Sprintf("guest memory %d bytes is less than one %s huge page for each of the %d NUMA cells", mem, in.Spec.Domain.Memory.Hugepages.PageSize, count)
	case mem%page != 0:
		return nil, fmt.Sprintf("guest memory %d bytes is not a whole number of %s huge pages", mem, in.Spec.Domain.Memory.Hugepages.PageSize)
	}
	pages := mem / page
	for i := range cells {
		n := pages / count
		if int64(i) < pages%count {
			n++
		}
		cells[i].kib = uint(n * pageKiB)
	}
	return cells, ""
}

// configureNUMATune owns <numatune> and reports guest NUMA problems; the
// cells themselves are in <cpu><numa> (configureCPU) and the per-cell huge
// pages in <memoryBacking> (configureMemoryBacking), from the same layout.
func configureNUMATune(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	cells, problem := guestNUMA(in, ctx)
	if problem != "" {
		out.invalid(numaPath, "%s", problem)
		return
	}
	if len(cells) == 0 {
		return
	}
	tune := &libvirtxml.DomainNUMATune{}
	var nodes []string
	for i, c := range cells {
		node := strconv.FormatUint(uint64(c.hostNode), 10)
		nodes = append(nodes, node)
		tune.MemNodes = append(tune.MemNodes, libvirtxml.DomainNUMATuneMemNode{CellID: uint(i), Mode: "strict", Nodeset: node})
	}
	tune.Memory = &libvirtxml.DomainNUMATuneMemory{Mode: "strict", Nodeset: strings.Join(nodes, ",")}
	dom.NUMATune = tune
}

// numaCells is <cpu><numa> for the layout.
func numaCells(cells []guestCell) *libvirtxml.DomainNuma {
	if len(cells) == 0 {
		return nil
	}
	n := &libvirtxml.DomainNuma{}
	for i, c := range cells {
		id := uint(i)
		n.Cell = append(n.Cell, libvirtxml.DomainCell{ID: &id, CPUs: joinUints(c.vcpus), Memory: c.kib, Unit: "KiB"})
	}
	return n
}

func joinUints(v []uint) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.FormatUint(uint64(n), 10)
	}
	return strings.Join(s, ",")
}
