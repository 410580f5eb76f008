package agent

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nodevirt/nodevirt/internal/fleet"
	"github.com/nodevirt/nodevirt/reconciler/desired"
)

// ReasonFenced is the Ready condition's reason of a VM placed on this node
// whose start waits for another node to stop it (or for this node to come
// back into service).
const ReasonFenced = "Fenced"

// The placement of the last applied revision: one JSON document, the map
// of VM key to node and rules hash.
const (
	bucketPlacement = "placement"
	keyPlacement    = "applied"
)

// placed reads the placement recorded by the last apply; nil when none was
// recorded or the agent keeps no state.
func (a *Agent) placed() (map[string]desired.Placed, error) {
	if a.state == nil {
		return nil, nil
	}
	b, err := a.state.Get(bucketPlacement, keyPlacement)
	if err != nil || b == nil {
		return nil, err
	}
	var out map[string]desired.Placed
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode the recorded placement: %w", err)
	}
	return out, nil
}

// recordPlacement keeps st's placement as the one the next revision keeps
// VMs by.
func (a *Agent) recordPlacement(st *desired.State) error {
	if a.state == nil || st == nil || st.Placement == nil {
		return nil
	}
	old, err := a.placed()
	if err == nil && maps.Equal(old, st.Placement) {
		return nil
	}
	b, err := json.Marshal(st.Placement)
	if err != nil {
		return fmt.Errorf("encode the placement: %w", err)
	}
	if err := a.state.Put(bucketPlacement, keyPlacement, b); err != nil {
		return fmt.Errorf("record the placement: %w", err)
	}
	return nil
}

// renderConfig is the agent's configuration with the recorded placement,
// which keeps VMs where they are, and the fleet's reports as last read
// from the status branch (with when they were read; zero when the
// reports are the configuration's own). A record that cannot be read
// places afresh, which is what a new node does, and says so.
func (a *Agent) renderConfig() (Config, time.Time) {
	cfg := a.cfg
	prev, err := a.placed()
	if err != nil {
		a.log.Warn("placing VMs afresh: the recorded placement cannot be read", "err", err)
	}
	cfg.Desired.Previous = prev
	var readAt time.Time
	if cfg.Desired.Reports == nil {
		var reports map[string]fleet.Report
		if reports, readAt = a.FleetReports(); reports != nil {
			cfg.Desired.Reports = indexReports(reports)
		}
	}
	return cfg, readAt
}

// reportsRead is told that the fleet's reports were read again: a VM that
// waits on another node's report is looked at now, not at the next poll.
func (a *Agent) reportsRead() {
	n := a.node.Load()
	if n == nil || n.VMs == nil {
		return
	}
	for _, v := range n.VMs.VMs {
		if v.Fenced != "" {
			a.Kick()
			return
		}
	}
}

// rebound says whether n must be placed again beside a change of its
// resources: the recorded placement changed, the reports were read again,
// or a VM waits on a report, which ages.
func rebound(n *Node, cfg Config, readAt time.Time) bool {
	if !maps.Equal(cfg.Desired.Previous, n.previous) {
		return true
	}
	if cfg.Desired.Reports == nil {
		return false
	}
	if readAt.IsZero() || !readAt.Equal(n.reportsAt) {
		return true
	}
	for _, v := range n.VMs.VMs {
		if v.Fenced != "" {
			return true
		}
	}
	return false
}

// fleetReports answer placement from the nodes' reports: for each VM, the
// node that reports it running (the latest report when several do), else
// the latest that reports it at all.
type fleetReports struct {
	vms   map[string]reportedVM
	nodes map[string]time.Time
}

type reportedVM struct {
	node    string
	running bool
	hash    string
	at      time.Time
}

func indexReports(reports map[string]fleet.Report) fleetReports {
	idx := fleetReports{vms: map[string]reportedVM{}, nodes: map[string]time.Time{}}
	names := slices.Sorted(maps.Keys(reports))
	for _, node := range names {
		r := reports[node]
		idx.nodes[node] = r.Time
		for _, v := range r.VMs {
			key := v.Namespace + "/" + v.Name
			cur, seen := idx.vms[key]
			if seen && (cur.running && !v.Running || cur.running == v.Running && !r.Time.After(cur.at)) {
				continue
			}
			idx.vms[key] = reportedVM{node: node, running: v.Running, hash: v.Placement, at: r.Time}
		}
	}
	return idx
}

func (f fleetReports) Where(key string) (desired.Reported, bool) {
	v, ok := f.vms[key]
	return desired.Reported{Node: v.node, Running: v.running, Hash: v.hash, At: v.at}, ok
}

func (f fleetReports) NodeReportedAt(node string) (time.Time, bool) {
	t, ok := f.nodes[node]
	return t, ok
}
