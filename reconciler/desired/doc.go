// Package desired turns a decoded manifest set into the state this node should
// have: one rendered libvirt domain per VirtualMachine placed here, with the
// host artifacts its disks need and the ownership metadata nodevirt writes.
// It resolves what a VM references in other documents of the set (the
// NetworkAttachmentDefinitions behind multus networks) and hands it to the
// converter, which stays a pure function of its input. Node resources are
// decided here too, before conversion (Resources: dedicated CPUs from the
// CPU-manager pool, permitted host devices, where storage keeps each claim,
// keeping the allocations persisted in the state), so the converter writes
// them into the domain and nothing edits the domain afterwards; seal, which
// hashes and stamps ownership, is the last step.
//
// It is pure: no host I/O, no clock. It must not import runtime drivers.
package desired
