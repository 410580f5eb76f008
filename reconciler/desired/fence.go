package desired

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/reconciler/placement"
)

// DefaultNodeLease is how long a node's status report counts as its word:
// past it, and with the out-of-service taint on its Node manifest, its VMs
// may start elsewhere.
const DefaultNodeLease = 5 * time.Minute

// Placed is where a VM was placed, with the hash of the rules that placed
// it (placement.VM.Hash): what the agent keeps of the last applied
// commit's placement.
type Placed struct {
	Node string `json:"node"`
	Hash string `json:"hash"`
}

// Reported is what a node's status report says of one VM.
type Reported struct {
	Node    string
	Running bool
	// Hash is the hash of the placement rules the node placed the VM by
	// (placement.VM.Hash); "" when the report does not say.
	Hash string
	// At is when the node wrote the report.
	At time.Time
}

// Reports are the other agents' status reports, as last read.
type Reports interface {
	// Where says which node reports the VM ("namespace/name") and what it
	// reports; ok is false when no node reports it.
	Where(vmKey string) (r Reported, ok bool)
	// NodeReportedAt is when node last wrote its report.
	NodeReportedAt(node string) (time.Time, bool)
}

// previous is the node a VM stays on unless its node is gone or evicts it.
//
// The recorded placement comes first: it is what every agent derived from
// the same commits, and it already names the new node of a VM that is
// moving, whose old node still reports it running until it stops it (the
// report first would keep the VM where it is for ever). A report is read
// only for a VM this agent has no record of (a fresh state directory): a
// VM runs where it runs. A changed hash means the VM's own rules changed:
// it is placed afresh.
func previous(v placement.VM, opt Options) string {
	hash := v.Hash()
	if rec, ok := opt.Previous[v.Key]; ok {
		if rec.Hash != hash {
			return ""
		}
		return rec.Node
	}
	if opt.Reports == nil {
		return ""
	}
	// Only by the same rules: a VM whose rules changed since its node
	// placed it is placed afresh, as with a record.
	if r, ok := opt.Reports.Where(v.Key); ok && r.Running && r.Hash == hash && fresh(r.At, opt) {
		return r.Node
	}
	return ""
}

func fresh(at time.Time, opt Options) bool {
	return now(opt).Sub(at) <= lease(opt)
}

func now(opt Options) time.Time {
	if opt.Now != nil {
		return opt.Now()
	}
	return time.Now()
}

func lease(opt Options) time.Duration {
	if opt.NodeLease > 0 {
		return opt.NodeLease
	}
	return DefaultNodeLease
}

// fence says why a VM placed on this node must not start yet, or "": this
// node is out of service, or another node reports it running and has not
// been fenced (its report older than the node lease and the out-of-service
// taint on its Node manifest, Kubernetes' signal that it is down).
//
// down holds the nodes whose Node manifest carries the out-of-service taint
// (outOfServiceNodes), read once per build rather than once per VM.
func fence(key string, down map[string]bool, opt Options) string {
	if down[opt.Node] {
		return fmt.Sprintf("node %s has the taint %s: nothing starts here", opt.Node, placement.TaintOutOfService)
	}
	if opt.Reports == nil {
		return ""
	}
	r, ok := opt.Reports.Where(key)
	node, at := r.Node, r.At
	if !ok || !r.Running || node == opt.Node {
		return ""
	}
	last := at
	if t, ok := opt.Reports.NodeReportedAt(node); ok && t.After(last) {
		last = t
	}
	stamp := at.UTC().Format(time.RFC3339)
	switch {
	case fresh(last, opt):
		return fmt.Sprintf("waiting for node %s to stop vm %s (reported running at %s)", node, key, stamp)
	case !down[node]:
		return fmt.Sprintf("waiting for node %s to stop vm %s (reported running at %s; its last report is older than the node lease %s: taint its Node %s to start the VM here)",
			node, key, stamp, lease(opt), placement.TaintOutOfService)
	}
	return ""
}

// outOfServiceNodes returns the nodes whose Node manifest carries the
// out-of-service taint (any effect).
func outOfServiceNodes(set *manifests.Set) map[string]bool {
	down := map[string]bool{}
	for _, o := range set.OfKind("Node") {
		n, ok := o.Value.(*corev1.Node)
		if !ok || !o.Valid {
			continue
		}
		for _, t := range n.Spec.Taints {
			if t.Key == placement.TaintOutOfService {
				down[n.Name] = true
			}
		}
	}
	return down
}
