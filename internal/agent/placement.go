package agent

import (
	"encoding/json"
	"fmt"
	"maps"

	"github.com/nodevirt/nodevirt/reconciler/desired"
)

// ReasonFenced is the Ready condition's reason of a VM placed on this node
// whose start waits for another node to stop it (or for this node to come
// back into service).
const ReasonFenced = "Fenced"

// The placement of the last applied revision: one JSON document, the map
// of VM key to node and rules hash.
const (
	bucketPlacement = "placement"
	keyPlacement    = "applied"
)

// placed reads the placement recorded by the last apply; nil when none was
// recorded or the agent keeps no state.
func (a *Agent) placed() (map[string]desired.Placed, error) {
	if a.state == nil {
		return nil, nil
	}
	b, err := a.state.Get(bucketPlacement, keyPlacement)
	if err != nil || b == nil {
		return nil, err
	}
	var out map[string]desired.Placed
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode the recorded placement: %w", err)
	}
	return out, nil
}

// recordPlacement keeps st's placement as the one the next revision keeps
// VMs by.
func (a *Agent) recordPlacement(st *desired.State) error {
	if a.state == nil || st == nil || st.Placement == nil {
		return nil
	}
	old, err := a.placed()
	if err == nil && maps.Equal(old, st.Placement) {
		return nil
	}
	b, err := json.Marshal(st.Placement)
	if err != nil {
		return fmt.Errorf("encode the placement: %w", err)
	}
	if err := a.state.Put(bucketPlacement, keyPlacement, b); err != nil {
		return fmt.Errorf("record the placement: %w", err)
	}
	return nil
}

// renderConfig is the agent's configuration with the recorded placement,
// which keeps VMs where they are. A record that cannot be read places
// afresh, which is what a new node does, and says so.
func (a *Agent) renderConfig() Config {
	cfg := a.cfg
	prev, err := a.placed()
	if err != nil {
		a.log.Warn("placing VMs afresh: the recorded placement cannot be read", "err", err)
	}
	cfg.Desired.Previous = prev
	return cfg
}
