package drift

import (
	"github.com/nodevirt/nodevirt/reconciler/host"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/reconciler/vm"
)

// The rule, as Terraform's -detailed-exitcode reads a plan: a step is a
// difference when the host is not (or not yet) what the source asks for,
// whether or not apply can change that now. Waiting, held, kept-invalid,
// conflicting and restart- or reboot-required steps count: the host does not
// run the source. Only checks that cannot apply to this host are not
// differences. Unknown kinds count, so a new kind is never silently in sync.

// Differs reports whether a step of any stage's plan is a difference.
// Every VM step is one: the VM plan lists only domains that are not in sync
// (a missing or changed domain, one to start or stop, an extra or orphaned
// one, a conflict, a wait, a prune the guard holds, an invalid manifest's
// kept state, a restart the VM refused). Every storage step is one, waits
// included: a claim waiting for its import is not yet what the source asks.
func Differs(s plan.Step) bool {
	switch s.Action {
	case host.NotApplicable:
		// An SELinux label check on a host without SELinux: nothing to do
		// here, ever.
		return false
	case host.DeviceUnbound:
		// A permitted device nothing asks to bind: the source permits it,
		// it does not ask for anything.
		return false
	}
	return true
}

// Plans is one node's plans, any of them nil when not computed.
type Plans struct {
	VMs     *vm.Plan
	Host    *host.Plan
	Storage *storage.Plan
	// Snapshots are the snapshot stage's steps: each is a difference.
	Snapshots []plan.Step
}

// Differences counts the steps of the plans that are differences.
func (p Plans) Differences() int {
	n := 0
	if p.VMs != nil {
		for _, a := range p.VMs.Actions {
			if Differs(a.PlanStep()) {
				n++
			}
		}
	}
	if p.Host != nil {
		for _, a := range p.Host.Actions {
			if Differs(a.PlanStep()) {
				n++
			}
		}
	}
	if p.Storage != nil {
		for _, a := range p.Storage.Actions {
			if Differs(a.PlanStep()) {
				n++
			}
		}
	}
	for _, s := range p.Snapshots {
		if Differs(s) {
			n++
		}
	}
	return n
}

// Incomplete reports whether a file of the revision failed to parse: the
// objects it holds are unknown, so the plans cannot say what differs.
func (p Plans) Incomplete() bool {
	return (p.VMs != nil && p.VMs.PruneSuspended) || (p.Host != nil && p.Host.PruneSuspended) ||
		(p.Storage != nil && p.Storage.PruneSuspended)
}

// stepStatus is what a drift report calls one step of the host or storage
// plan: the stages share their informational actions (keep, hold, wait,
// conflict), so one reading serves both.
func stepStatus(s plan.Step) string {
	if s.Drift {
		return Drifted
	}
	switch s.Action {
	case host.RebootRequired:
		return RebootRequired
	case host.NotApplicable:
		return NotApplicable
	case host.DeviceUnbound:
		return Unbound
	case plan.Keep:
		return Invalid
	case plan.Hold:
		return Held
	case plan.Wait:
		return Waiting
	case plan.Conflict:
		return Conflict
	}
	return Pending
}
