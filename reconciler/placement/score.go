package placement

import corev1 "k8s.io/api/core/v1"

// Score scale and plugin weights of kube-scheduler's default profile.
const (
	maxNodeScore           = 100
	weightTaintToleration  = 3
	weightNodeAffinity     = 2
	weightInterPodAffinity = 2
	// hardPodAffinityWeight is what a placed VM's *required* affinity term
	// that selects the new VM adds to its domain's score (the scheduler's
	// default hardPodAffinityWeight).
	hardPodAffinityWeight = 1
)

// score returns the weighted total of each feasible node (same order).
func (p *placer) score(v *vm, feasible []*node) []int64 {
	taint := make([]int64, len(feasible))
	nodeAff := make([]int64, len(feasible))
	podAff := make([]int64, len(feasible))
	topo := p.topologyScore(v)
	for i, n := range feasible {
		for j := range n.taints {
			if t := &n.taints[j]; t.Effect == corev1.TaintEffectPreferNoSchedule && !tolerated(v.tolerations, t) {
				taint[i]++
			}
		}
		if v.preferred != nil {
			nodeAff[i] = v.preferred.Score(n.obj)
		}
		for key, byValue := range topo {
			if val, ok := n.labels[key]; ok {
				podAff[i] += byValue[val]
			}
		}
	}
	normalize(taint, true)
	normalize(nodeAff, false)
	if len(topo) > 0 {
		normalizeMinMax(podAff)
	}
	total := make([]int64, len(feasible))
	for i := range total {
		total[i] = weightTaintToleration*taint[i] + weightNodeAffinity*nodeAff[i] + weightInterPodAffinity*podAff[i]
	}
	return total
}

// topologyScore sums, per topology domain, the preferred pod (anti-)affinity
// weights between v and the placed VMs in that domain, both ways: v's
// preferred terms that select a placed VM, and a placed VM's preferred terms
// (and, with weight 1, its required affinity terms) that select v. Anti
// terms subtract.
func (p *placer) topologyScore(v *vm) map[string]map[string]int64 {
	topo := map[string]map[string]int64{}
	add := func(t podTerm, weight int64, other *vm, n *node) {
		val, ok := n.labels[t.topologyKey]
		if !ok || !t.matches(other) {
			return
		}
		if topo[t.topologyKey] == nil {
			topo[t.topologyKey] = map[string]int64{}
		}
		topo[t.topologyKey][val] += weight
	}
	for _, e := range p.against(v) {
		for _, t := range v.prefAffinity {
			add(t, t.weight, e.vm, e.node)
		}
		for _, t := range v.prefAntiAffinity {
			add(t, -t.weight, e.vm, e.node)
		}
		for _, t := range e.vm.affinity {
			add(t, hardPodAffinityWeight, v, e.node)
		}
		for _, t := range e.vm.prefAffinity {
			add(t, t.weight, v, e.node)
		}
		for _, t := range e.vm.prefAntiAffinity {
			add(t, -t.weight, v, e.node)
		}
	}
	return topo
}

// normalize scales scores to 0–maxNodeScore by the highest one (the
// scheduler's DefaultNormalizeScore); reverse makes fewer better.
func normalize(scores []int64, reverse bool) {
	var highest int64
	for _, s := range scores {
		highest = max(highest, s)
	}
	for i, s := range scores {
		if highest == 0 {
			s = 0
		} else {
			s = maxNodeScore * s / highest
		}
		if reverse {
			s = maxNodeScore - s
		}
		scores[i] = s
	}
}

// normalizeMinMax maps [min(0, lowest), max(0, highest)] onto 0–maxNodeScore
// (InterPodAffinity's NormalizeScore, in integers).
func normalizeMinMax(scores []int64) {
	var lo, hi int64
	for _, s := range scores {
		lo, hi = min(lo, s), max(hi, s)
	}
	for i, s := range scores {
		if hi > lo {
			scores[i] = maxNodeScore * (s - lo) / (hi - lo)
		} else {
			scores[i] = 0
		}
	}
}
