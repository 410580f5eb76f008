package drift

import (
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/storage"
)

// StorageEntry is one difference between the host's storage and the source.
type StorageEntry struct {
	Object  string        `json:"object"`
	Target  string        `json:"target,omitempty"`
	Status  string        `json:"status"`
	Action  plan.Action   `json:"action"`
	Reason  string        `json:"reason"`
	Changes []plan.Change `json:"changes,omitempty"`
}

// Storage reports the storage plan p, one entry per step that is a
// difference, in the plan's order.
func Storage(p *storage.Plan) []StorageEntry {
	out := []StorageEntry{}
	if p == nil {
		return out
	}
	for _, a := range p.Actions {
		if !Differs(a.Step) {
			continue
		}
		status := Pending
		switch {
		case a.Drift:
			status = Drifted
		case a.Action == storage.ActWait:
			status = Waiting
		case a.Action == storage.ActHold:
			status = Held
		case a.Action == storage.ActKeep:
			status = Invalid
		case a.Action == storage.ActConflict:
			status = Conflict
		}
		out = append(out, StorageEntry{Object: a.Object, Target: a.Target, Status: status, Action: a.Action, Reason: a.Reason, Changes: a.Changes})
	}
	return out
}
