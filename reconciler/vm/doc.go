// Package vm is the VM stage: it makes the node's libvirt domains match the
// desired VMs. Diff compares the desired state with what the hypervisor
// reports, field by field (Fields), and returns the stage's Plan; the
// Reconciler observes, plans and applies it through plan.Apply in dependency
// order (disk artifacts, define, start; stops; deletes last), one VM at a
// time so a failure stays with its object, and keeps its records (what it
// defined, started, and the CPUs and devices it pinned) in the state.
//
// It declares the interfaces it needs from the host (Hypervisor, Disks, KV) and
// must not import runtime drivers; internal/agent wires them in.
package vm
