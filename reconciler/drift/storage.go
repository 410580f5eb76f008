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
		status := stepStatus(a.Step)
		out = append(out, StorageEntry{Object: a.Object, Target: a.Target, Status: status, Action: a.Action, Reason: a.Reason, Changes: a.Changes})
	}
	return out
}

// Steps reports the steps of a stage that has no report of its own (the
// snapshot stage) in the storage report's shape.
func Steps(steps []plan.Step) []StorageEntry {
	out := []StorageEntry{}
	for _, s := range steps {
		if !Differs(s) {
			continue
		}
		out = append(out, StorageEntry{Object: s.Object, Target: s.Target, Status: stepStatus(s), Action: s.Action, Reason: s.Reason, Changes: s.Changes})
	}
	return out
}
