package drift

import (
	"github.com/nodevirt/nodevirt/reconciler/host"
	"github.com/nodevirt/nodevirt/reconciler/plan"
)

// HostEntry is one difference between the host configuration and the source.
type HostEntry struct {
	Target string      `json:"target"`
	Object string      `json:"object,omitempty"`
	Status string      `json:"status"`
	Reason string      `json:"reason"`
	Action plan.Action `json:"action"`
	Fields []string    `json:"changes,omitempty"`
}

// HostReport is `nodevirt host drift`, and the host part of `nodevirt drift`.
type HostReport struct {
	Revision string      `json:"revision"`
	Drifted  int         `json:"drifted"`
	InSync   int         `json:"inSync"`
	Entries  []HostEntry `json:"entries"`
	// PruneSuspended and PruneHeld say why removals are held.
	PruneSuspended bool   `json:"pruneSuspended"`
	PruneHeld      string `json:"pruneHeld"`
}

// Host reports the host plan p, one entry per step in the plan's order.
func Host(p host.Plan) HostReport {
	rep := HostReport{Revision: p.Revision, InSync: p.InSync, PruneSuspended: p.PruneSuspended, PruneHeld: p.PruneHeld}
	for _, a := range p.Actions {
		status := stepStatus(a.Step)
		if status == Drifted {
			rep.Drifted++
		}
		e := HostEntry{Target: a.Target, Object: a.Object, Status: status, Reason: a.Reason, Action: a.Action}
		for _, c := range a.Changes {
			e.Fields = append(e.Fields, c.String())
		}
		rep.Entries = append(rep.Entries, e)
	}
	return rep
}
