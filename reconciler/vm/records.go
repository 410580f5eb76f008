package vm

import (
	"encoding/json"
	"fmt"
	"time"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/reconciler/desired"
)

const (
	bucketVMs = "vms"
	// bucketStarted is apart from the records so a plan reads a few bytes per
	// domain instead of decoding every record with its full domain XML.
	bucketStarted = "started"
	bucketMeta    = "meta"
	// bucketCPUs holds dedicated-CPU allocations: domain → desired.Pinning.
	bucketCPUs = "cpus"
	// bucketRunRequests holds the starts and stops asked for by hand:
	// domain → RunRequest.
	bucketRunRequests = "runrequests"

	keyLastApplied   = "lastAppliedRevision"
	keyLastAttempted = "lastAttemptedRevision"

	recordVersion = 1
)

// record is what the agent remembers per domain across restarts. It is
// versioned so a newer agent can read an older state directory.
type record struct {
	Version int         `json:"version"`
	VM      *desired.VM `json:"vm"`
}

type records struct{ kv KV }

// started returns the domains nodevirt has started at least once (runStrategy
// Once and RerunOnFailure depend on that history).
func (s records) started() (map[string]bool, error) { return s.keys(bucketStarted) }

func (s records) markStarted(name string) error { return s.kv.Put(bucketStarted, name, []byte{1}) }

// RunRequest is a start or stop asked for by hand (virtctl start or stop).
// It outlives agent restarts and overrides the VM's runStrategy until the
// opposite action clears it, as the runStrategy KubeVirt's start and stop
// patch does; status shows it as KubeVirt's status.stateChangeRequests.
type RunRequest struct {
	// Action is kubevirtv1.StartRequest or kubevirtv1.StopRequest.
	Action kubevirtv1.StateChangeRequestAction `json:"action"`
	Time   time.Time                           `json:"time"`
}

// runRequests returns every recorded request by domain.
func (s records) runRequests() (map[string]RunRequest, error) {
	out := map[string]RunRequest{}
	err := s.kv.ForEach(bucketRunRequests, func(k string, v []byte) error {
		var r RunRequest
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("run request of %s: %w", k, err)
		}
		out[k] = r
		return nil
	})
	return out, err
}

func (s records) runRequest(name string) (RunRequest, error) {
	b, err := s.kv.Get(bucketRunRequests, name)
	if err != nil || b == nil {
		return RunRequest{}, err
	}
	var r RunRequest
	if err := json.Unmarshal(b, &r); err != nil {
		return RunRequest{}, fmt.Errorf("run request of %s: %w", name, err)
	}
	return r, nil
}

func (s records) setRunRequest(name string, r RunRequest) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.kv.Put(bucketRunRequests, name, b)
}

func (s records) clearRunRequest(name string) error { return s.kv.Delete(bucketRunRequests, name) }

func (s records) get(name string) (*record, error) {
	b, err := s.kv.Get(bucketVMs, name)
	if err != nil || b == nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("state record %s: %w", name, err)
	}
	if r.Version > recordVersion {
		return nil, fmt.Errorf("state record %s has version %d; this nodevirt reads up to %d", name, r.Version, recordVersion)
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

func (s records) delete(name string) error {
	if err := s.kv.Delete(bucketStarted, name); err != nil {
		return err
	}
	if err := s.kv.Delete(bucketCPUs, name); err != nil {
		return err
	}
	if err := s.kv.Delete(bucketRunRequests, name); err != nil {
		return err
	}
	if err := s.kv.Delete(bucketDevices, name); err != nil {
		return err
	}
	return s.kv.Delete(bucketVMs, name)
}

func (s records) meta(key string) (string, error) {
	b, err := s.kv.Get(bucketMeta, key)
	return string(b), err
}

func (s records) setMeta(key, val string) error { return s.kv.Put(bucketMeta, key, []byte(val)) }

// inventory lists the domains this agent has defined and not yet deleted.
func (s records) inventory() (map[string]bool, error) { return s.keys(bucketVMs) }

// keyLister is a KV that can list a bucket's keys without copying its values
// (a VM record is kilobytes; every plan asks only which exist).
type keyLister interface {
	Keys(bucket string) ([]string, error)
}

// keys returns the set of keys of bucket.
func (s records) keys(bucket string) (map[string]bool, error) {
	if kl, ok := s.kv.(keyLister); ok {
		keys, err := kl.Keys(bucket)
		if err != nil {
			return nil, err
		}
		out := make(map[string]bool, len(keys))
		for _, k := range keys {
			out[k] = true
		}
		return out, nil
	}
	out := map[string]bool{}
	err := s.kv.ForEach(bucket, func(k string, _ []byte) error {
		out[k] = true
		return nil
	})
	return out, err
}

// Decoders check the records of the buckets this package owns, for
// `nodevirt state check`.
func Decoders() map[string]func(key string, val []byte) error {
	isJSON := func(k string, v []byte) error {
		if !json.Valid(v) {
			return fmt.Errorf("state record %s is not JSON", k)
		}
		return nil
	}
	return map[string]func(string, []byte) error{
		bucketVMs: func(k string, v []byte) error {
			_, err := records{kv: oneRecord{k, v}}.get(k)
			return err
		},
		bucketCPUs:        isJSON,
		bucketDevices:     isJSON,
		bucketRunRequests: isJSON,
	}
}

// oneRecord is a KV holding one value, to decode it as records.get does.
type oneRecord struct {
	key string
	val []byte
}

func (o oneRecord) Get(_, key string) ([]byte, error) {
	if key == o.key {
		return o.val, nil
	}
	return nil, nil
}
func (oneRecord) Put(string, string, []byte) error { return nil }
func (oneRecord) Delete(string, string) error      { return nil }
func (oneRecord) ForEach(string, func(string, []byte) error) error {
	return nil
}
