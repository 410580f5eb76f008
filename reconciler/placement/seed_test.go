package placement

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// The examples of seed 8.14.2.2 (advanced-vm-management.ko.txt), written as
// Go values. The seed puts affinity and tolerations directly under the
// VirtualMachine's spec; KubeVirt reads them from spec.template.spec, which
// is the VirtualMachineInstanceSpec given here.

// 8.14.2.2.1: nodeSelector.
var seedNodeSelectorVM = VM{Key: "default/example-vm-node-selector", Spec: &kubevirtv1.VirtualMachineInstanceSpec{
	NodeSelector: map[string]string{
		"example-key-1": "example-value-1",
		"example-key-2": "example-value-2",
	},
}}

// 8.14.2.2.2: pod affinity and pod anti-affinity.
var seedPodAffinityVM = VM{Key: "default/example-vm-pod-affinity", Spec: &kubevirtv1.VirtualMachineInstanceSpec{
	Affinity: &corev1.Affinity{
		PodAffinity: &corev1.PodAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key: "example-key-1", Operator: metav1.LabelSelectorOpIn, Values: []string{"example-value-1"},
				}}},
				TopologyKey: "kubernetes.io/hostname",
			}},
		},
		PodAntiAffinity: &corev1.PodAntiAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 100,
				PodAffinityTerm: corev1.PodAffinityTerm{
					LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
						Key: "example-key-2", Operator: metav1.LabelSelectorOpIn, Values: []string{"example-value-2"},
					}}},
					TopologyKey: "kubernetes.io/hostname",
				},
			}},
		},
	},
}}

// 8.14.2.2.3: node affinity.
var seedNodeAffinityVM = VM{Key: "default/example-vm-node-affinity", Spec: &kubevirtv1.VirtualMachineInstanceSpec{
	Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: "example.io/example-key", Operator: corev1.NodeSelectorOpIn,
				Values: []string{"example-value-1", "example-value-2"},
			}},
		}}},
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
			Weight: 1,
			Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: "example-node-label-key", Operator: corev1.NodeSelectorOpIn, Values: []string{"example-node-label-value"},
			}}},
		}},
	}},
}}

// 8.14.2.2.4: tolerations.
var seedTolerationsVM = VM{Key: "default/example-vm-tolerations", Spec: &kubevirtv1.VirtualMachineInstanceSpec{
	Tolerations: []corev1.Toleration{{Key: "key", Operator: "Equal", Value: "virtualization", Effect: "NoSchedule"}},
}}

// running is a VM already on node (placed by an earlier commit).
func running(name, node string, kv ...string) VM {
	v := vmOf(name, nil, kv...)
	v.Previous = node
	return v
}

func TestPlace_seed8_14_2(t *testing.T) {
	both := nd("node-1", "example-key-1", "example-value-1", "example-key-2", "example-value-2")
	oneOnly := nd("node-2", "example-key-1", "example-value-1")
	three := []Node{nd("node-1"), nd("node-2"), nd("node-3")}
	affinityNodes := []Node{
		nd("node-1", "example.io/example-key", "example-value-1"),
		nd("node-2", "example.io/example-key", "example-value-2", "example-node-label-key", "example-node-label-value"),
		nd("node-3"),
	}
	tainted := withTaints(nd("node-1"), taint("key", "virtualization", noSchedule))

	for _, tc := range []struct {
		name  string
		nodes []Node
		vms   []VM
		key   string
		want  string // node, or the unschedulable reason
	}{
		// 8.14.2.2.1
		{"8.14.2.2.1 nodeSelector: the node with both labels",
			[]Node{oneOnly, both, nd("node-3")}, []VM{seedNodeSelectorVM}, seedNodeSelectorVM.Key, "node-1"},
		{"8.14.2.2.1 nodeSelector: no node has both labels, not scheduled",
			[]Node{oneOnly, nd("node-3")}, []VM{seedNodeSelectorVM}, seedNodeSelectorVM.Key,
			"0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."},

		// 8.14.2.2.2
		{"8.14.2.2.2 pod affinity: next to an example-key-1 VM, preferably without example-key-2",
			three, []VM{
				running("pod-a", "node-1", "example-key-1", "example-value-1", "example-key-2", "example-value-2"),
				running("pod-b", "node-2", "example-key-1", "example-value-1"),
				seedPodAffinityVM,
			}, seedPodAffinityVM.Key, "node-2"},
		{"8.14.2.2.2 pod affinity: no example-key-1 VM running, not scheduled",
			three, []VM{running("pod-c", "node-1", "example-key-2", "example-value-2"), seedPodAffinityVM}, seedPodAffinityVM.Key,
			"0/3 nodes are available: 3 node(s) didn't match pod affinity rules."},
		{"8.14.2.2.2 pod anti-affinity is ignored when every candidate has an example-key-2 VM",
			three, []VM{
				running("pod-a", "node-1", "example-key-1", "example-value-1", "example-key-2", "example-value-2"),
				running("pod-d", "node-2", "example-key-1", "example-value-1", "example-key-2", "example-value-2"),
				running("pod-e", "node-2", "example-key-2", "example-value-2"),
				seedPodAffinityVM,
			}, seedPodAffinityVM.Key, "node-1"}, // still scheduled, where fewer example-key-2 VMs run

		// 8.14.2.2.3. The seed's prose says the scheduler "avoids" nodes
		// with example-node-label-key=example-node-label-value, but its
		// manifest is a preferred term with operator In and weight 1, which
		// Kubernetes reads as a preference for those nodes. We follow the
		// manifest; to avoid a label write NotIn.
		{"8.14.2.2.3 node affinity: required either value, preferred label decides",
			affinityNodes, []VM{seedNodeAffinityVM}, seedNodeAffinityVM.Key, "node-2"},
		{"8.14.2.2.3 node affinity: preference unmet, still scheduled on a required match",
			affinityNodes[:1], []VM{seedNodeAffinityVM}, seedNodeAffinityVM.Key, "node-1"},
		{"8.14.2.2.3 node affinity: neither label value, not scheduled",
			affinityNodes[2:], []VM{seedNodeAffinityVM}, seedNodeAffinityVM.Key,
			"0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."},

		// 8.14.2.2.4
		{"8.14.2.2.4 tolerations: the tainted node takes the tolerating VM",
			[]Node{tainted}, []VM{seedTolerationsVM}, seedTolerationsVM.Key, "node-1"},
		{"8.14.2.2.4 tolerations: without the toleration, not scheduled",
			[]Node{tainted}, []VM{{Key: "default/plain"}}, "default/plain",
			"0/1 nodes are available: 1 node(s) had untolerated taint {key: virtualization}."},
		{"8.14.2.2.4 tolerations do not attract: the less loaded untainted node wins",
			[]Node{tainted, nd("node-2")}, []VM{running("busy", "node-1"), seedTolerationsVM}, seedTolerationsVM.Key, "node-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Place(tc.nodes, tc.vms)
			got := res.Node[tc.key]
			if got == "" {
				got = res.Unschedulable[tc.key]
			}
			if got != tc.want {
				t.Errorf("%s: got %q, want %q", tc.key, got, tc.want)
			}
		})
	}

	t.Run("8.14.2.2.3 required node affinity accepts either value", func(t *testing.T) {
		if diff := cmp.Diff([]string{"node-1", "node-2"}, fits(affinityNodes, seedNodeAffinityVM)); diff != "" {
			t.Error(diff)
		}
	})
	t.Run("8.14.2.2.4 a tolerating VM fits tainted and untainted nodes", func(t *testing.T) {
		if diff := cmp.Diff([]string{"node-1", "node-2"}, fits([]Node{tainted, nd("node-2")}, seedTolerationsVM)); diff != "" {
			t.Error(diff)
		}
	})
}
