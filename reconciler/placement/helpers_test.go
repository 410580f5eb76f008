package placement

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// nd is a node with labels given as key, value pairs.
func nd(name string, kv ...string) Node {
	n := Node{Name: name, Labels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Labels[kv[i]] = kv[i+1]
	}
	return n
}

func withTaints(n Node, taints ...corev1.Taint) Node {
	n.Taints = taints
	return n
}

func taint(key, value string, effect corev1.TaintEffect) corev1.Taint {
	return corev1.Taint{Key: key, Value: value, Effect: effect}
}

func tol(key string, op corev1.TolerationOperator, value string, effect corev1.TaintEffect) corev1.Toleration {
	return corev1.Toleration{Key: key, Operator: op, Value: value, Effect: effect}
}

// vmOf is a VM "default/<name>" with labels given as key, value pairs.
func vmOf(name string, spec *kubevirtv1.VirtualMachineInstanceSpec, kv ...string) VM {
	v := VM{Key: "default/" + name, Namespace: "default", Spec: spec}
	if len(kv) > 0 {
		v.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Labels[kv[i]] = kv[i+1]
		}
	}
	return v
}

func req(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorRequirement {
	return corev1.NodeSelectorRequirement{Key: key, Operator: op, Values: values}
}

func term(reqs ...corev1.NodeSelectorRequirement) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchExpressions: reqs}
}

func fieldTerm(reqs ...corev1.NodeSelectorRequirement) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchFields: reqs}
}

// requiredNodes is a spec with required node affinity over terms.
func requiredNodes(terms ...corev1.NodeSelectorTerm) *kubevirtv1.VirtualMachineInstanceSpec {
	return &kubevirtv1.VirtualMachineInstanceSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
	}}}
}

func preferNodes(prefs ...corev1.PreferredSchedulingTerm) *kubevirtv1.VirtualMachineInstanceSpec {
	return &kubevirtv1.VirtualMachineInstanceSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: prefs,
	}}}
}

func pref(weight int32, reqs ...corev1.NodeSelectorRequirement) corev1.PreferredSchedulingTerm {
	return corev1.PreferredSchedulingTerm{Weight: weight, Preference: term(reqs...)}
}

// selects is a pod affinity term selecting matchLabels (key, value pairs)
// over topologyKey.
func selects(topologyKey string, kv ...string) corev1.PodAffinityTerm {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		sel.MatchLabels[kv[i]] = kv[i+1]
	}
	return corev1.PodAffinityTerm{LabelSelector: sel, TopologyKey: topologyKey}
}

func weighted(w int32, t corev1.PodAffinityTerm) corev1.WeightedPodAffinityTerm {
	return corev1.WeightedPodAffinityTerm{Weight: w, PodAffinityTerm: t}
}

func podAffinity(terms ...corev1.PodAffinityTerm) *kubevirtv1.VirtualMachineInstanceSpec {
	return &kubevirtv1.VirtualMachineInstanceSpec{Affinity: &corev1.Affinity{PodAffinity: &corev1.PodAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: terms,
	}}}
}

func podAntiAffinity(terms ...corev1.PodAffinityTerm) *kubevirtv1.VirtualMachineInstanceSpec {
	return &kubevirtv1.VirtualMachineInstanceSpec{Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: terms,
	}}}
}

func preferPods(terms ...corev1.WeightedPodAffinityTerm) *kubevirtv1.VirtualMachineInstanceSpec {
	return &kubevirtv1.VirtualMachineInstanceSpec{Affinity: &corev1.Affinity{PodAffinity: &corev1.PodAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: terms,
	}}}
}

func avoidPods(terms ...corev1.WeightedPodAffinityTerm) *kubevirtv1.VirtualMachineInstanceSpec {
	return &kubevirtv1.VirtualMachineInstanceSpec{Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: terms,
	}}}
}

func tolerating(tols ...corev1.Toleration) *kubevirtv1.VirtualMachineInstanceSpec {
	return &kubevirtv1.VirtualMachineInstanceSpec{Tolerations: tols}
}

func selector(kv ...string) *kubevirtv1.VirtualMachineInstanceSpec {
	s := &kubevirtv1.VirtualMachineInstanceSpec{NodeSelector: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.NodeSelector[kv[i]] = kv[i+1]
	}
	return s
}

// pinned is a VM held on one node by its hostname label.
func pinned(name, node string, kv ...string) VM {
	return vmOf(name, selector(LabelHostname, node), kv...)
}

// fits lists the nodes that pass every filter for v on their own: Place
// with that one node (and the given VMs placed before v).
func fits(nodes []Node, v VM) []string {
	var out []string
	for _, n := range nodes {
		if Place([]Node{n}, []VM{v}).Node[v.Key] != "" {
			out = append(out, n.Name)
		}
	}
	return out
}
