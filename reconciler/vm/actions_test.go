package vm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/hv"
)

// act runs one action on the VM named web of st and renders what became of
// it: "refused: <message>" or "[changed] <domain state> [request]".
func (h *host) act(rec *vm.Reconciler, st *desired.State, req vm.Request) string {
	h.t.Helper()
	res, err := rec.Act(context.Background(), req, st.VMs[0])
	if err != nil {
		if !errors.Is(err, vm.ErrRefused) {
			h.t.Fatalf("%s: %v (not a refusal)", req, err)
		}
		return "refused: " + err.Error()
	}
	if res.Undefined {
		h.t.Fatalf("%s: domain reported undefined", req)
	}
	var out []string
	if res.Changed {
		out = append(out, "changed")
	}
	out = append(out, string(h.domains()["default_web"].State))
	reqs, err := rec.RunRequests()
	if err != nil {
		h.t.Fatal(err)
	}
	if r, ok := reqs["default_web"]; ok {
		out = append(out, string(r.Action))
	}
	return strings.Join(out, " ")
}

// Every runStrategy × action × run state, as KubeVirt's subresources decide
// them, and each action asked twice: the second changes nothing (restart
// aside, which always reboots).
func TestAct_runStrategyTable(t *testing.T) {
	type key struct{ strategy, state, action string }
	want := map[key]string{}
	set := func(state, action string, byStrategy map[string]string) {
		for s, w := range byStrategy {
			want[key{s, state, action}] = w
		}
	}
	all := func(w string) map[string]string {
		return map[string]string{"Always": w, "RerunOnFailure": w, "Once": w, "Manual": w, "Halted": w}
	}
	restartRefused := func(s string) string {
		return "refused: RunStrategy " + s + " does not support manual restart requests"
	}

	set("running", "start", map[string]string{"Always": "running", "RerunOnFailure": "running", "Once": "running", "Manual": "running",
		"Halted": "changed running Start"})
	set("running", "stop", map[string]string{"Always": "changed shutoff Stop", "RerunOnFailure": "changed shutoff Stop",
		"Once": "changed shutoff Stop", "Manual": "changed shutoff", "Halted": "changed shutoff"})
	set("running", "restart", map[string]string{"Always": "changed running", "RerunOnFailure": "changed running",
		"Manual": "changed running", "Once": restartRefused("Once"), "Halted": restartRefused("Halted")})
	set("running", "pause", all("changed paused"))
	set("running", "unpause", all("running"))

	set("off", "start", map[string]string{"Always": "changed running", "RerunOnFailure": "changed running",
		"Once": "refused: Once does not support manual start requests", "Manual": "changed running", "Halted": "changed running Start"})
	set("off", "stop", map[string]string{"Always": "changed shutoff Stop", "RerunOnFailure": "changed shutoff Stop",
		"Once": "changed shutoff Stop", "Manual": "shutoff", "Halted": "shutoff"})
	set("off", "restart", map[string]string{"Always": "refused: VM is not running", "RerunOnFailure": "refused: VM is not running",
		"Manual": "refused: VM is not running", "Once": restartRefused("Once"), "Halted": restartRefused("Halted")})
	set("off", "pause", all("refused: VM is not running"))
	set("off", "unpause", all("refused: VM is not running"))

	for k, w := range want {
		t.Run(fmt.Sprintf("%s/%s/%s", k.strategy, k.state, k.action), func(t *testing.T) {
			h := newHost(t, vm.Config{SelfHeal: true})
			st := h.render("r1", vmYAML("web", "64Mi", k.strategy))
			h.apply(st)
			ctx := context.Background()
			active := h.domains()["default_web"].State.Active()
			switch {
			case k.state == "running" && !active:
				if err := h.hv.Start(ctx, "default_web"); err != nil {
					t.Fatal(err)
				}
			case k.state == "off" && active:
				if err := h.hv.Shutdown(ctx, "default_web", 0); err != nil {
					t.Fatal(err)
				}
			}
			req, err := vm.ParseRequest(k.action)
			if err != nil {
				t.Fatal(err)
			}
			if got := h.act(h.rec, st, req); got != w {
				t.Fatalf("got %q, want %q", got, w)
			}
			if req == vm.RequestRestart {
				return
			}
			again := strings.TrimPrefix(w, "changed ")
			if got := h.act(h.rec, st, req); got != again {
				t.Fatalf("asked again: got %q, want %q", got, again)
			}
		})
	}
}

// A stop of an Always VM is persisted: the planner keeps the domain off
// (no self-heal start, not even in a reconciler started anew on the same
// state) and says why when it is started behind its back; a start clears
// it. A start of a Halted VM keeps it running until a stop.
func TestAct_requestsHonouredAcrossRestarts(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true})
	db := h.stateDB()
	cfg := vm.Config{SelfHeal: true}
	rec := h.agentWith(cfg, db)
	st := h.render("r1", vmYAML("web", "64Mi", "Always"), vmYAML("db", "64Mi", "Halted"))
	ctx := context.Background()
	plan := func(rec *vm.Reconciler) *vm.Planned {
		t.Helper()
		p, err := rec.Plan(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if rep := rec.Apply(ctx, plan(rec)); rep.Failed > 0 {
		t.Fatal(rep.Outcomes)
	}
	web, db0 := st.VMs[1], st.VMs[0]
	if web.Name != "web" || db0.Name != "db" {
		t.Fatalf("order: %s %s", web.Name, db0.Name)
	}
	if _, err := rec.Act(ctx, vm.RequestStop, web); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Act(ctx, vm.RequestStart, db0); err != nil {
		t.Fatal(err)
	}

	rec = h.agentWith(cfg, db) // the agent restarted
	p := plan(rec)
	if !p.Empty() || len(p.InSync) != 2 {
		t.Fatalf("the requests must be honoured, not planned away: %s (in sync %v)", kinds(p.Plan), p.InSync)
	}
	reqs, err := rec.RunRequests()
	if err != nil {
		t.Fatal(err)
	}
	if reqs["default_web"].Action != kubevirtv1.StopRequest || reqs["default_db"].Action != kubevirtv1.StartRequest || reqs["default_web"].Time.IsZero() {
		t.Fatalf("requests: %+v", reqs)
	}
	doms := h.domains()
	if doms["default_web"].State != hv.Shutoff || doms["default_db"].State != hv.Running {
		t.Fatalf("states: web %s, db %s", doms["default_web"].State, doms["default_db"].State)
	}

	// Started behind nodevirt's back, the stopped VM is stopped again, and
	// the plan says it is the request that wants it off.
	if err := h.hv.Start(ctx, "default_web"); err != nil {
		t.Fatal(err)
	}
	p = plan(rec)
	if got := kinds(p.Plan); got != "stop default_web" || !strings.Contains(p.Actions[0].Reason, "a stop was requested") {
		t.Fatalf("plan: %s (%+v)", got, p.Actions)
	}
	rec.Apply(ctx, p)

	if res, err := rec.Act(ctx, vm.RequestStart, web); err != nil || !res.Changed {
		t.Fatalf("start: %+v, %v", res, err)
	}
	if res, err := rec.Act(ctx, vm.RequestStop, db0); err != nil || !res.Changed {
		t.Fatalf("stop: %+v, %v", res, err)
	}
	rec = h.agentWith(cfg, db)
	if p := plan(rec); !p.Empty() {
		t.Fatalf("after start and stop: %s", kinds(p.Plan))
	}
	if reqs, err := rec.RunRequests(); err != nil || len(reqs) != 0 {
		t.Fatalf("the opposite actions clear the requests: %+v, %v", reqs, err)
	}
	doms = h.domains()
	if doms["default_web"].State != hv.Running || doms["default_db"].State != hv.Shutoff {
		t.Fatalf("states: web %s, db %s", doms["default_web"].State, doms["default_db"].State)
	}
}

// A paused domain is active: the planner neither starts nor heals it.
func TestAct_pausedDomainIsLeftPaused(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true})
	st := h.render("r1", vmYAML("web", "64Mi", "Always"))
	h.apply(st)
	if got := h.act(h.rec, st, vm.RequestPause); got != "changed paused" {
		t.Fatal(got)
	}
	if p, _ := h.apply(st); !p.Empty() {
		t.Fatalf("plan of a paused VM: %s", kinds(p))
	}
	if got := h.domains()["default_web"].State; got != hv.Paused {
		t.Fatalf("state after a reconcile: %s", got)
	}
}

// A stop of a VM whose domain is not defined yet records the request: it
// is not started when it is created; a start asks to define it.
func TestAct_undefinedDomain(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true})
	st := h.render("r1", vmYAML("web", "64Mi", "Always"))
	ctx := context.Background()
	if res, err := h.rec.Act(ctx, vm.RequestStop, st.VMs[0]); err != nil || !res.Changed || res.Undefined {
		t.Fatalf("stop: %+v, %v", res, err)
	}
	if p, _ := h.apply(st); kinds(p) != "create default_web" {
		t.Fatalf("plan: %s", kinds(p))
	}
	if err := h.hv.Undefine(ctx, "default_web"); err != nil {
		t.Fatal(err)
	}
	res, err := h.rec.Act(ctx, vm.RequestStart, st.VMs[0])
	if err != nil || !res.Changed || !res.Undefined {
		t.Fatalf("start: %+v, %v", res, err)
	}
	if _, err := h.rec.Act(ctx, vm.RequestPause, st.VMs[0]); !errors.Is(err, vm.ErrRefused) {
		t.Fatalf("pause of an undefined domain: %v", err)
	}
	if _, err := vm.ParseRequest("reboot"); err == nil || !strings.Contains(err.Error(), "start, stop, restart, pause, unpause") {
		t.Fatalf("unknown action: %v", err)
	}
}
