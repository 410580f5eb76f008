package vm

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/runtime/hv"
)

// A fenced VM is defined but its start waits, with the reason.
func TestDiff_fencedStartWaits(t *testing.T) {
	const why = "waiting for node n1 to stop vm default/web (reported running at 2026-12-07T04:00:00Z)"
	web := vm("web", kubevirtv1.RunStrategyAlways, "sha256:aa")
	web.Fenced = why
	p := Diff(state(web), nil, Options{})
	if d := cmp.Diff([]row{{Create, "default_web", false}, {Wait, "default_web", false}}, rows(p)); d != "" {
		t.Fatalf("new fenced VM (-want +got):\n%s", d)
	}
	if p.Actions[1].Reason != why {
		t.Errorf("wait reason %q", p.Actions[1].Reason)
	}
	p = Diff(state(web), []hv.Domain{observed("web", hv.Shutoff, "shutdown", "sha256:aa")}, Options{})
	if d := cmp.Diff([]row{{Wait, "default_web", false}}, rows(p)); d != "" {
		t.Fatalf("defined fenced VM (-want +got):\n%s", d)
	}
	web.Fenced = ""
	p = Diff(state(web), []hv.Domain{observed("web", hv.Shutoff, "shutdown", "sha256:aa")}, Options{})
	if d := cmp.Diff([]row{{Start, "default_web", false}}, rows(p)); d != "" {
		t.Fatalf("unfenced VM (-want +got):\n%s", d)
	}
}

// A VM placed on another node stops here and is not deleted; a stopped
// one is left alone; one not in this agent's inventory is not touched.
func TestDiff_movedAwayStops(t *testing.T) {
	st := state()
	st.OtherNode = map[string]string{
		"default_web":   "VirtualMachine default/web: placed on node n2",
		"default_db":    "VirtualMachine default/db: placed on node n2",
		"default_other": "VirtualMachine default/other: placed on node n3",
	}
	obs := []hv.Domain{
		observed("web", hv.Running, "booted", "sha256:aa"),
		observed("db", hv.Shutoff, "shutdown", "sha256:aa"),
		observed("other", hv.Running, "booted", "sha256:aa"),
	}
	p := Diff(st, obs, Options{Inventory: map[string]bool{"default_web": true, "default_db": true}})
	if d := cmp.Diff([]row{{Stop, "default_web", false}, {Orphan, "default_other", false}}, rows(p)); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if s := p.Actions[0]; !s.Disruptive || s.Object != "VirtualMachine default/web" || !strings.Contains(s.Reason, "placed on node n2: it stops here") {
		t.Errorf("stop step: %+v", s)
	}
}

// An out-of-service node stops even the VMs no other node can take.
func TestDiff_outOfServiceStopsEverything(t *testing.T) {
	st := state()
	st.OutOfService = true
	st.Unschedulable = map[string]string{"default_web": "VirtualMachine default/web: 0/2 nodes are available: 2 node(s) had untolerated taint {node.kubernetes.io/out-of-service: nodeshutdown}."}
	p := Diff(st, []hv.Domain{observed("web", hv.Running, "booted", "sha256:aa")}, Options{})
	if d := cmp.Diff([]row{{Stop, "default_web", false}}, rows(p)); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if !strings.Contains(p.Actions[0].Reason, "out-of-service") {
		t.Errorf("reason %q", p.Actions[0].Reason)
	}
	st.OutOfService = false
	p = Diff(st, []hv.Domain{observed("web", hv.Running, "booted", "sha256:aa")}, Options{})
	if d := cmp.Diff([]row{{Keep, "default_web", false}}, rows(p)); d != "" {
		t.Fatalf("in service, the VM stays (-want +got):\n%s", d)
	}
}
