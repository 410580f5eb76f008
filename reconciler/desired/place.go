package desired

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/reconciler/placement"
)

// place runs the fleet-wide placement every agent computes alike (F-1): the
// Node manifests of the repository, plus this node when none describes it
// (a single host needs no Node manifest). It also returns this node as
// placement saw it, and the hash of each VM's placement rules by key.
//
// A VM keeps the node it was placed on (see previous) while its rules are
// unchanged: adding or changing another VM never moves it.
func place(set *manifests.Set, opt Options) (placement.Result, placement.Node, map[string]string) {
	var nodes []placement.Node
	var me placement.Node
	self := false
	for _, o := range set.OfKind("Node") {
		n, ok := o.Value.(*corev1.Node)
		if !ok || !o.Valid {
			continue
		}
		pn := placement.FromNode(n)
		if pn.Name == opt.Node {
			self = true
			pn.Labels = merge(pn.Labels, opt.NodeLabels)
			me = pn
		}
		nodes = append(nodes, pn)
	}
	if !self {
		me = placement.Node{Name: opt.Node, Labels: merge(map[string]string{LabelHostname: opt.Node}, opt.NodeLabels)}
		nodes = append(nodes, me)
	}
	var vms []placement.VM
	hashes := map[string]string{}
	for _, o := range set.Objects {
		if !o.Valid {
			continue
		}
		var pv placement.VM
		switch v := o.Value.(type) {
		case *kubevirtv1.VirtualMachine:
			if v.Spec.Template == nil {
				continue
			}
			pv = placement.FromVirtualMachine(v)
		case *kubevirtv1.VirtualMachineInstance:
			pv = placement.FromInstance(v)
		default:
			continue
		}
		// The manifest may leave the namespace to the default: the set's
		// reference has it resolved, the decoded object does not.
		pv.Key, pv.Namespace = o.Ref.Namespace+"/"+o.Ref.Name, o.Ref.Namespace
		pv.Previous = previous(pv, opt)
		hashes[pv.Key] = pv.Hash()
		vms = append(vms, pv)
	}
	var namespaces []placement.Namespace
	for _, o := range set.OfKind("Namespace") {
		if ns, ok := o.Value.(*corev1.Namespace); ok {
			namespaces = append(namespaces, placement.Namespace{Name: ns.Name, Labels: ns.Labels})
		}
	}
	return placement.Place(nodes, vms, namespaces...), me, hashes
}

// notHere names what this node lacks for spec among the labels the VM's
// node selector asks for (spec.nodeSelector, and cpumanager=true that
// dedicated CPUs add), so "didn't match Pod's node affinity/selector" says
// which label; "" when the node selector matches.
func notHere(spec *kubevirtv1.VirtualMachineInstanceSpec, self placement.Node) string {
	sel := placement.NodeSelector(spec)
	keys := make([]string, 0, len(sel))
	for k := range sel {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var why []string
	for _, k := range keys {
		have, ok := self.Labels[k]
		switch {
		case ok && have == sel[k]:
		case k == placement.LabelCPUManager:
			why = append(why, ReasonNoCPUPool)
		case ok:
			why = append(why, fmt.Sprintf("nodeSelector %s=%s, but the node has %s=%s", k, sel[k], k, have))
		default:
			why = append(why, fmt.Sprintf("nodeSelector %s=%s, but the node has no label %s", k, sel[k], k))
		}
	}
	return strings.Join(why, "; ")
}

func merge(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
