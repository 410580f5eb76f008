// Package hv is the vocabulary shared by the reconciler's Hypervisor interface and
// the drivers that implement it: domain status, run states and lifecycle events.
// It holds plain data only, so the reconciler can import it without pulling in a
// driver (and cgo).
package hv

import "errors"

// ErrUnavailable matches (errors.Is) an error a driver returns because it
// could not reach the hypervisor or lost the connection during the call
// (libvirtd stopped or restarting), not because the operation itself was
// refused. Such a call may or may not have taken effect: callers observe
// again and re-plan rather than retry blindly, and the VM is not to blame
// (no start back-off).
var ErrUnavailable = errors.New("hypervisor unavailable")

// State is a domain's run state as libvirt reports it.
type State string

const (
	Running     State = "running"
	Blocked     State = "blocked"
	Paused      State = "paused"
	ShuttingOff State = "shutting-down"
	Shutoff     State = "shutoff"
	Crashed     State = "crashed"
	PMSuspended State = "pmsuspended"
	NoState     State = "nostate"
)

// Active reports whether the domain has a running QEMU process.
func (s State) Active() bool {
	switch s {
	case Running, Blocked, Paused, ShuttingOff, PMSuspended:
		return true
	}
	return false
}

// Domain is one libvirt domain as observed.
type Domain struct {
	Name string
	UUID string
	// State and Reason are libvirt's state and its reason, e.g. shutoff/destroyed,
	// shutoff/shutdown, shutoff/crashed, running/booted.
	State  State
	Reason string
	// Persistent is false for transient domains (they vanish when stopped).
	Persistent bool
	// XML is the persistent (inactive) definition, the one nodevirt writes and
	// drift is measured against. For a transient domain it is the live XML.
	XML string
}

// EventKind classifies a lifecycle event.
type EventKind string

const (
	EventDefined   EventKind = "defined"
	EventUndefined EventKind = "undefined"
	EventStarted   EventKind = "started"
	EventStopped   EventKind = "stopped"
	EventShutdown  EventKind = "shutdown"
	EventSuspended EventKind = "suspended"
	EventResumed   EventKind = "resumed"
	EventCrashed   EventKind = "crashed"
	EventOther     EventKind = "other"
)

// Event is one libvirt lifecycle event for a domain.
type Event struct {
	Domain string
	Kind   EventKind
	// Detail is libvirt's detail for the event, e.g. "destroyed", "failed",
	// "shutdown", "crashed".
	Detail string
}
