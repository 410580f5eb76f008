package desired

import (
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/manifests"
)

// fleetVM is a VirtualMachine default/<name> labelled app=<app> with extra
// template spec lines (indented for template.spec).
func fleetVM(name, app, spec string) string {
	return `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: ` + name + `, namespace: default}
spec:
  runStrategy: Always
  template:
    metadata: {labels: {app: ` + app + `}}
    spec:
` + spec + `      domain:
        memory: {guest: 64Mi}
        devices: {}
`
}

// antiWeb keeps VMs labelled app=web on distinct nodes.
const antiWeb = `      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: web}}
            topologyKey: kubernetes.io/hostname
`

func fleetNode(name, extra string) string {
	return "apiVersion: v1\nkind: Node\nmetadata: {name: " + name + ", labels: {kubernetes.io/hostname: " + name + "}}\n" + extra
}

func fleetSet(docs ...string) *manifests.Set {
	return manifests.Parse("fleet.yaml", []byte(strings.Join(docs, "---\n")), manifests.Options{})
}

func buildOn(set *manifests.Set, node string, prev map[string]Placed, reports Reports) *State {
	opt := testOptions
	opt.Node, opt.Previous, opt.Reports = node, prev, reports
	return Build(set, "r", opt)
}

// fakeReports are status reports as plain data.
type fakeReports struct {
	vms   map[string]fakeReport // VM key → where it is reported
	nodes map[string]time.Time
}

type fakeReport = Reported

func (f fakeReports) Where(key string) (Reported, bool) {
	r, ok := f.vms[key]
	return r, ok
}

func (f fakeReports) NodeReportedAt(node string) (time.Time, bool) {
	t, ok := f.nodes[node]
	return t, ok
}

func nodesOf(st *State) map[string]string {
	out := map[string]string{}
	for k, p := range st.Placement {
		out[k] = p.Node
	}
	return out
}

// A fourth anti-affine VM that sorts first does not take a node from the
// three already placed: it is the one left unschedulable. Placed afresh,
// it would have pushed the last of them out.
func TestBuild_placementIsKept(t *testing.T) {
	nodes := []string{fleetNode("n1", ""), fleetNode("n2", ""), fleetNode("n3", "")}
	three := fleetSet(append(nodes, fleetVM("b", "web", antiWeb), fleetVM("c", "web", antiWeb), fleetVM("d", "web", antiWeb))...)
	first := buildOn(three, "n1", nil, nil)
	want := map[string]string{"default/b": "n1", "default/c": "n2", "default/d": "n3"}
	if got := nodesOf(first); !equalMaps(got, want) {
		t.Fatalf("first placement %v, want %v", got, want)
	}
	four := fleetSet(append(nodes, fleetVM("a", "web", antiWeb), fleetVM("b", "web", antiWeb), fleetVM("c", "web", antiWeb), fleetVM("d", "web", antiWeb))...)
	if fresh := nodesOf(buildOn(four, "n1", nil, nil)); fresh["default/a"] != "n1" || fresh["default/d"] != "" {
		t.Fatalf("placed afresh, a should take n1 and d nothing (else this test proves nothing): %v", fresh)
	}
	for _, node := range []string{"n1", "n2", "n3"} {
		st := buildOn(four, node, first.Placement, nil)
		if got := nodesOf(st); !equalMaps(got, want) {
			t.Errorf("on %s: %v, want the first three kept: %v", node, got, want)
		}
		if why := st.Unschedulable["default_a"]; !strings.Contains(why, "anti-affinity") {
			t.Errorf("on %s: a must be unschedulable for anti-affinity, got %q", node, why)
		}
	}
}

// A VM whose own rules change is placed afresh; the others stay.
func TestBuild_changedRulesReplaceOnlyThatVM(t *testing.T) {
	nodes := []string{fleetNode("n1", ""), "apiVersion: v1\nkind: Node\nmetadata: {name: n2, labels: {disk: ssd}}\n"}
	before := buildOn(fleetSet(append(nodes, fleetVM("a", "a", ""), fleetVM("b", "b", ""))...), "n1", nil, nil)
	if got := nodesOf(before); got["default/a"] != "n1" || got["default/b"] != "n2" {
		t.Fatalf("before: %v", got)
	}
	// An unrelated VM added: nothing moves (fresh, new would sort first and take n1).
	added := buildOn(fleetSet(append(nodes, fleetVM("0new", "x", ""), fleetVM("a", "a", ""), fleetVM("b", "b", ""))...), "n1", before.Placement, nil)
	if got := nodesOf(added); got["default/a"] != "n1" || got["default/b"] != "n2" {
		t.Errorf("an added VM moved others: %v", got)
	}
	// a now selects disk=ssd: only n2 has it, so a moves; b stays.
	changed := buildOn(fleetSet(append(nodes, fleetVM("a", "a", "      nodeSelector: {disk: ssd}\n"), fleetVM("b", "b", ""))...), "n1", before.Placement, nil)
	if got := nodesOf(changed); got["default/a"] != "n2" || got["default/b"] != "n2" {
		t.Errorf("after a's selector changed: %v, want both on n2", got)
	}
	if changed.Placement["default/a"].Hash == before.Placement["default/a"].Hash {
		t.Error("the record must carry the new hash")
	}
	if _, ok := changed.OtherNode["default_a"]; !ok {
		t.Errorf("n1 must see a placed elsewhere: %v", changed.OtherNode)
	}
}

// A cordon keeps the VM; the out-of-service taint moves it, and the new
// node starts it only once the old node stopped it or is fenced.
func TestBuild_outOfServiceAndFencing(t *testing.T) {
	vm := fleetVM("db", "db", "")
	start := buildOn(fleetSet(fleetNode("n1", ""), fleetNode("n2", ""), vm), "n1", nil, nil)
	if got := nodesOf(start)["default/db"]; got != "n1" {
		t.Fatalf("db on %s, want n1", got)
	}
	cordoned := buildOn(fleetSet(fleetNode("n1", "spec: {unschedulable: true}\n"), fleetNode("n2", ""), vm), "n2", start.Placement, nil)
	if got := nodesOf(cordoned)["default/db"]; got != "n1" {
		t.Errorf("a cordon moved db to %s", got)
	}

	tainted := fleetSet(fleetNode("n1", "spec:\n  taints: [{key: node.kubernetes.io/out-of-service, value: nodeshutdown, effect: NoExecute}]\n"), fleetNode("n2", ""), vm)
	old := buildOn(tainted, "n1", start.Placement, nil)
	if !old.OutOfService || len(old.VMs) != 0 || old.OtherNode["default_db"] == "" {
		t.Errorf("n1 out of service: OutOfService %v, VMs %d, OtherNode %v", old.OutOfService, len(old.VMs), old.OtherNode)
	}

	now := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) fakeReports {
		t := now.Add(-ago)
		return fakeReports{vms: map[string]fakeReport{"default/db": {Node: "n1", Running: true, At: t}}, nodes: map[string]time.Time{"n1": t}}
	}
	onN2 := func(set *manifests.Set, r Reports) *VM {
		opt := testOptions
		opt.Node, opt.Previous, opt.Reports, opt.NodeLease = "n2", start.Placement, r, time.Minute
		opt.Now = func() time.Time { return now }
		st := Build(set, "r", opt)
		if len(st.VMs) != 1 {
			t.Fatalf("n2 renders %d VMs, want db", len(st.VMs))
		}
		return st.VMs[0]
	}
	if got := onN2(tainted, nil).Fenced; got != "" {
		t.Errorf("without reports nothing waits: %q", got)
	}
	if got := onN2(tainted, at(10*time.Second)).Fenced; !strings.Contains(got, "waiting for node n1 to stop vm default/db (reported running at 2026-12-07T03:59:50Z)") {
		t.Errorf("fresh report of n1 running db: %q", got)
	}
	if got := onN2(tainted, at(2*time.Minute)).Fenced; got != "" {
		t.Errorf("stale report and out-of-service: db must start, got %q", got)
	}
	stopped := at(10 * time.Second)
	stopped.vms["default/db"] = fakeReport{Node: "n1", Running: false, At: now}
	if got := onN2(tainted, stopped).Fenced; got != "" {
		t.Errorf("n1 reports db stopped: %q", got)
	}

	// Pinned to n2 with no taint on n1: a stale report is not enough.
	pinned := fleetSet(fleetNode("n1", ""), fleetNode("n2", ""), fleetVM("db", "db", "      nodeSelector: {kubernetes.io/hostname: n2}\n"))
	if got := onN2(pinned, at(2*time.Minute)).Fenced; !strings.Contains(got, "taint its Node node.kubernetes.io/out-of-service") {
		t.Errorf("stale report without the taint: %q", got)
	}
}

// An agent without a record keeps a VM where a fresh report says it runs.
func TestBuild_reportedNodeWithoutRecord(t *testing.T) {
	set := fleetSet(fleetNode("n1", ""), fleetNode("n2", ""), fleetVM("db", "db", ""))
	now := time.Now()
	hash := buildOn(set, "n2", nil, nil).Placement["default/db"].Hash
	r := fakeReports{vms: map[string]fakeReport{"default/db": {Node: "n2", Running: true, Hash: hash, At: now}}, nodes: map[string]time.Time{"n2": now}}
	if got := nodesOf(buildOn(set, "n1", nil, r))["default/db"]; got != "n2" {
		t.Errorf("db placed on %s, want n2 where it runs", got)
	}
	// Placed there by other rules: db is placed afresh.
	r.vms["default/db"] = fakeReport{Node: "n2", Running: true, Hash: "other rules", At: now}
	if got := nodesOf(buildOn(set, "n1", nil, r))["default/db"]; got != "n1" {
		t.Errorf("a report of other rules must not hold db: placed on %s", got)
	}
	r.vms["default/db"] = fakeReport{Node: "n2", Running: true, Hash: hash, At: now.Add(-time.Hour)}
	if got := nodesOf(buildOn(set, "n1", nil, r))["default/db"]; got != "n1" {
		t.Errorf("a stale report must not hold db: placed on %s", got)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A VM whose own rules now select a node this agent does not know leaves
// this node (it is not kept as merely unschedulable), and keeps leaving at
// the next revision; a VM whose rules did not change stays where it runs.
func TestBuild_rulesMovedToUnknownNode(t *testing.T) {
	here := fleetSet(fleetVM("db", "db", "      nodeSelector: {kubernetes.io/hostname: n1}\n"))
	first := buildOn(here, "n1", nil, nil)
	if got := nodesOf(first)["default/db"]; got != "n1" {
		t.Fatalf("db on %q, want n1", got)
	}
	moved := fleetSet(fleetVM("db", "db", "      nodeSelector: {kubernetes.io/hostname: n2}\n"))
	st := buildOn(moved, "n1", first.Placement, nil)
	if why := st.OtherNode["default_db"]; !strings.Contains(why, "placement rules changed") || !strings.Contains(why, "kubernetes.io/hostname=n2") {
		t.Fatalf("db must leave n1 naming its rules, got OtherNode %q, Unschedulable %q", why, st.Unschedulable["default_db"])
	}
	if len(st.VMs) != 0 || st.Unschedulable["default_db"] != "" {
		t.Errorf("db must be neither rendered nor unschedulable here: %d VMs, %q", len(st.VMs), st.Unschedulable["default_db"])
	}
	again := buildOn(moved, "n1", st.Placement, nil)
	if again.OtherNode["default_db"] == "" {
		t.Errorf("at the next revision db must still be leaving: %v / %v", again.OtherNode, again.Unschedulable)
	}
	// The node lost a label its unchanged rules need: the VM stays where
	// it was placed (rules apply at scheduling only).
	labelled := fleetSet(fleetVM("db", "db", "      nodeSelector: {disk: ssd}\n"))
	opt := testOptions
	opt.Node, opt.NodeLabels = "n1", map[string]string{"disk": "ssd"}
	onSSD := Build(labelled, "r", opt)
	opt.NodeLabels, opt.Previous = nil, onSSD.Placement
	kept := Build(labelled, "r", opt)
	if nodesOf(onSSD)["default/db"] != "n1" {
		t.Fatalf("db not placed on n1 with disk=ssd: %v", onSSD.Unschedulable)
	}
	if nodesOf(kept)["default/db"] != "n1" || kept.OtherNode["default_db"] != "" {
		t.Errorf("a label lost by the node must not move db: placed %v, OtherNode %v", nodesOf(kept), kept.OtherNode)
	}
}
