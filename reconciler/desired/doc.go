// Package desired turns a decoded manifest set into the state this node should
// have: one rendered libvirt domain per VirtualMachine placed here, with the
// host artifacts its disks need and the ownership metadata nodevirt writes.
//
// It is pure: no host I/O, no clock. It must not import runtime drivers.
package desired
