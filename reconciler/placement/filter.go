package placement

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// topologyPair is one topology domain: the nodes whose label key has value.
type topologyPair struct{ key, value string }

// interPod is kube-scheduler's InterPodAffinity pre-filter state for one VM,
// counted over the VMs placed so far.
type interPod struct {
	// affinity counts, per domain, placed VMs that match all of the VM's
	// required affinity terms.
	affinity map[topologyPair]int
	// anti counts, per domain, placed VMs that match one of the VM's
	// required anti-affinity terms.
	anti map[topologyPair]int
	// existingAnti counts, per domain, placed VMs' required anti-affinity
	// terms that match the VM (the rule is symmetric).
	existingAnti map[topologyPair]int
}

func (p *placer) interPodState(v *vm) interPod {
	st := interPod{affinity: map[topologyPair]int{}, anti: map[topologyPair]int{}, existingAnti: map[topologyPair]int{}}
	for _, e := range p.against(v) {
		if matchesAll(v.affinity, e.vm) {
			for _, t := range v.affinity {
				if val, ok := e.node.labels[t.topologyKey]; ok {
					st.affinity[topologyPair{t.topologyKey, val}]++
				}
			}
		}
		for _, t := range v.antiAffinity {
			if val, ok := e.node.labels[t.topologyKey]; ok && t.matches(e.vm) {
				st.anti[topologyPair{t.topologyKey, val}]++
			}
		}
		for _, t := range e.vm.antiAffinity {
			if val, ok := e.node.labels[t.topologyKey]; ok && t.matches(v) {
				st.existingAnti[topologyPair{t.topologyKey, val}]++
			}
		}
	}
	return st
}

// matchesAll reports whether o matches every term; false without terms.
func matchesAll(terms []podTerm, o *vm) bool {
	if len(terms) == 0 {
		return false
	}
	for _, t := range terms {
		if !t.matches(o) {
			return false
		}
	}
	return true
}

// filter returns why v cannot go to n, or "" if it can. The checks run in
// the default scheduler's plugin order and the first failure is the reason.
func (p *placer) filter(v *vm, n *node, st interPod) string {
	// NodeUnschedulable.
	if n.unschedulable && !tolerated(v.tolerations, &corev1.Taint{Key: TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}) {
		return ReasonUnschedulable
	}
	// TaintToleration: PreferNoSchedule only scores.
	for i := range n.taints {
		t := &n.taints[i]
		if (t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute) && !tolerated(v.tolerations, t) {
			return fmt.Sprintf(ReasonTaint, t.Key, t.Value)
		}
	}
	// NodeAffinity: nodeSelector AND (required terms ORed).
	if !nodeAffinityFits(v, n) {
		return ReasonNodeAffinity
	}
	// InterPodAffinity.
	if !podAffinityFits(v, n, st) {
		return ReasonPodAffinity
	}
	if len(st.anti) > 0 {
		for _, t := range v.antiAffinity {
			if val, ok := n.labels[t.topologyKey]; ok && st.anti[topologyPair{t.topologyKey, val}] > 0 {
				return ReasonPodAntiAffinity
			}
		}
	}
	if len(st.existingAnti) > 0 {
		for k, val := range n.labels {
			if st.existingAnti[topologyPair{k, val}] > 0 {
				return ReasonExistingAntiAffinity
			}
		}
	}
	return ""
}

func tolerated(tols []corev1.Toleration, t *corev1.Taint) bool {
	for i := range tols {
		if tols[i].ToleratesTaint(t) {
			return true
		}
	}
	return false
}

func nodeAffinityFits(v *vm, n *node) bool {
	// Parse errors refused the VM at compile time already.
	ok, _ := v.nodeAffinity.Match(n.obj)
	return ok
}

// podAffinityFits: n must carry every term's topology key, and each term's
// domain of n must hold a placed VM that matches all terms. Exception (the
// "first pod" rule): when no placed VM matches, a VM that matches its own
// terms may start the group anywhere that has the keys.
func podAffinityFits(v *vm, n *node, st interPod) bool {
	exist := true
	for _, t := range v.affinity {
		val, ok := n.labels[t.topologyKey]
		if !ok {
			return false
		}
		if st.affinity[topologyPair{t.topologyKey, val}] <= 0 {
			exist = false
		}
	}
	return exist || (len(st.affinity) == 0 && matchesAll(v.affinity, v))
}
