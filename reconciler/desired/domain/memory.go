package domain

import (
	"libvirt.org/go/libvirtxml"
)

// configureMemory owns <memory> and <currentMemory>.
func configureMemory(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	m := in.Spec.Domain.Memory
	if m == nil || m.Guest == nil {
		// manifests.Default copies resources.requests.memory (or limits)
		// into memory.guest, so this is a manifest without any memory.
		out.invalid("domain.memory.guest", "no guest memory: set domain.memory.guest or domain.resources.requests.memory")
		return
	}
	// KiB, rounded down: libvirt stores memory in KiB whatever unit it is
	// given, so writing KiB keeps the persistent XML equal to ours for drift.
	kib := m.Guest.Value() / 1024
	if kib <= 0 {
		out.invalid("domain.memory.guest", "guest memory %s is less than 1Ki", m.Guest.String())
		return
	}
	dom.Memory = &libvirtxml.DomainMemory{Value: uint(kib), Unit: "KiB"}
	dom.CurrentMemory = &libvirtxml.DomainCurrentMemory{Value: uint(kib), Unit: "KiB"}
}
