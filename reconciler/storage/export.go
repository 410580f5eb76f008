package storage

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
)

// ErrNotExportable is a volume this node holds but may not hand to the
// node that asks for it.
var ErrNotExportable = errors.New("not exportable")

// Export is the file of PersistentVolume pv's data for node (with labels,
// as its report gives them) to pull: only a volume this node holds whose
// nodeAffinity, in the last planned state, selects node, and whose disk no
// running domain uses.
func (m *Manager) Export(pv, node string, labels map[string]string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.desired == nil {
		return "", fmt.Errorf("%w: nothing planned yet", ErrNotExportable)
	}
	v := m.volumeRecs[pv]
	if v == nil || v.Dynamic {
		return "", fmt.Errorf("this node holds no data of PersistentVolume %s: %w", pv, os.ErrNotExist)
	}
	away, ok := m.desired.Away[pv]
	if !ok {
		return "", fmt.Errorf("%w: PersistentVolume %s is placed on this node", ErrNotExportable, pv)
	}
	// The kubelet's own label, which a report may leave out.
	labels = maps.Clone(labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if _, ok := labels[corev1.LabelHostname]; !ok {
		labels[corev1.LabelHostname] = node
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: labels}}
	if na := away.NodeAffinity; na == nil || na.Required == nil {
		return "", fmt.Errorf("%w: PersistentVolume %s has no required nodeAffinity", ErrNotExportable, pv)
	} else if sel, err := corev1helpers.MatchNodeSelectorTerms(n, na.Required); err != nil || !sel {
		return "", fmt.Errorf("%w: the nodeAffinity of PersistentVolume %s does not select node %s", ErrNotExportable, pv, node)
	}
	file := dataOf(v)
	// Without a way to tell, the disk counts as used: a running VM's
	// disk copied is a torn copy.
	if m.cfg.Running == nil || m.cfg.Running(file) || (v.Device != "" && m.cfg.Running(v.Device)) {
		return "", fmt.Errorf("%w: a running domain here still uses PersistentVolume %s", ErrNotExportable, pv)
	}
	return file, nil
}

// movedFrom is the node holding the data of b's static volume when it moved
// here; "" for a dynamic volume, a fresh one, or without MovedFrom.
func (m *Manager) movedFrom(b *Binding) (string, error) {
	if m.cfg.MovedFrom == nil || b.Dynamic || b.Volume == "" {
		return "", nil
	}
	return m.cfg.MovedFrom(b.Volume)
}

// vmsOf are the VMs that used claim key here, as its record last saw them
// (m.mu held).
func (m *Manager) vmsOf(key string) []string {
	r := m.claimRecs[key]
	if r == nil || r.Claim == nil {
		return nil
	}
	vms := slices.Clone(r.Claim.Consumers)
	if r.Owner != "" && !slices.Contains(vms, r.Owner) {
		vms = append(vms, r.Owner)
	}
	return vms
}
