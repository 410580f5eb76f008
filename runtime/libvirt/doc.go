// Package virt is nodevirt's libvirt driver. It implements the reconciler's
// Hypervisor interface and its optional EventSource ability on top of
// libvirt.org/go/libvirt (cgo). It owns the libvirt connection and its
// reconnects, the process-wide libvirt event loop, the translation of libvirt
// states, reasons and lifecycle events into the runtime/hv vocabulary, and
// schema validation of domain XML with virt-xml-validate.
//
// The directory is runtime/libvirt but the package is named virt, so that it
// does not shadow the binding it wraps.
//
// This package must not import github.com/nodevirt/nodevirt/reconciler: the
// reconciler declares the interfaces and cmd/nodevirt wires this driver into
// them, so dependencies point one way only. Keeping the cgo binding out of the
// reconciler also keeps the reconciler testable without libvirt.
package virt
