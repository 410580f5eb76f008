package desired

import (
	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/reconciler/placement"
)

// place runs the fleet-wide placement every agent computes alike (F-1): the
// Node manifests of the repository, plus this node when none describes it
// (a single host needs no Node manifest).
func place(set *manifests.Set, opt Options) placement.Result {
	var nodes []placement.Node
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
		}
		nodes = append(nodes, pn)
	}
	if !self {
		nodes = append(nodes, placement.Node{Name: opt.Node, Labels: merge(map[string]string{LabelHostname: opt.Node}, opt.NodeLabels)})
	}
	var vms []placement.VM
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
		vms = append(vms, pv)
	}
	var namespaces []placement.Namespace
	for _, o := range set.OfKind("Namespace") {
		if ns, ok := o.Value.(*corev1.Namespace); ok {
			namespaces = append(namespaces, placement.Namespace{Name: ns.Name, Labels: ns.Labels})
		}
	}
	return placement.Place(nodes, vms, namespaces...)
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
