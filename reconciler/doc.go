// Package reconciler makes the host match the desired state: it observes the
// hypervisor, asks plan.Diff what to do and applies the plan in dependency
// order (disk artifacts, define, start; stops; deletes last), one VM at a
// time so a failure stays with its object.
//
// It declares the interfaces it needs from the host (Hypervisor, Disks, KV) and
// must not import runtime drivers; cmd/nodevirt wires them in.
package reconciler
