package reconciler

import (
	"encoding/json"
	"fmt"

	"github.com/nodevirt/nodevirt/reconciler/desired"
)

const (
	bucketVMs  = "vms"
	bucketMeta = "meta"

	keyLastApplied   = "lastAppliedRevision"
	keyLastAttempted = "lastAttemptedRevision"

	recordVersion = 1
)

// record is what the agent remembers per domain across restarts. It is
// versioned so a newer agent can read an older state directory.
type record struct {
	Version int         `json:"version"`
	VM      *desired.VM `json:"vm"`
	// Started is set once nodevirt has started the domain (Once, RerunOnFailure).
	Started bool `json:"started,omitempty"`
}

type records struct{ kv KV }

func (s records) all() (map[string]*record, error) {
	out := map[string]*record{}
	err := s.kv.ForEach(bucketVMs, func(k string, v []byte) error {
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("state record %s: %w", k, err)
		}
		if r.Version > recordVersion {
			return fmt.Errorf("state record %s has version %d; this nodevirt reads up to %d", k, r.Version, recordVersion)
		}
		out[k] = &r
		return nil
	})
	return out, err
}

func (s records) get(name string) (*record, error) {
	b, err := s.kv.Get(bucketVMs, name)
	if err != nil || b == nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("state record %s: %w", name, err)
	}
	return &r, nil
}

func (s records) put(name string, r *record) error {
	r.Version = recordVersion
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode state record %s: %w", name, err)
	}
	return s.kv.Put(bucketVMs, name, b)
}

func (s records) delete(name string) error { return s.kv.Delete(bucketVMs, name) }

func (s records) meta(key string) (string, error) {
	b, err := s.kv.Get(bucketMeta, key)
	return string(b), err
}

func (s records) setMeta(key, val string) error { return s.kv.Put(bucketMeta, key, []byte(val)) }
