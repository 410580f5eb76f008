package placement

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// Well-known labels and taints.
const (
	// LabelHostname is set on every node to its name, as the kubelet does.
	LabelHostname = corev1.LabelHostname
	// LabelNamespaceName is set on every namespace to its name, as the API
	// server does; namespaceSelector terms can match it.
	LabelNamespaceName = corev1.LabelMetadataName
	// LabelCPUManager=true is required of a node by dedicatedCpuPlacement
	// (SPEC VM-8; the agent labels its node cpumanager=true when the
	// CPU-manager pool is on).
	LabelCPUManager = kubevirtv1.DeprecatedCPUManager
	// TaintNodeUnschedulable is the taint a VM must tolerate to land on a
	// node with spec.unschedulable (a cordoned node).
	TaintNodeUnschedulable = corev1.TaintNodeUnschedulable
	// TaintOutOfService is Kubernetes' fencing signal: the node is shut
	// down and its workloads may start elsewhere. Whatever its effect, a
	// VM that does not tolerate it leaves the node.
	TaintOutOfService = corev1.TaintNodeOutOfService
)

// Filter reasons, in kube-scheduler's wording. An untolerated taint is
// reported as fmt.Sprintf(ReasonTaint, key, value).
const (
	ReasonUnschedulable        = "node(s) were unschedulable"
	ReasonTaint                = "node(s) had untolerated taint {%s: %s}"
	ReasonNodeAffinity         = "node(s) didn't match Pod's node affinity/selector"
	ReasonPodAffinity          = "node(s) didn't match pod affinity rules"
	ReasonPodAntiAffinity      = "node(s) didn't match pod anti-affinity rules"
	ReasonExistingAntiAffinity = "node(s) didn't satisfy existing pods anti-affinity rules"
	// ReasonNoNodes is the whole message when the fleet has no node.
	ReasonNoNodes = "no nodes available to schedule pods"
	// ReasonDuplicate is the message for a VM key given more than once.
	ReasonDuplicate = "more than one VirtualMachine has this key"
)

// Node is one node as the repository and the local host describe it.
type Node struct {
	Name string
	// Labels are the Node manifest's metadata.labels. Place adds
	// kubernetes.io/hostname=<Name> (replacing any other value).
	Labels map[string]string
	// Taints are the Node manifest's spec.taints, in order: the first
	// untolerated NoSchedule/NoExecute taint is the one reported.
	Taints []corev1.Taint
	// Unschedulable is spec.unschedulable (cordoned): no new VM lands here
	// unless it tolerates node.kubernetes.io/unschedulable:NoSchedule.
	// VMs kept through VM.Previous stay.
	Unschedulable bool
}

// Namespace gives the labels of a namespace for namespaceSelector terms.
// A namespace that is not listed has only kubernetes.io/metadata.name.
type Namespace struct {
	Name   string
	Labels map[string]string
}

// VM is what placement needs of one VirtualMachine or VirtualMachineInstance.
type VM struct {
	Key       string // "namespace/name"
	Namespace string // defaults to Key's part before "/"
	// Labels are the template's metadata.labels, which KubeVirt puts on the
	// virt-launcher pod: what other VMs' pod (anti-)affinity terms select.
	Labels map[string]string
	// Spec supplies nodeSelector, affinity and tolerations;
	// domain.cpu.dedicatedCpuPlacement adds the node selector cpumanager=true.
	// Nil means no constraints.
	Spec *kubevirtv1.VirtualMachineInstanceSpec
	// Previous is the node the previous placement (the parent commit's)
	// gave this VM, or "" for a new VM. Affinity rules are
	// IgnoredDuringExecution (seed 8.14.2.1: they apply at scheduling
	// only), so the VM stays there as long as the node exists and has no
	// NoExecute taint the VM does not tolerate; changed labels, NoSchedule
	// taints, a cordon or other VMs' rules do not move it. The caller must
	// clear Previous when the VM's placement fields change, so that it is
	// placed afresh.
	Previous string
}

// Result is a placement: every VM key is in exactly one of the two maps.
type Result struct {
	Node map[string]string // VM key → node name
	// Unschedulable maps a VM key to kube-scheduler's message ("0/3 nodes
	// are available: …"), or, for an invalid rule, to the field path under
	// the VMI spec and the error, e.g. "affinity.nodeAffinity.…
	// .matchExpressions[0].values[0]: Invalid value: …".
	Unschedulable map[string]string
}

// On returns the keys of the VMs placed on node, sorted.
func (r Result) On(node string) []string {
	var keys []string
	for k, n := range r.Node {
		if n == node {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// FromNode reads a Node manifest.
func FromNode(n *corev1.Node) Node {
	return Node{Name: n.Name, Labels: n.Labels, Taints: n.Spec.Taints, Unschedulable: n.Spec.Unschedulable}
}

// FromVirtualMachine reads a VirtualMachine: its template's labels and spec.
func FromVirtualMachine(vm *kubevirtv1.VirtualMachine) VM {
	v := VM{Key: vm.Namespace + "/" + vm.Name, Namespace: vm.Namespace}
	if t := vm.Spec.Template; t != nil {
		v.Labels, v.Spec = t.ObjectMeta.Labels, &t.Spec
	}
	return v
}

// FromInstance reads a VirtualMachineInstance: its own labels and spec.
func FromInstance(vmi *kubevirtv1.VirtualMachineInstance) VM {
	return VM{Key: vmi.Namespace + "/" + vmi.Name, Namespace: vmi.Namespace, Labels: vmi.Labels, Spec: &vmi.Spec}
}

// NodeSelector is the node selector the VM's pod would get: spec.nodeSelector
// plus what KubeVirt derives from the domain (cpumanager=true for
// dedicatedCpuPlacement). KubeVirt's CPU model and feature selectors are not
// derived: Node manifests do not carry node-labeller labels, and the agent
// checks the real CPU before start (VM-9).
func NodeSelector(spec *kubevirtv1.VirtualMachineInstanceSpec) map[string]string {
	if spec == nil {
		return nil
	}
	sel := maps.Clone(spec.NodeSelector)
	if cpu := spec.Domain.CPU; cpu != nil && cpu.DedicatedCPUPlacement {
		if sel == nil {
			sel = map[string]string{}
		}
		sel[LabelCPUManager] = "true"
	}
	return sel
}

// Place assigns each VM to one node, or reports why it cannot run.
//
// Order: nodes by name; first every VM whose Previous node still takes it
// (kept, without filters); then the other VMs that had a Previous node, by
// key; then new VMs by key. Each VM is placed against the VMs placed before
// it (they are the "existing pods" of pod affinity) and is never moved by a
// later one. This greedy order can leave a VM unschedulable where a solver
// that moved an earlier VM would fit both; such a VM gets the scheduler's
// message and the operator resolves it in the repository.
//
// Filters, in kube-scheduler's plugin order (a node counts once, under the
// first filter it fails): spec.unschedulable; NoSchedule/NoExecute taints;
// nodeSelector and required node affinity; required pod affinity, pod
// anti-affinity, and placed VMs' required anti-affinity against this VM.
// Scores of the nodes left, normalized to 0–100 and weighted like the
// default scheduler profile: untolerated PreferNoSchedule taints (fewer is
// better, ×3), preferred node affinity (×2), preferred pod affinity and
// anti-affinity in both directions (×2). Ties go to the node with fewer VMs,
// then to the lexically first name. All arithmetic is on integers.
//
// Node names, VM keys and namespace names must be unique. A repeated node or
// namespace name is ignored entirely and a repeated VM key is reported
// Unschedulable, so that input order never matters.
func Place(nodes []Node, vms []VM, namespaces ...Namespace) Result {
	// Sized once: at ten thousand VMs, growing these maps step by step was
	// a third of the placement's time.
	res := Result{Node: make(map[string]string, len(vms)), Unschedulable: map[string]string{}}
	p := newPlacer(nodes, namespaces)

	all := make([]*vm, 0, len(vms))
	count := make(map[string]int, len(vms))
	for _, in := range vms {
		count[in.Key]++
	}
	for _, in := range vms {
		if count[in.Key] > 1 {
			res.Unschedulable[in.Key] = ReasonDuplicate
			continue
		}
		all = append(all, p.compile(in))
	}
	sort.Slice(all, func(i, j int) bool { return all[i].key < all[j].key })

	var rest []*vm
	for _, v := range all {
		if v.err != nil {
			res.Unschedulable[v.key] = v.err.Error()
			continue
		}
		if n := p.keeps(v); n != nil {
			p.bind(v, n)
			res.Node[v.key] = n.name
			continue
		}
		rest = append(rest, v)
	}
	// Displaced VMs first: they were running, new VMs were not.
	sort.SliceStable(rest, func(i, j int) bool { return rest[i].previous != "" && rest[j].previous == "" })
	for _, v := range rest {
		n, why := p.choose(v)
		if n == nil {
			res.Unschedulable[v.key] = why
			continue
		}
		p.bind(v, n)
		res.Node[v.key] = n.name
	}
	return res
}

// node is a Node with its effective labels and the VMs placed on it.
type node struct {
	name   string
	labels labels.Set
	// obj carries name and labels for the node-affinity matcher.
	obj           *corev1.Node
	taints        []corev1.Taint
	unschedulable bool
	vms           int
}

// placed is one VM bound to a node, in binding order.
type placed struct {
	vm   *vm
	node *node
}

type placer struct {
	nodes  []*node // by name
	byName map[string]*node
	nsLbls map[string]labels.Set
	placed []placed
	// withTerms are the placed VMs with inter-pod terms of their own, in
	// binding order: the only ones that can count for a VM without terms,
	// so placing many such VMs stays linear.
	withTerms []placed
}

func newPlacer(nodes []Node, namespaces []Namespace) *placer {
	p := &placer{byName: map[string]*node{}, nsLbls: map[string]labels.Set{}}
	count := map[string]int{}
	for _, n := range nodes {
		count[n.Name]++
	}
	for _, n := range nodes {
		if count[n.Name] > 1 {
			continue
		}
		l := labels.Set(maps.Clone(n.Labels))
		if l == nil {
			l = labels.Set{}
		}
		l[LabelHostname] = n.Name
		nd := &node{name: n.Name, labels: l, taints: n.Taints, unschedulable: n.Unschedulable,
			obj: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: l}}}
		p.nodes = append(p.nodes, nd)
		p.byName[n.Name] = nd
	}
	slices.SortFunc(p.nodes, func(a, b *node) int { return strings.Compare(a.name, b.name) })

	clear(count)
	for _, ns := range namespaces {
		count[ns.Name]++
	}
	for _, ns := range namespaces {
		if count[ns.Name] == 1 {
			p.nsLbls[ns.Name] = labels.Set(ns.Labels)
		}
	}
	return p
}

// namespaceLabels are a namespace's labels plus kubernetes.io/metadata.name.
func (p *placer) namespaceLabels(ns string) labels.Set {
	l := labels.Set(maps.Clone(p.nsLbls[ns]))
	if l == nil {
		l = labels.Set{}
	}
	l[LabelNamespaceName] = ns
	return l
}

func (p *placer) bind(v *vm, n *node) {
	n.vms++
	p.placed = append(p.placed, placed{v, n})
	if v.hasPodTerms() {
		p.withTerms = append(p.withTerms, placed{v, n})
	}
}

// against returns the placed VMs that can count for v's inter-pod filter
// and score: all of them when v has terms of its own, else only those
// with terms (a term of v's selects them; theirs select v).
func (p *placer) against(v *vm) []placed {
	if v.hasPodTerms() {
		return p.placed
	}
	return p.withTerms
}

// keeps returns the VM's previous node if it may stay there: the node still
// exists and every NoExecute taint on it, and the out-of-service taint
// whatever its effect, is tolerated. tolerationSeconds is
// not counted down here; timing an eviction is the agent's job.
func (p *placer) keeps(v *vm) *node {
	n := p.byName[v.previous]
	if n == nil {
		return nil
	}
	for i := range n.taints {
		evicts := n.taints[i].Effect == corev1.TaintEffectNoExecute || n.taints[i].Key == TaintOutOfService
		if evicts && !tolerated(v.tolerations, &n.taints[i]) {
			return nil
		}
	}
	return n
}

// choose filters and scores the nodes for v; with no feasible node it returns
// the scheduler's message instead.
func (p *placer) choose(v *vm) (*node, string) {
	if len(p.nodes) == 0 {
		return nil, ReasonNoNodes
	}
	st := p.interPodState(v)
	var feasible []*node
	reasons := map[string]int{}
	for _, n := range p.nodes {
		if why := p.filter(v, n, st); why != "" {
			reasons[why]++
			continue
		}
		feasible = append(feasible, n)
	}
	if len(feasible) == 0 {
		return nil, fitError(len(p.nodes), reasons)
	}
	scores := p.score(v, feasible)
	best := 0
	for i := 1; i < len(feasible); i++ {
		switch {
		case scores[i] > scores[best]:
			best = i
		case scores[i] == scores[best] && feasible[i].vms < feasible[best].vms:
			best = i
		}
	}
	return feasible[best], ""
}

// fitError is kube-scheduler's FitError text: the reasons with their node
// counts, sorted as strings, e.g. "0/3 nodes are available: 1 node(s) didn't
// match Pod's node affinity/selector, 2 node(s) had untolerated taint {k: v}."
func fitError(total int, reasons map[string]int) string {
	parts := make([]string, 0, len(reasons))
	for r, n := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	return fmt.Sprintf("0/%d nodes are available: %s.", total, strings.Join(parts, ", "))
}
