package agent

import (
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/internal/fleet"
	"github.com/nodevirt/nodevirt/reconciler/desired"
)

// The node that reports a VM running answers for it, even against a newer
// report of another node that has it stopped; among stopped ones the
// latest report answers.
func TestIndexReports(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	vm := func(name string, running bool) fleet.VM {
		return fleet.VM{Namespace: "default", Name: name, Running: running, Placement: "h-" + name}
	}
	idx := indexReports(map[string]fleet.Report{
		"n1": {Node: "n1", Time: t0, VMs: []fleet.VM{vm("web", true), vm("db", false)}},
		"n2": {Node: "n2", Time: t0.Add(time.Minute), VMs: []fleet.VM{vm("web", false), vm("db", false)}},
		"n3": {Node: "n3", Time: t0.Add(2 * time.Minute)},
	})
	for key, want := range map[string]desired.Reported{
		"default/web": {Node: "n1", Running: true, Hash: "h-web", At: t0},
		"default/db":  {Node: "n2", Running: false, Hash: "h-db", At: t0.Add(time.Minute)},
	} {
		got, ok := idx.Where(key)
		if !ok || got.Node != want.Node || got.Running != want.Running || got.Hash != want.Hash || !got.At.Equal(want.At) {
			t.Errorf("%s: %+v (ok %v), want %+v", key, got, ok, want)
		}
	}
	if _, ok := idx.Where("default/none"); ok {
		t.Error("a VM no node reports must not be found")
	}
	if at, ok := idx.NodeReportedAt("n3"); !ok || !at.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("n3 reported at %s (%v)", at, ok)
	}
}

// Reports read while a VM waits on one ask the loop for an iteration; with
// nothing waiting they do not.
func TestReportsReadKicksOnlyForFencedVMs(t *testing.T) {
	for _, fenced := range []string{"", "waiting for node n1 to stop vm default/db"} {
		a := newAgent(Config{}, nil, nil, nil, make(chan struct{}, 1))
		a.reportsRead() // nothing rendered yet
		a.node.Store(&Node{VMs: &desired.State{VMs: []*desired.VM{{DomainName: "default_db", Fenced: fenced}}}})
		a.reportsRead()
		if got, want := len(a.kick), map[bool]int{false: 0, true: 1}[fenced != ""]; got != want {
			t.Errorf("fenced %q: %d kicks, want %d", fenced, got, want)
		}
	}
}
