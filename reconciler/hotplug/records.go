package hotplug

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// bucket holds the hot-plugged volumes: domain name → []Record (JSON).
const bucket = "hotplug"

// KV is the embedded state store (bbolt in production).
type KV interface {
	Get(bucket, key string) ([]byte, error)
	Put(bucket, key string, val []byte) error
	Delete(bucket, key string) error
	ForEach(bucket string, fn func(key string, val []byte) error) error
}

// Record is one volume attached to (or, Detached, taken from) a running VM
// by hand.
type Record struct {
	// Volume is the disk's and volume's name; the disk's alias is "ua-"+Volume.
	Volume string `json:"volume"`
	// Source is "dataVolume" or "persistentVolumeClaim", Claim its name.
	Source string `json:"source"`
	Claim  string `json:"claim"`
	Serial string `json:"serial,omitempty"`
	// DiskType is "disk" or "lun"; Cache is the disk's cache mode or "".
	DiskType string `json:"diskType"`
	Cache    string `json:"cache,omitempty"`
	// Target is the device the guest sees ("sdb").
	Target string `json:"target,omitempty"`
	// Persist keeps the volume across boots until the source holds it.
	Persist bool `json:"persist,omitempty"`
	// Detached: removed by hand from a VM whose source declares it; kept
	// detached until the source drops it.
	Detached bool      `json:"detached,omitempty"`
	Time     time.Time `json:"time"`
	// Boot is the libvirt domain id of the boot it was attached in: another
	// id is another boot.
	Boot int `json:"boot"`
}

type store struct{ kv KV }

func (s store) get(domain string) ([]Record, error) {
	b, err := s.kv.Get(bucket, domain)
	if err != nil || b == nil {
		return nil, err
	}
	var recs []Record
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("hotplug record of %s: %w", domain, err)
	}
	return recs, nil
}

func (s store) put(domain string, recs []Record) error {
	if len(recs) == 0 {
		return s.kv.Delete(bucket, domain)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Volume < recs[j].Volume })
	b, err := json.Marshal(recs)
	if err != nil {
		return err
	}
	return s.kv.Put(bucket, domain, b)
}

func (s store) all() (map[string][]Record, error) {
	out := map[string][]Record{}
	err := s.kv.ForEach(bucket, func(k string, v []byte) error {
		var recs []Record
		if err := json.Unmarshal(v, &recs); err != nil {
			return fmt.Errorf("hotplug record of %s: %w", k, err)
		}
		out[k] = recs
		return nil
	})
	return out, err
}

// Decoders check the records of the bucket this package owns, for
// `nodevirt state check`.
func Decoders() map[string]func(key string, val []byte) error {
	return map[string]func(string, []byte) error{
		bucket: func(k string, v []byte) error {
			var recs []Record
			if err := json.Unmarshal(v, &recs); err != nil {
				return fmt.Errorf("hotplug record of %s: %w", k, err)
			}
			return nil
		},
	}
}
