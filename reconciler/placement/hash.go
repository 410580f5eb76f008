package placement

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
)

// Hash digests the fields of the VM that decide its node: the node selector
// (dedicated CPUs included), affinity and tolerations. A caller keeps it
// with the VM's node and clears Previous when it changes, so that a VM is
// placed afresh when its own rules change and never because another
// object changed. Its labels are left out: they steer other VMs, not it.
func (v VM) Hash() string {
	var in struct {
		Selector    map[string]string   `json:"s,omitempty"`
		Affinity    *corev1.Affinity    `json:"a,omitempty"`
		Tolerations []corev1.Toleration `json:"t,omitempty"`
	}
	if v.Spec != nil {
		in.Selector, in.Affinity, in.Tolerations = NodeSelector(v.Spec), v.Spec.Affinity, v.Spec.Tolerations
	}
	// encoding/json sorts map keys: equal rules give equal bytes.
	b, err := json.Marshal(in)
	if err != nil {
		// Decoded Kubernetes types always marshal; a failure places afresh.
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}
