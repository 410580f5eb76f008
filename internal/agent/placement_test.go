package agent_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/disks"
	"github.com/nodevirt/nodevirt/runtime/hv"
	"github.com/nodevirt/nodevirt/source"
)

// reports are other agents' status reports as the agent would read them,
// changed by the test between iterations.
type reports struct {
	mu  sync.Mutex
	vms map[string]reported // VM key → the node reporting it
}

type reported struct {
	node    string
	running bool
	at      time.Time
}

func (r *reports) set(key, node string, running bool, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.vms == nil {
		r.vms = map[string]reported{}
	}
	r.vms[key] = reported{node, running, at}
}

func (r *reports) Where(key string) (desired.Reported, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.vms[key]
	return desired.Reported{Node: v.node, Running: v.running, At: v.at}, ok
}

func (r *reports) NodeReportedAt(node string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var last time.Time
	for _, v := range r.vms {
		if v.node == node && v.at.After(last) {
			last = v.at
		}
	}
	return last, !last.IsZero()
}

// fleetAgent is n's agent as node name of a fleet, reading r (nil: no
// reports) aged by the clock now.
func (n *node) fleetAgent(name string, r desired.Reports, now func() time.Time) *agent.Agent {
	n.t.Helper()
	d, err := disks.New(n.state, filepath.Join(n.state, "images"))
	if err != nil {
		n.t.Fatal(err)
	}
	src, err := source.Open(source.Options{URL: n.src, WorkDir: filepath.Join(n.state, "source")})
	if err != nil {
		n.t.Fatal(err)
	}
	cfg := agent.Config{Desired: desired.Options{Node: name, Reports: r, NodeLease: time.Minute, Now: now,
		Context: domain.Context{Type: "kvm", Arch: "x86_64", DiskDir: filepath.Join(n.state, "disks"), VolumeDir: filepath.Join(n.state, "volumes")}}}
	rec := vm.New(vm.Config{SelfHeal: true, DiskDir: filepath.Join(n.state, "disks")}, n.hv, d, n.db)
	return agent.New(cfg, src, rec, n.hv).WithState(n.db)
}

func (n *node) defined(name string) (hv.Domain, bool) {
	n.t.Helper()
	doms, err := n.hv.Domains(context.Background())
	if err != nil {
		n.t.Fatal(err)
	}
	for _, d := range doms {
		if d.Name == name {
			return d, true
		}
	}
	return hv.Domain{}, false
}

func nodeDoc(name, taints string) string {
	doc := "apiVersion: v1\nkind: Node\nmetadata: {name: " + name + ", labels: {kubernetes.io/hostname: " + name + "}}\n"
	if taints != "" {
		doc += "spec:\n  taints: [" + taints + "]\n"
	}
	return doc
}

const outOfService = "{key: node.kubernetes.io/out-of-service, value: nodeshutdown, effect: NoExecute}"

// The agent records what it applied and keeps VMs there: a VM added that
// sorts first, placed afresh, would take n1 from b; b stays, even across a
// restart of the agent. A change of b's own rules moves it: b stops here
// and keeps its domain.
func TestAgent_placementIsKept(t *testing.T) {
	n := newNode(t)
	n.write("nodes.yaml", nodeDoc("n1", "")+"---\n"+nodeDoc("n2", ""))
	n.write("b.yaml", vmDoc("b", "64Mi", "Always", ""))
	once(t, n.fleetAgent("n1", nil, nil))
	if d := n.domain("default_b"); d.State != hv.Running {
		t.Fatalf("b is %s on n1, want running", d.State)
	}
	n.write("a.yaml", vmDoc("a", "64Mi", "Always", ""))
	for i := range 2 { // the second time as a restarted agent
		a := n.fleetAgent("n1", nil, nil)
		once(t, a)
		if d := n.domain("default_b"); d.State != hv.Running {
			t.Fatalf("pass %d: b is %s, want running where it was", i, d.State)
		}
		if _, ok := n.defined("default_a"); ok {
			t.Fatalf("pass %d: a is defined on n1; it belongs on n2", i)
		}
		if got := a.Node().VMs.OtherNode["default_a"]; !strings.Contains(got, "placed on node n2") {
			t.Fatalf("pass %d: a: %q", i, got)
		}
	}
	n.write("b.yaml", strings.Replace(vmDoc("b", "64Mi", "Always", ""), "    spec:\n", "    spec:\n      nodeSelector: {kubernetes.io/hostname: n2}\n", 1))
	moving := n.fleetAgent("n1", nil, nil)
	// Planned, not applied yet: b still runs here, and the status (so the
	// node's report) must say so, or n2 would start it beside.
	st, err := moving.StatusNow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.VirtualMachineInstances) != 1 || st.VirtualMachineInstances[0].Name != "b" || st.VirtualMachineInstances[0].Status.Phase != kubevirtv1.Running {
		t.Fatalf("b runs here until stopped: instances %+v", st.VirtualMachineInstances)
	}
	rep := once(t, moving)
	if d, ok := n.defined("default_b"); !ok || d.State.Active() {
		t.Fatalf("b moved to n2: it must be stopped and kept here, defined %v, state %s", ok, d.State)
	}
	if len(rep.Outcomes) != 1 || rep.Outcomes[0].Action != vm.Stop {
		t.Fatalf("outcomes %+v, want one stop", rep.Outcomes)
	}
}

// A VM placed here that another node reports running waits, shown in the
// plan and the status, until that node reports it stopped; and, once the
// report is older than the node lease, only when the other node is
// tainted out of service.
func TestAgent_fencedStartWaits(t *testing.T) {
	n := newNode(t)
	now := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	r := &reports{}
	r.set("default/db", "n1", true, now.Add(-10*time.Second))
	a := n.fleetAgent("n2", r, clock)
	moveToN2(t, n, a)

	waits := func(want string) {
		t.Helper()
		once(t, a)
		if d, ok := n.defined("default_db"); !ok || d.State.Active() {
			t.Fatalf("db must be defined and not running: defined %v, state %s", ok, d.State)
		}
		st, err := a.StatusNow(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(st.VirtualMachines) != 1 {
			t.Fatalf("status has %d VMs", len(st.VirtualMachines))
		}
		vms := st.VirtualMachines[0].Status
		if vms.PrintableStatus != kubevirtv1.VirtualMachineStatusStarting || len(vms.Conditions) != 1 || vms.Conditions[0].Reason != agent.ReasonFenced ||
			!strings.Contains(vms.Conditions[0].Message, want) {
			t.Fatalf("status %s, conditions %+v; want Starting, Fenced, %q", vms.PrintableStatus, vms.Conditions, want)
		}
	}
	waits("waiting for node n1 to stop vm default/db (reported running at 2026-12-07T03:59:50Z)")

	// The report ages past the lease: without the taint, db still waits.
	now = now.Add(2 * time.Minute)
	waits("taint its Node node.kubernetes.io/out-of-service")

	// n1 is tainted out of service: db starts.
	n.write("nodes.yaml", nodeDoc("n1", outOfService)+"---\n"+nodeDoc("n2", ""))
	once(t, a)
	if d := n.domain("default_db"); d.State != hv.Running {
		t.Fatalf("db is %s after n1 was fenced, want running", d.State)
	}
}

// moveToN2 has a, the agent of n2, apply db where n1 reports it running,
// then db's rules changed to select n2: the way a VM moves.
func moveToN2(t *testing.T, n *node, a *agent.Agent) {
	t.Helper()
	n.write("nodes.yaml", nodeDoc("n1", "")+"---\n"+nodeDoc("n2", ""))
	n.write("db.yaml", vmDoc("db", "64Mi", "Always", ""))
	once(t, a)
	if got := a.Node().VMs.OtherNode["default_db"]; !strings.Contains(got, "placed on node n1") {
		t.Fatalf("db runs on n1 by its report: %q", got)
	}
	n.write("db.yaml", strings.Replace(vmDoc("db", "64Mi", "Always", ""), "    spec:\n", "    spec:\n      nodeSelector: {kubernetes.io/hostname: n2}\n", 1))
}

// A fresh report that the other node stopped the VM lets it start at once.
func TestAgent_startsWhenTheOldNodeReportsItStopped(t *testing.T) {
	n := newNode(t)
	now := time.Now()
	r := &reports{}
	r.set("default/db", "n1", true, now)
	a := n.fleetAgent("n2", r, nil)
	moveToN2(t, n, a)
	rep := once(t, a)
	if d := n.domain("default_db"); d.State.Active() {
		t.Fatalf("db started while n1 runs it: %+v", rep.Outcomes)
	}
	r.set("default/db", "n1", false, time.Now())
	once(t, a)
	if d := n.domain("default_db"); d.State != hv.Running {
		t.Fatalf("db is %s after n1 reported it stopped, want running", d.State)
	}
}

// A node tainted out of service stops its VMs, even one no other node
// takes, and starts none.
func TestAgent_outOfServiceStopsEverything(t *testing.T) {
	n := newNode(t)
	n.write("nodes.yaml", nodeDoc("n1", ""))
	n.write("db.yaml", vmDoc("db", "64Mi", "Always", ""))
	once(t, n.fleetAgent("n1", nil, nil))
	if d := n.domain("default_db"); d.State != hv.Running {
		t.Fatalf("db is %s, want running", d.State)
	}
	n.write("nodes.yaml", nodeDoc("n1", outOfService))
	a := n.fleetAgent("n1", nil, nil)
	once(t, a)
	if d, ok := n.defined("default_db"); !ok || d.State.Active() {
		t.Fatalf("db on an out-of-service node: defined %v, state %s", ok, d.State)
	}
	once(t, a)
	if d := n.domain("default_db"); d.State.Active() {
		t.Fatal("db started again on an out-of-service node")
	}
}
