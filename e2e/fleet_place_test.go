//go:build e2e

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// webVM is a VM labelled app=<app> that no two VMs labelled app=web share
// a node with when antiWeb is set.
func webVM(ns, name, app string, antiWeb bool) string {
	meta := "  template:\n    metadata:\n      labels:\n        app: " + app + "\n    spec:\n"
	if antiWeb {
		meta += "      affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n" +
			"            - labelSelector:\n                matchLabels:\n                  app: web\n              topologyKey: kubernetes.io/hostname\n"
	}
	return strings.Replace(vmYAML(ns, name, "64Mi", "Always"), "  template:\n    spec:\n", meta, 1)
}

func nodeYAML(name string, outOfService bool) string {
	doc := "apiVersion: v1\nkind: Node\nmetadata:\n  name: " + name + "\n  labels:\n    kubernetes.io/hostname: " + name + "\n"
	if outOfService {
		doc += "spec:\n  taints:\n    - key: node.kubernetes.io/out-of-service\n      value: nodeshutdown\n      effect: NoExecute\n"
	}
	return doc
}

// runningOn maps each VM to the nodes whose reports say it runs, leaving
// out the nodes in gone (agents stopped: their hypervisor, the test
// driver's memory, went with them).
func runningOn(fs fleetStatus, gone map[string]bool) map[string][]string {
	out := map[string][]string{}
	for _, v := range fs.VMs {
		if v.Running && !gone[v.Node] {
			out[v.Name] = append(out[v.Name], v.Node)
		}
	}
	return out
}

// Three agents place three anti-affine VMs one per node from the same
// commit and keep them there when a fourth VM that sorts first is added
// (placed afresh, it would have shifted one of them). A node tainted out
// of service whose agent is gone hands its VM over only once its report is
// older than the node lease; at no time do two live nodes run one VM.
func TestFleet_placementKeptAndFenced(t *testing.T) {
	f := newFleetWorld(t)
	nodes := []string{"n1", "n2", "n3"}
	files := map[string]string{"nodes.yaml": nodeYAML("n1", false) + "---\n" + nodeYAML("n2", false) + "---\n" + nodeYAML("n3", false)}
	for _, name := range []string{"a", "b", "c"} {
		files["vms/"+name+".yaml"] = webVM(f.ns, name, "web", true)
	}
	head := f.commit("three anti-affine VMs", files)
	const lease = 15 * time.Second
	f.startAgents(nodes, "--node-lease", lease.String())

	gone := map[string]bool{}
	checked := func(what string, timeout time.Duration, cond func(fleetStatus, map[string][]string) bool) map[string][]string {
		t.Helper()
		var on map[string][]string
		f.awaitFleet(what, timeout, func(fs fleetStatus) bool {
			on = runningOn(fs, gone)
			for vm, where := range on {
				if len(where) > 1 {
					t.Fatalf("%s runs on %v at once; fleet status %+v", vm, where, fs)
				}
			}
			return cond(fs, on)
		})
		return on
	}
	applied := func(fs fleetStatus, rev string) bool {
		for _, n := range fs.Nodes {
			if !gone[n.Node] && !strings.HasSuffix(n.Applied, rev) {
				return false
			}
		}
		return len(fs.Nodes) == 3
	}

	first := checked("a, b and c running one per node", 120*time.Second, func(fs fleetStatus, on map[string][]string) bool {
		return applied(fs, head) && len(on["a"]) == 1 && len(on["b"]) == 1 && len(on["c"]) == 1
	})
	seen := map[string]bool{}
	for _, vm := range []string{"a", "b", "c"} {
		if seen[first[vm][0]] {
			t.Fatalf("anti-affine VMs share a node: %v", first)
		}
		seen[first[vm][0]] = true
	}

	// "0first" sorts before them all and has no rules: placed afresh it
	// would take n1 and push c onto it.
	head = f.commit("a fourth VM", map[string]string{"vms/0first.yaml": webVM(f.ns, "0first", "other", false)})
	after := checked("0first running, the others where they were", 90*time.Second, func(fs fleetStatus, on map[string][]string) bool {
		return applied(fs, head) && len(on["0first"]) == 1
	})
	for _, vm := range []string{"a", "b", "c"} {
		if len(after[vm]) != 1 || after[vm][0] != first[vm][0] {
			t.Errorf("%s moved from %v to %v when an unrelated VM was added", vm, first[vm], after[vm])
		}
	}

	// The node of 0first dies, then is tainted out of service.
	dead := after["0first"][0]
	// Its last report: an unchanged report is only written again at the
	// heartbeat, so the lease may run from before the agent stops.
	lastReport := time.Now()
	if out, err := f.fleetStatus("json"); err == nil {
		var fs fleetStatus
		if json.Unmarshal([]byte(out), &fs) == nil {
			for _, n := range fs.Nodes {
				if n.Node == dead {
					lastReport = lastReport.Add(-time.Duration(n.AgeSeconds) * time.Second)
				}
			}
		}
	}
	f.agents[dead].stop()
	gone[dead] = true
	files = map[string]string{"nodes.yaml": ""}
	var docs []string
	for _, n := range nodes {
		docs = append(docs, nodeYAML(n, n == dead))
	}
	files["nodes.yaml"] = strings.Join(docs, "---\n")
	head = f.commit(dead+" is out of service", files)
	checked("0first waiting for the lease of "+dead, lease, func(fs fleetStatus, on map[string][]string) bool {
		for _, v := range fs.VMs {
			if v.Name == "0first" && !gone[v.Node] && v.State == "Starting" {
				return true
			}
		}
		return false
	})
	moved := checked("0first running on a live node", 90*time.Second, func(fs fleetStatus, on map[string][]string) bool {
		return len(on["0first"]) == 1
	})
	// The lease runs from its last report (truncated to the second; the
	// dead node may have written one more after it was read).
	if took := time.Since(lastReport); took < lease-2*time.Second {
		t.Errorf("0first ran on %v %s after %s's last report, before the lease of %s", moved["0first"], took, dead, lease)
	}
	for _, vm := range []string{"a", "b", "c"} {
		if first[vm][0] != dead && (len(moved[vm]) != 1 || moved[vm][0] != first[vm][0]) {
			t.Errorf("%s moved from %v to %v", vm, first[vm], moved[vm])
		}
	}

	// The tainted node's agent comes back on an empty hypervisor: it
	// starts nothing, and once its own report is fresh (it applied the
	// commit that tainted it) every VM runs once in the fleet.
	f.agents[dead] = f.start(append(f.nodeFlags(dead), "run", "--interval", "1s", "--listen", "",
		"--status-branch", statusBranch, "--status-interval", "1s", "--node-lease", lease.String())...)
	var final map[string][]string
	checked(dead+" back, out of service, running nothing", 90*time.Second, func(fs fleetStatus, on map[string][]string) bool {
		for _, n := range fs.Nodes {
			if n.Node == dead && strings.HasSuffix(n.Applied, head) && applied(fs, head) {
				final = runningOn(fs, nil)
				return true
			}
		}
		return false
	})
	for vm, where := range final {
		if len(where) != 1 || where[0] == dead {
			t.Errorf("%s runs on %v: want one node, not the out-of-service %s", vm, where, dead)
		}
	}
	if len(final["0first"]) != 1 {
		t.Errorf("0first runs on %v, want one node", final["0first"])
	}
}
