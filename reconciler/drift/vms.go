package drift

import (
	"sort"

	"github.com/nodevirt/nodevirt/reconciler/vm"

	"github.com/nodevirt/nodevirt/reconciler/plan"
)

// Statuses of an entry.
const (
	// Drifted: changed on the host, out of band.
	Drifted = "drifted"
	// Pending: changed in the source, not applied yet.
	Pending = "pending"
	// Missing: in the source, not on the host.
	Missing = "missing"
	// Extra: owned, no longer in the source (to delete, or held by the
	// prune guard).
	Extra = "extra"
	// Invalid: the manifest is broken; the last good state is kept.
	Invalid = "invalid"
	// Conflict: something nodevirt does not own is in the way.
	Conflict = "conflict"
	// Orphan: marked as nodevirt's, not in this agent's inventory.
	Orphan = "orphan"
	// Waiting: cannot be applied until something else happens.
	Waiting = "waiting"
	// Held: a removal stopped by the prune guard or a failed parse.
	Held = "held"
	// RestartRequired: a running VM uses an older definition.
	RestartRequired = "restart-required"
	// RebootRequired: the host runs without staged boot configuration.
	RebootRequired = "reboot-required"
	// NotApplicable: a check that does not apply to this host.
	NotApplicable = "not-applicable"
	// Unbound: a permitted device nothing binds to vfio-pci.
	Unbound = "unbound"
	// HotPlugged: a running VM has a volume attached by hand that the
	// source does not hold.
	HotPlugged = "hot-plugged"
)

// Entry is one VM's difference between source and host.
type Entry struct {
	Object string `json:"object"`
	Domain string `json:"domain"`
	// Status is one of the statuses above; drifted wins over the others
	// when one domain has several steps.
	Status  string        `json:"status"`
	Changes []plan.Change `json:"changes,omitempty"`
	// RunState is the run-state difference, e.g. "want running, is shutoff (destroyed)".
	RunState string `json:"runState,omitempty"`
	Heal     string `json:"heal,omitempty"`
}

// Report is the VM part of `nodevirt drift`.
type Report struct {
	Revision string   `json:"revision"`
	InSync   []string `json:"inSync"`
	Entries  []Entry  `json:"entries"`
	// Drifted counts the entries changed out of band.
	Drifted int `json:"drifted"`
}

// VMs reports the VM plan p, one entry per domain, sorted by domain.
func VMs(p vm.Plan) Report {
	rep := Report{Revision: p.Revision, InSync: p.InSync}
	byDomain := map[string]*Entry{}
	var order []string
	entry := func(a plan.Step) *Entry {
		e, ok := byDomain[a.Target]
		if !ok {
			e = &Entry{Object: a.Object, Domain: a.Target}
			byDomain[a.Target] = e
			order = append(order, a.Target)
		}
		return e
	}
	for _, a := range p.Actions {
		if !Differs(a) {
			continue
		}
		e := entry(a)
		set := func(s string) {
			if e.Status == "" || s == Drifted {
				e.Status = s
			}
		}
		switch a.Action {
		case vm.Create:
			set(Missing)
		case vm.Update:
			if a.Drift {
				set(Drifted)
			} else {
				set(Pending)
			}
			e.Changes = append(e.Changes, a.Changes...)
		case vm.Start:
			e.RunState = "want running, is stopped: " + a.Reason
			// A start after a create is part of the missing VM.
			if a.Drift || e.Status == "" {
				set(Drifted)
			}
		case vm.Stop:
			e.RunState = "want stopped, is running"
			set(Drifted)
		case vm.Restart:
			e.RunState = "running an older definition: " + a.Reason
			set(Pending)
		case vm.RestartRequired:
			e.RunState = "running an older definition: " + a.Reason
			set(RestartRequired)
		case vm.Delete, vm.Hold:
			set(Extra)
			e.Heal = a.Reason
		case vm.Keep:
			set(Invalid)
			e.Heal = a.Reason
		case vm.Conflict:
			set(Conflict)
			e.Heal = a.Reason
		case vm.Orphan:
			set(Orphan)
			e.Heal = a.Reason
		case vm.Wait:
			set(Waiting)
			e.Heal = a.Reason
		case vm.HotPlugged:
			set(HotPlugged)
			e.Heal = joinReason(e.Heal, a.Reason)
		default:
			set(Pending)
			e.Heal = a.Reason
		}
	}
	sort.Strings(order)
	for _, d := range order {
		e := byDomain[d]
		if e.Status == Drifted {
			rep.Drifted++
		}
		rep.Entries = append(rep.Entries, *e)
	}
	return rep
}

// joinReason lists several reasons of one entry.
func joinReason(have, add string) string {
	if have == "" {
		return add
	}
	return have + "; " + add
}
