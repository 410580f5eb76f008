package placement

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

const (
	in, notIn, exists, doesNotExist, gt, lt = corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn,
		corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist, corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt
	noSchedule, preferNoSchedule, noExecute = corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute
	equal, existsOp                         = corev1.TolerationOpEqual, corev1.TolerationOpExists
	hostname                                = LabelHostname
)

func TestPlace_nodeAffinityOperators(t *testing.T) {
	nodes := []Node{
		nd("n1", "zone", "a", "cores", "8", "gpu", "true", LabelCPUManager, "false"),
		nd("n2", "zone", "b", "cores", "16", LabelCPUManager, "true"),
		nd("n3", "zone", "c", "cores", "many"),
		{Name: "n4"},
	}
	dedicated := selector("zone", "b")
	dedicated.NodeSelector = nil
	dedicated.Domain.CPU = &kubevirtv1.CPU{DedicatedCPUPlacement: true}
	selectorAndAffinity := requiredNodes(term(req("zone", in, "a", "b")))
	selectorAndAffinity.NodeSelector = map[string]string{"gpu": "true"}

	for _, tc := range []struct {
		name string
		spec *kubevirtv1.VirtualMachineInstanceSpec
		want []string
	}{
		{"no constraints fit everywhere", nil, []string{"n1", "n2", "n3", "n4"}},
		{"In", requiredNodes(term(req("zone", in, "a", "b"))), []string{"n1", "n2"}},
		{"NotIn also matches nodes without the key", requiredNodes(term(req("zone", notIn, "a"))), []string{"n2", "n3", "n4"}},
		{"Exists", requiredNodes(term(req("gpu", exists))), []string{"n1"}},
		{"DoesNotExist", requiredNodes(term(req("gpu", doesNotExist))), []string{"n2", "n3", "n4"}},
		{"Gt compares integers; a non-integer label never matches", requiredNodes(term(req("cores", gt, "8"))), []string{"n2"}},
		{"Lt", requiredNodes(term(req("cores", lt, "16"))), []string{"n1"}},
		{"expressions in one term are ANDed", requiredNodes(term(req("zone", in, "a", "b"), req("cores", gt, "10"))), []string{"n2"}},
		{"terms are ORed", requiredNodes(term(req("zone", in, "a")), term(req("zone", in, "c"))), []string{"n1", "n3"}},
		{"matchFields metadata.name In", requiredNodes(fieldTerm(req("metadata.name", in, "n3"))), []string{"n3"}},
		{"matchFields metadata.name NotIn", requiredNodes(fieldTerm(req("metadata.name", notIn, "n3"))), []string{"n1", "n2", "n4"}},
		{"matchFields and matchExpressions in one term are ANDed", requiredNodes(corev1.NodeSelectorTerm{
			MatchExpressions: []corev1.NodeSelectorRequirement{req("zone", exists)},
			MatchFields:      []corev1.NodeSelectorRequirement{req("metadata.name", notIn, "n1")},
		}), []string{"n2", "n3"}},
		{"an empty term matches no node", requiredNodes(term()), nil},
		{"no terms at all match no node", requiredNodes(), nil},
		{"an empty term beside a real one is ignored", requiredNodes(term(), term(req("gpu", exists))), []string{"n1"}},
		{"kubernetes.io/hostname is always the node name", requiredNodes(term(req(hostname, in, "n4"))), []string{"n4"}},
		{"nodeSelector needs every label equal", selector("zone", "a", "gpu", "true"), []string{"n1"}},
		{"nodeSelector with one label unmatched", selector("zone", "b", "gpu", "true"), nil},
		{"nodeSelector and required affinity are ANDed", selectorAndAffinity, []string{"n1"}},
		{"dedicatedCpuPlacement adds cpumanager=true", dedicated, []string{"n2"}},
		{"preferred terms never filter", preferNodes(pref(100, req("missing", exists))), []string{"n1", "n2", "n3", "n4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := vmOf("vm", tc.spec)
			if diff := cmp.Diff(tc.want, fits(nodes, v)); diff != "" {
				t.Errorf("fitting nodes (-want +got):\n%s", diff)
			}
			res := Place(nodes, []VM{v})
			if tc.want == nil {
				want := "0/4 nodes are available: 4 node(s) didn't match Pod's node affinity/selector."
				if got := res.Unschedulable[v.Key]; got != want {
					t.Errorf("reason = %q, want %q", got, want)
				}
			} else if got := res.Node[v.Key]; got != tc.want[0] {
				t.Errorf("placed on %q, want %q (first fitting node, all empty)", got, tc.want[0])
			}
		})
	}
}

func TestPlace_taintsAndTolerations(t *testing.T) {
	gpu := taint("dedicated", "gpu", noSchedule)
	for _, tc := range []struct {
		name   string
		node   Node
		tols   []corev1.Toleration
		reason string // "" = fits
	}{
		{"untolerated NoSchedule", withTaints(nd("n"), gpu), nil,
			"0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."},
		{"untolerated NoExecute", withTaints(nd("n"), taint("dedicated", "gpu", noExecute)), nil,
			"0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."},
		{"PreferNoSchedule does not filter", withTaints(nd("n"), taint("dedicated", "gpu", preferNoSchedule)), nil, ""},
		{"Equal with the same value tolerates", withTaints(nd("n"), gpu), []corev1.Toleration{tol("dedicated", equal, "gpu", noSchedule)}, ""},
		{"Equal with another value does not", withTaints(nd("n"), gpu), []corev1.Toleration{tol("dedicated", equal, "db", noSchedule)},
			"0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."},
		{"an empty operator means Equal", withTaints(nd("n"), gpu), []corev1.Toleration{tol("dedicated", "", "gpu", noSchedule)}, ""},
		{"Exists ignores the value", withTaints(nd("n"), gpu), []corev1.Toleration{tol("dedicated", existsOp, "", noSchedule)}, ""},
		{"Exists on another key does not tolerate", withTaints(nd("n"), gpu), []corev1.Toleration{tol("other", existsOp, "", "")},
			"0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."},
		{"an empty key with Exists tolerates every taint",
			withTaints(nd("n"), gpu, taint("x", "", noExecute), taint("y", "1", noSchedule)),
			[]corev1.Toleration{tol("", existsOp, "", "")}, ""},
		{"an empty key with Exists still matches only its effect",
			withTaints(nd("n"), gpu, taint("x", "1", noExecute)),
			[]corev1.Toleration{tol("", existsOp, "", noSchedule)},
			"0/1 nodes are available: 1 node(s) had untolerated taint {x: 1}."},
		{"an empty effect matches every effect", withTaints(nd("n"), taint("dedicated", "gpu", noExecute)),
			[]corev1.Toleration{tol("dedicated", equal, "gpu", "")}, ""},
		{"a NoSchedule toleration does not tolerate NoExecute", withTaints(nd("n"), taint("dedicated", "gpu", noExecute)),
			[]corev1.Toleration{tol("dedicated", equal, "gpu", noSchedule)},
			"0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."},
		{"the first untolerated taint is the reason",
			withTaints(nd("n"), gpu, taint("node-role.kubernetes.io/control-plane", "", noSchedule)),
			[]corev1.Toleration{tol("dedicated", existsOp, "", "")},
			"0/1 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }."},
		{"a cordoned node takes no new VM", Node{Name: "n", Unschedulable: true}, nil,
			"0/1 nodes are available: 1 node(s) were unschedulable."},
		{"a cordoned node takes a VM that tolerates node.kubernetes.io/unschedulable", Node{Name: "n", Unschedulable: true},
			[]corev1.Toleration{tol(TaintNodeUnschedulable, existsOp, "", noSchedule)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := vmOf("vm", tolerating(tc.tols...))
			res := Place([]Node{tc.node}, []VM{v})
			if tc.reason == "" {
				if res.Node[v.Key] != "n" {
					t.Errorf("not placed: %q", res.Unschedulable[v.Key])
				}
				return
			}
			if got := res.Unschedulable[v.Key]; got != tc.reason {
				t.Errorf("reason = %q, want %q", got, tc.reason)
			}
		})
	}
}

func TestPlace_preferNoScheduleScores(t *testing.T) {
	soft := taint("maintenance", "soon", preferNoSchedule)
	for _, tc := range []struct {
		name  string
		nodes []Node
		vms   []VM
		want  map[string]string
	}{
		{"an untainted node wins",
			[]Node{withTaints(nd("a"), soft), nd("b")},
			[]VM{vmOf("vm", nil)},
			map[string]string{"default/vm": "b"}},
		{"the taint outweighs load",
			[]Node{withTaints(nd("a"), soft), nd("b")},
			[]VM{pinned("busy-1", "b"), pinned("busy-2", "b"), vmOf("vm", nil)},
			map[string]string{"default/busy-1": "b", "default/busy-2": "b", "default/vm": "b"}},
		{"fewer untolerated taints win",
			[]Node{withTaints(nd("a"), soft, taint("old", "", preferNoSchedule)), withTaints(nd("b"), soft), nd("c", "x", "y")},
			[]VM{vmOf("vm", selector("x", "y")), vmOf("vm2", requiredNodes(term(req(hostname, notIn, "c"))))},
			map[string]string{"default/vm": "c", "default/vm2": "b"}},
		{"a tolerated taint counts nothing: load decides",
			[]Node{withTaints(nd("a"), soft), nd("b")},
			[]VM{pinned("busy", "b"), vmOf("vm", tolerating(tol("maintenance", existsOp, "", preferNoSchedule)))},
			map[string]string{"default/busy": "b", "default/vm": "a"}},
		{"a NoSchedule toleration does not tolerate PreferNoSchedule",
			[]Node{withTaints(nd("a"), soft), nd("b")},
			[]VM{pinned("busy", "b"), vmOf("vm", tolerating(tol("maintenance", existsOp, "", noSchedule)))},
			map[string]string{"default/busy": "b", "default/vm": "b"}},
		{"avoiding the taint outweighs preferred node affinity (weights 3 and 2)",
			[]Node{withTaints(nd("a", "fast", "true"), soft), nd("b")},
			[]VM{vmOf("vm", preferNodes(pref(100, req("fast", exists))))},
			map[string]string{"default/vm": "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Place(tc.nodes, tc.vms)
			if diff := cmp.Diff(tc.want, res.Node); diff != "" {
				t.Errorf("placement (-want +got):\n%s\nunschedulable: %v", diff, res.Unschedulable)
			}
		})
	}
}

func TestPlace_antiAffinitySpreads(t *testing.T) {
	nodes := []Node{nd("n1"), nd("n2"), nd("n3")}
	spread := podAntiAffinity(selects(hostname, "app", "db"))
	var vms []VM
	for i := 4; i >= 1; i-- { // reverse input order: keys decide
		vms = append(vms, vmOf(fmt.Sprintf("db-%d", i), spread, "app", "db"))
	}
	res := Place(nodes, vms)
	want := Result{
		Node: map[string]string{"default/db-1": "n1", "default/db-2": "n2", "default/db-3": "n3"},
		Unschedulable: map[string]string{
			"default/db-4": "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.",
		},
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestPlace_interPodRules(t *testing.T) {
	zones := []Node{nd("n1", "zone", "a"), nd("n2", "zone", "a"), nd("n3", "zone", "b"), nd("n4")}
	three := []Node{nd("n1"), nd("n2"), nd("n3")}
	for _, tc := range []struct {
		name  string
		nodes []Node
		vms   []VM
		want  Result
	}{
		{"required affinity co-locates with the selected VM",
			three,
			[]VM{pinned("a-db", "n2", "app", "db"), vmOf("b-web", podAffinity(selects(hostname, "app", "db")), "app", "web")},
			Result{Node: map[string]string{"default/a-db": "n2", "default/b-web": "n2"}}},
		{"required affinity with nothing to join",
			three,
			[]VM{vmOf("web", podAffinity(selects(hostname, "app", "db")), "app", "web")},
			Result{Unschedulable: map[string]string{"default/web": "0/3 nodes are available: 3 node(s) didn't match pod affinity rules."}}},
		{"a group with affinity to itself starts on one node and stays together (first-pod rule)",
			three,
			[]VM{
				vmOf("cache-1", podAffinity(selects(hostname, "app", "cache")), "app", "cache"),
				vmOf("cache-2", podAffinity(selects(hostname, "app", "cache")), "app", "cache"),
				vmOf("cache-3", podAffinity(selects(hostname, "app", "cache")), "app", "cache"),
			},
			Result{Node: map[string]string{"default/cache-1": "n1", "default/cache-2": "n1", "default/cache-3": "n1"}}},
		{"affinity over a zone takes any node of the zone (least loaded)",
			zones,
			[]VM{pinned("a-db", "n1", "app", "db"), vmOf("b-web", podAffinity(selects("zone", "app", "db")))},
			Result{Node: map[string]string{"default/a-db": "n1", "default/b-web": "n2"}}},
		{"anti-affinity over a zone; a node without the key is in no domain",
			zones,
			[]VM{
				vmOf("db-1", podAntiAffinity(selects("zone", "app", "db")), "app", "db"),
				vmOf("db-2", podAntiAffinity(selects("zone", "app", "db")), "app", "db"),
				vmOf("db-3", podAntiAffinity(selects("zone", "app", "db")), "app", "db"),
				vmOf("db-4", podAntiAffinity(selects("zone", "app", "db")), "app", "db"),
			},
			Result{Node: map[string]string{"default/db-1": "n1", "default/db-2": "n3", "default/db-3": "n4", "default/db-4": "n4"}}},
		{"required affinity needs the topology key on the node",
			zones,
			[]VM{pinned("a-db", "n4", "app", "db"), vmOf("b-web", podAffinity(selects(hostname, "app", "db"), selects("zone", "app", "db")))},
			Result{
				Node: map[string]string{"default/a-db": "n4"},
				Unschedulable: map[string]string{
					"default/b-web": "0/4 nodes are available: 4 node(s) didn't match pod affinity rules.",
				},
			}},
		{"anti-affinity is symmetric: a placed VM's rule keeps the newcomer away",
			[]Node{nd("n1")},
			[]VM{vmOf("a-guard", podAntiAffinity(selects(hostname, "app", "web"))), vmOf("b-web", nil, "app", "web")},
			Result{
				Node:          map[string]string{"default/a-guard": "n1"},
				Unschedulable: map[string]string{"default/b-web": "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."},
			}},
		{"a VM does not repel itself",
			[]Node{nd("n1")},
			[]VM{vmOf("db", podAntiAffinity(selects(hostname, "app", "db")), "app", "db")},
			Result{Node: map[string]string{"default/db": "n1"}}},
		{"a nil labelSelector selects nothing",
			[]Node{nd("n1")},
			[]VM{vmOf("a", nil, "app", "db"), vmOf("b", podAntiAffinity(corev1.PodAffinityTerm{TopologyKey: hostname}))},
			Result{Node: map[string]string{"default/a": "n1", "default/b": "n1"}}},
		{"an empty labelSelector selects every VM",
			[]Node{nd("n1")},
			[]VM{vmOf("a", nil), vmOf("b", podAntiAffinity(corev1.PodAffinityTerm{LabelSelector: &metav1.LabelSelector{}, TopologyKey: hostname}))},
			Result{
				Node:          map[string]string{"default/a": "n1"},
				Unschedulable: map[string]string{"default/b": "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules."},
			}},
		{"matchLabelKeys narrows the selector to the VM's own value",
			[]Node{nd("n1")},
			[]VM{
				vmOf("a", nil, "app", "db", "tenant", "x"),
				vmOf("b", podAntiAffinity(corev1.PodAffinityTerm{
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, TopologyKey: hostname,
					MatchLabelKeys: []string{"tenant"},
				}), "tenant", "y"),
			},
			Result{Node: map[string]string{"default/a": "n1", "default/b": "n1"}}},
		{"mismatchLabelKeys excludes the VM's own value",
			[]Node{nd("n1")},
			[]VM{
				vmOf("a", nil, "app", "db", "tenant", "x"),
				vmOf("b", podAntiAffinity(corev1.PodAffinityTerm{
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, TopologyKey: hostname,
					MismatchLabelKeys: []string{"tenant"},
				}), "tenant", "y"),
			},
			Result{
				Node:          map[string]string{"default/a": "n1"},
				Unschedulable: map[string]string{"default/b": "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules."},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want.Node == nil {
				tc.want.Node = map[string]string{}
			}
			if tc.want.Unschedulable == nil {
				tc.want.Unschedulable = map[string]string{}
			}
			if diff := cmp.Diff(tc.want, Place(tc.nodes, tc.vms)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlace_namespaces(t *testing.T) {
	other := VM{Key: "b/db", Namespace: "b", Labels: map[string]string{"app": "db"}}
	anti := func(term corev1.PodAffinityTerm) VM {
		return VM{Key: "c/web", Namespace: "c", Spec: podAntiAffinity(term)}
	}
	term := func(namespaces []string, nsSel *metav1.LabelSelector) corev1.PodAffinityTerm {
		t := selects(hostname, "app", "db")
		t.Namespaces, t.NamespaceSelector = namespaces, nsSel
		return t
	}
	for _, tc := range []struct {
		name       string
		term       corev1.PodAffinityTerm
		namespaces []Namespace
		repelled   bool
	}{
		{"by default only the VM's own namespace", term(nil, nil), nil, false},
		{"namespaces lists others", term([]string{"b"}, nil), nil, true},
		{"namespaces without the other's", term([]string{"a", "c"}, nil), nil, false},
		{"an empty namespaceSelector covers all namespaces", term(nil, &metav1.LabelSelector{}), nil, true},
		{"namespaceSelector on a Namespace manifest's labels",
			term(nil, &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}),
			[]Namespace{{Name: "b", Labels: map[string]string{"env": "prod"}}}, true},
		{"namespaceSelector not matching",
			term(nil, &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}),
			[]Namespace{{Name: "b", Labels: map[string]string{"env": "dev"}}}, false},
		{"kubernetes.io/metadata.name is there without a manifest",
			term(nil, &metav1.LabelSelector{MatchLabels: map[string]string{LabelNamespaceName: "b"}}), nil, true},
		{"namespaces and namespaceSelector are ORed",
			term([]string{"d"}, &metav1.LabelSelector{MatchLabels: map[string]string{LabelNamespaceName: "b"}}), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Place([]Node{nd("n1")}, []VM{other, anti(tc.term)}, tc.namespaces...)
			if res.Node["b/db"] != "n1" {
				t.Fatalf("b/db not placed: %v", res)
			}
			if got := res.Node["c/web"] == ""; got != tc.repelled {
				t.Errorf("c/web repelled = %v, want %v (%v)", got, tc.repelled, res)
			}
		})
	}
}

// The symmetric check evaluates the placed VM's term with the placed VM's
// namespace defaults: a/web, placed first, keeps b/db out through namespaces.
func TestPlace_namespacesSymmetric(t *testing.T) {
	term := selects(hostname, "app", "db")
	term.Namespaces = []string{"b"}
	web := VM{Key: "a/web", Spec: podAntiAffinity(term)}
	db := VM{Key: "b/db", Labels: map[string]string{"app": "db"}}
	want := Result{
		Node:          map[string]string{"a/web": "n1"},
		Unschedulable: map[string]string{"b/db": "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."},
	}
	if diff := cmp.Diff(want, Place([]Node{nd("n1")}, []VM{db, web})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestPlace_preferredWeights(t *testing.T) {
	repeller := vmOf("a-web", avoidPods(weighted(5, selects(hostname, "app", "db"))))
	repeller.Spec.NodeSelector = map[string]string{hostname: "n1"}
	for _, tc := range []struct {
		name  string
		nodes []Node
		vms   []VM
		key   string
		want  string
	}{
		{"the heavier node preference wins",
			[]Node{nd("n1", "fast", "true"), nd("n2", "big", "true"), nd("n3")},
			[]VM{vmOf("vm", preferNodes(pref(10, req("fast", exists)), pref(50, req("big", exists))))},
			"default/vm", "n2"},
		{"matching weights add up",
			[]Node{nd("n1", "fast", "true"), nd("n2", "big", "true"), nd("n3", "fast", "true", "big", "true")},
			[]VM{vmOf("vm", preferNodes(pref(10, req("fast", exists)), pref(50, req("big", exists))))},
			"default/vm", "n3"},
		{"a preference beats load",
			[]Node{nd("n1"), nd("n2", "ssd", "true")},
			[]VM{pinned("busy", "n2"), vmOf("vm", preferNodes(pref(1, req("ssd", exists))))},
			"default/vm", "n2"},
		{"weight 0 is ignored",
			[]Node{nd("n1"), nd("n2", "ssd", "true")},
			[]VM{pinned("busy", "n2"), vmOf("vm", preferNodes(pref(0, req("ssd", exists))))},
			"default/vm", "n1"},
		{"preferred pod affinity joins the selected VM",
			[]Node{nd("n1"), nd("n2"), nd("n3")},
			[]VM{pinned("a-db", "n3", "app", "db"), vmOf("b-web", preferPods(weighted(100, selects(hostname, "app", "db"))))},
			"default/b-web", "n3"},
		{"preferred pod affinity with nothing to join still places",
			[]Node{nd("n1"), nd("n2")},
			[]VM{vmOf("web", preferPods(weighted(100, selects(hostname, "app", "db"))))},
			"default/web", "n1"},
		{"preferred anti-affinity avoids the selected VM",
			[]Node{nd("n1"), nd("n2")},
			[]VM{pinned("a-db", "n2", "app", "db"), pinned("a-busy", "n1"), pinned("a-busy2", "n1"),
				vmOf("b-web", avoidPods(weighted(10, selects(hostname, "app", "db"))))},
			"default/b-web", "n1"},
		{"preferred anti-affinity gives way when every node has one",
			[]Node{nd("n1")},
			[]VM{pinned("a-db", "n1", "app", "db"), vmOf("b-web", avoidPods(weighted(100, selects(hostname, "app", "db"))))},
			"default/b-web", "n1"},
		{"a placed VM's preferred affinity draws the newcomer",
			[]Node{nd("n1"), nd("n2")},
			[]VM{vmOf("a-web", preferPods(weighted(5, selects(hostname, "app", "db")))), pinned("b-busy", "n1"),
				pinned("b-busy2", "n1"), vmOf("c-db", nil, "app", "db")},
			"default/c-db", "n1"},
		{"a placed VM's preferred anti-affinity keeps the newcomer away",
			[]Node{nd("n1"), nd("n2")},
			[]VM{repeller, pinned("b-busy", "n2"), pinned("b-busy2", "n2"), vmOf("c-db", nil, "app", "db")},
			"default/c-db", "n2"},
		{"a placed VM's required affinity draws the newcomer (weight 1)",
			[]Node{nd("n1"), nd("n2")},
			[]VM{vmOf("a-web", podAffinity(selects(hostname, "app", "web")), "app", "web"), pinned("b-busy", "n1"),
				vmOf("c-web", nil, "app", "web")},
			"default/c-web", "n1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Place(tc.nodes, tc.vms)
			if got := res.Node[tc.key]; got != tc.want {
				t.Errorf("%s on %q, want %q (%v)", tc.key, got, tc.want, res)
			}
		})
	}
}

func TestPlace_messages(t *testing.T) {
	var nodes []Node
	for i := range 10 {
		nodes = append(nodes, withTaints(nd(fmt.Sprintf("t%02d", i)), taint("k", "v", noSchedule)))
	}
	nodes = append(nodes, nd("x1"), nd("x2"), Node{Name: "c", Unschedulable: true})
	v := vmOf("vm", selector("role", "db"))
	// Counts sort as strings, as kube-scheduler's histogram does: "10" < "2".
	want := "0/13 nodes are available: 1 node(s) were unschedulable, 10 node(s) had untolerated taint {k: v}, " +
		"2 node(s) didn't match Pod's node affinity/selector."
	if got := Place(nodes, []VM{v}).Unschedulable[v.Key]; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := Place(nil, []VM{v}).Unschedulable[v.Key]; got != ReasonNoNodes {
		t.Errorf("no nodes: %q", got)
	}
}

func TestPlace_oneNodeTakesAnUnconstrainedVM(t *testing.T) {
	res := Place([]Node{{Name: "host"}}, []VM{{Key: "ns/vm"}})
	if diff := cmp.Diff(Result{Node: map[string]string{"ns/vm": "host"}, Unschedulable: map[string]string{}}, res); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]string{"ns/vm"}, res.On("host")); diff != "" {
		t.Error(diff)
	}
}

func TestPlace_leastLoadedThenName(t *testing.T) {
	var vms []VM
	for i := range 5 {
		vms = append(vms, vmOf(fmt.Sprintf("vm-%d", i), nil))
	}
	res := Place([]Node{nd("c"), nd("a"), nd("b")}, vms)
	want := map[string]string{"default/vm-0": "a", "default/vm-1": "b", "default/vm-2": "c", "default/vm-3": "a", "default/vm-4": "b"}
	if diff := cmp.Diff(want, res.Node); diff != "" {
		t.Error(diff)
	}
}

func TestPlace_invalidRules(t *testing.T) {
	const nt = "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
	for _, tc := range []struct {
		name string
		spec *kubevirtv1.VirtualMachineInstanceSpec
		want string
	}{
		{"unknown operator", requiredNodes(term(req("zone", "Like", "a"))),
			nt + `.matchExpressions[0].operator: Unsupported value: "Like": supported values: "In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"`},
		{"Gt needs an integer", requiredNodes(term(req("cores", gt, "many"))),
			nt + `.matchExpressions[0].values[0]: Invalid value: "many": for 'Gt', 'Lt' operators, the value must be an integer`},
		{"In needs values", requiredNodes(term(req("zone", in))),
			nt + `.matchExpressions[0].values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty`},
		{"matchFields only knows metadata.name", requiredNodes(fieldTerm(req("spec.x", in, "a"))),
			nt + `.matchFields[0].key: Unsupported value: "spec.x": supported values: "metadata.name"`},
		{"an invalid preferred term also refuses",
			preferNodes(pref(1, req("zone", exists, "a"))),
			`affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].values: Invalid value: ["a"]: values set must be empty for exists and does not exist`},
		{"a weight above 100", preferPods(weighted(101, selects(hostname, "app", "db"))),
			`affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 101: must be in the range 1-100`},
		{"an invalid pod label selector", podAntiAffinity(corev1.PodAffinityTerm{TopologyKey: hostname,
			LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Is"}}}}),
			`affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector: "Is" is not a valid label selector operator`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := vmOf("vm", tc.spec)
			res := Place([]Node{nd("n1", "zone", "a", "cores", "4")}, []VM{v})
			if got := res.Unschedulable[v.Key]; got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestPlace_duplicates(t *testing.T) {
	nodes := []Node{nd("n1", "a", "1"), nd("n1", "a", "2"), nd("n2")}
	vms := []VM{vmOf("x", nil), vmOf("x", selector("a", "1")), vmOf("y", nil)}
	res := Place(nodes, vms)
	want := Result{
		Node:          map[string]string{"default/y": "n2"},
		Unschedulable: map[string]string{"default/x": ReasonDuplicate},
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// A VM placed earlier is never moved by a later one, and the greedy order
// can leave a VM unschedulable that a solver would fit: "a" takes n1 (both
// nodes empty, n1 first by name) and "b", which must run on n1 away from
// "a", stays down, although a on n2 and b on n1 would fit both.
func TestPlace_greedyOrderIsStable(t *testing.T) {
	nodes := []Node{nd("n1"), nd("n2")}
	a := vmOf("a", nil, "app", "x")
	b := vmOf("b", podAntiAffinity(selects(hostname, "app", "x")))
	b.Spec.NodeSelector = map[string]string{hostname: "n1"}
	want := Result{
		Node:          map[string]string{"default/a": "n1"},
		Unschedulable: map[string]string{"default/b": "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) didn't match pod anti-affinity rules."},
	}
	if diff := cmp.Diff(want, Place(nodes, []VM{b, a})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestPlace_previousPlacementIsKept(t *testing.T) {
	web := func(name, prev string) VM {
		v := vmOf(name, podAntiAffinity(selects(hostname, "app", "web")), "app", "web")
		v.Previous = prev
		return v
	}
	for _, tc := range []struct {
		name  string
		nodes []Node
		vms   []VM
		want  Result
	}{
		{"a new VM that sorts first does not displace a running one",
			[]Node{nd("n1"), nd("n2")},
			[]VM{web("b", "n1"), web("a", "")},
			Result{Node: map[string]string{"default/b": "n1", "default/a": "n2"}}},
		{"changed node labels do not move a VM (IgnoredDuringExecution)",
			[]Node{nd("n1", "disk", "hdd"), nd("n2", "disk", "ssd")},
			[]VM{{Key: "default/db", Spec: selector("disk", "ssd"), Previous: "n1"}},
			Result{Node: map[string]string{"default/db": "n1"}}},
		{"NoSchedule taints and a cordon do not move a VM",
			[]Node{{Name: "n1", Unschedulable: true, Taints: []corev1.Taint{taint("k", "v", noSchedule)}}, nd("n2")},
			[]VM{{Key: "default/db", Previous: "n1"}},
			Result{Node: map[string]string{"default/db": "n1"}}},
		{"an untolerated NoExecute taint moves a VM",
			[]Node{withTaints(nd("n1"), taint("node.kubernetes.io/out-of-service", "nodeshutdown", noExecute)), nd("n2")},
			[]VM{{Key: "default/db", Previous: "n1"}},
			Result{Node: map[string]string{"default/db": "n2"}}},
		{"the out-of-service taint moves a VM whatever its effect",
			[]Node{withTaints(nd("n1"), taint(TaintOutOfService, "nodeshutdown", noSchedule)), nd("n2")},
			[]VM{{Key: "default/db", Previous: "n1"}},
			Result{Node: map[string]string{"default/db": "n2"}}},
		{"a tolerated NoExecute taint keeps it",
			[]Node{withTaints(nd("n1"), taint("k", "v", noExecute)), nd("n2")},
			[]VM{{Key: "default/db", Previous: "n1", Spec: tolerating(tol("k", existsOp, "", noExecute))}},
			Result{Node: map[string]string{"default/db": "n1"}}},
		{"a VM whose node is gone is placed again, before new VMs",
			[]Node{nd("n2")},
			[]VM{web("a", ""), web("b", "n1")},
			Result{
				Node:          map[string]string{"default/b": "n2"},
				Unschedulable: map[string]string{"default/a": "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules."},
			}},
		{"kept VMs are kept even when their rules now conflict",
			[]Node{nd("n1"), nd("n2")},
			[]VM{web("a", "n1"), web("b", "n1"), web("c", "")},
			Result{Node: map[string]string{"default/a": "n1", "default/b": "n1", "default/c": "n2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want.Unschedulable == nil {
				tc.want.Unschedulable = map[string]string{}
			}
			if diff := cmp.Diff(tc.want, Place(tc.nodes, tc.vms)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// Every agent computes the same placement from the same commit whatever the
// order of the manifests (F-1).
func TestPlace_deterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	zones := []string{"a", "b", "c"}
	var nodes []Node
	for i := range 7 {
		n := nd(fmt.Sprintf("node-%d", i), "zone", zones[i%3], "rack", fmt.Sprint(i%2))
		if i%3 == 1 {
			n.Taints = []corev1.Taint{taint("maintenance", "", preferNoSchedule)}
		}
		if i == 5 {
			n.Taints = append(n.Taints, taint("dedicated", "gpu", noSchedule))
		}
		nodes = append(nodes, n)
	}
	apps := []string{"web", "db", "cache"}
	var vms []VM
	for i := range 40 {
		app := apps[r.IntN(len(apps))]
		var spec *kubevirtv1.VirtualMachineInstanceSpec
		switch r.IntN(6) {
		case 0:
			spec = podAntiAffinity(selects(hostname, "app", app))
		case 1:
			spec = avoidPods(weighted(int32(1+r.IntN(100)), selects("zone", "app", app)))
		case 2:
			spec = preferNodes(pref(int32(1+r.IntN(100)), req("rack", in, "1")))
		case 3:
			spec = tolerating(tol("dedicated", existsOp, "", ""))
		case 4:
			spec = podAffinity(selects("zone", "app", "db"))
		}
		v := vmOf(fmt.Sprintf("vm-%02d", i), spec, "app", app)
		if i%7 == 0 {
			v.Previous = nodes[i%len(nodes)].Name
		}
		vms = append(vms, v)
	}
	want := Place(nodes, vms)
	if len(want.Node)+len(want.Unschedulable) != len(vms) || len(want.Node) == 0 || len(want.Unschedulable) == 0 {
		t.Fatalf("want a mix of placed and unschedulable VMs, every key once: %v", want)
	}
	for range 50 {
		r.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
		r.Shuffle(len(vms), func(i, j int) { vms[i], vms[j] = vms[j], vms[i] })
		if diff := cmp.Diff(want, Place(nodes, vms)); diff != "" {
			t.Fatalf("shuffled input, different placement (-want +got):\n%s", diff)
		}
	}
}

func TestFrom_manifests(t *testing.T) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": "a"}},
		Spec:       corev1.NodeSpec{Unschedulable: true, Taints: []corev1.Taint{taint("k", "v", noSchedule)}},
	}
	if diff := cmp.Diff(Node{Name: "n1", Labels: map[string]string{"zone": "a"}, Taints: node.Spec.Taints, Unschedulable: true}, FromNode(node)); diff != "" {
		t.Error(diff)
	}
	vm := &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Labels: map[string]string{"vm": "label"}},
		Spec: kubevirtv1.VirtualMachineSpec{Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec:       kubevirtv1.VirtualMachineInstanceSpec{NodeSelector: map[string]string{"zone": "a"}},
		}},
	}
	got := FromVirtualMachine(vm)
	if got.Key != "ns/web" || got.Namespace != "ns" || got.Labels["app"] != "web" || got.Spec.NodeSelector["zone"] != "a" {
		t.Errorf("FromVirtualMachine = %+v: want the template's labels and spec", got)
	}
	vmi := &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "once", Labels: map[string]string{"app": "job"}}}
	if got := FromInstance(vmi); got.Key != "ns/once" || got.Labels["app"] != "job" || got.Spec != &vmi.Spec {
		t.Errorf("FromInstance = %+v", got)
	}
	if got := FromVirtualMachine(&kubevirtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "x"}}); got.Spec != nil {
		t.Errorf("no template: Spec = %v, want nil", got.Spec)
	}
}

func TestNodeSelector_dedicatedCPUs(t *testing.T) {
	spec := &kubevirtv1.VirtualMachineInstanceSpec{NodeSelector: map[string]string{"zone": "a"}}
	spec.Domain.CPU = &kubevirtv1.CPU{DedicatedCPUPlacement: true}
	if diff := cmp.Diff(map[string]string{"zone": "a", "cpumanager": "true"}, NodeSelector(spec)); diff != "" {
		t.Error(diff)
	}
	if spec.NodeSelector["cpumanager"] != "" {
		t.Error("NodeSelector changed the spec")
	}
	if got := NodeSelector(&kubevirtv1.VirtualMachineInstanceSpec{}); got != nil {
		t.Errorf("no selector: %v", got)
	}
}

// The hash changes with the VM's own placement rules only.
func TestVM_hash(t *testing.T) {
	base := vmOf("db", selector("disk", "ssd"), "app", "db")
	relabelled := vmOf("db", selector("disk", "ssd"), "app", "other")
	if base.Hash() == "" || base.Hash() != relabelled.Hash() {
		t.Errorf("labels must not change the hash: %q, %q", base.Hash(), relabelled.Hash())
	}
	for name, other := range map[string]VM{
		"selector":    vmOf("db", selector("disk", "hdd"), "app", "db"),
		"affinity":    vmOf("db", podAntiAffinity(selects(hostname, "app", "db")), "app", "db"),
		"tolerations": vmOf("db", tolerating(tol("k", existsOp, "", noExecute)), "app", "db"),
		"no spec":     vmOf("db", nil, "app", "db"),
	} {
		if other.Hash() == base.Hash() {
			t.Errorf("%s: a changed rule must change the hash", name)
		}
	}
	dedicated := &kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{CPU: &kubevirtv1.CPU{DedicatedCPUPlacement: true}}}
	if vmOf("db", dedicated).Hash() == vmOf("db", &kubevirtv1.VirtualMachineInstanceSpec{}).Hash() {
		t.Error("dedicated CPUs select cpumanager nodes: the hash must change")
	}
}

// A VM without inter-pod terms of its own is placed against only the placed
// VMs that have terms: those terms must still hold for it, however many
// VMs without terms were placed in between.
func TestPlace_placedVMsTermsBindVMsWithoutTerms(t *testing.T) {
	nodes := []Node{nd("n1"), nd("n2")}
	guard := vmOf("a-guard", podAntiAffinity(selects(LabelHostname, "app", "db")))
	guard.Spec.NodeSelector = map[string]string{LabelHostname: "n1"}
	friend := vmOf("a-friend", preferPods(weighted(100, selects(LabelHostname, "app", "db"))))
	friend.Spec.NodeSelector = map[string]string{LabelHostname: "n2"}
	fillers := func(node string) []VM {
		var out []VM
		for i := range 5 {
			out = append(out, pinned(fmt.Sprintf("b-%d", i), node, "app", "web"))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		vms  []VM
		want string
	}{
		{"a placed VM's required anti-affinity keeps it off the busier node's rival", append([]VM{guard}, fillers("n2")...), "n2"},
		{"a placed VM's preferred affinity draws it to the busier node", append([]VM{friend}, fillers("n2")...), "n2"},
		{"with neither, the least loaded node takes it", fillers("n2"), "n1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Place(nodes, append(tc.vms, vmOf("c-db", nil, "app", "db")))
			if got.Node["default/c-db"] != tc.want {
				t.Fatalf("c-db on %q, want %q (%v)", got.Node["default/c-db"], tc.want, got)
			}
		})
	}
}
