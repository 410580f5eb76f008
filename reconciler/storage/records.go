package storage

import (
	"encoding/json"
	"fmt"
	"time"
)

// Buckets of the state database this package owns. Values are versioned
// JSON records, so a restarted agent re-adopts what it created.
const (
	bucketClasses = "storage.classes"
	bucketVolumes = "storage.volumes"
	bucketClaims  = "storage.claims"
	recordVersion = 1
)

// DataVolume phases (CDI's), and the phases of claims and volumes.
const (
	PhasePending              = "Pending"
	PhaseWaitForFirstConsumer = "WaitForFirstConsumer"
	PhaseImportScheduled      = "ImportScheduled"
	PhaseImportInProgress     = "ImportInProgress"
	PhaseCloneScheduled       = "CloneScheduled"
	PhaseCloneInProgress      = "CloneInProgress"
	PhaseUploadReady          = "UploadReady"
	PhaseSucceeded            = "Succeeded"
	PhaseFailed               = "Failed"
	// PhaseBound is a plain claim whose volume is ready.
	PhaseBound = "Bound"

	VolumeAvailable = "Available"
	VolumeBound     = "Bound"
	VolumeReleased  = "Released"
)

// classRecord is a StorageClass as first used.
type classRecord struct {
	V      int       `json:"v"`
	Name   string    `json:"name"`
	Object string    `json:"object"`
	Spec   ClassSpec `json:"spec"`
	Since  time.Time `json:"since"`
}

// volumeRecord is a PersistentVolume nodevirt provisioned or manages.
type volumeRecord struct {
	V    int    `json:"v"`
	Name string `json:"name"`
	// Object is the PersistentVolume manifest; "" for a volume the
	// hostpath provisioner made for a claim.
	Object        string   `json:"object,omitempty"`
	Dynamic       bool     `json:"dynamic,omitempty"`
	Class         string   `json:"storageClassName,omitempty"`
	ReclaimPolicy string   `json:"reclaimPolicy"`
	VolumeMode    string   `json:"volumeMode"`
	Capacity      int64    `json:"capacity"`
	AccessModes   []string `json:"accessModes,omitempty"`
	// Dir holds disk.img of a Filesystem volume.
	Dir string `json:"dir,omitempty"`
	// Device and Backing are a loop-backed Block volume's; a volume on a
	// host block device has Device alone.
	Device  string `json:"device,omitempty"`
	Backing string `json:"backing,omitempty"`
	// Attached: nodevirt attached the device (so a missing one is drift).
	Attached bool   `json:"attached,omitempty"`
	Claim    string `json:"claim,omitempty"`
	Phase    string `json:"phase"`
	// ReleasedFrom is the claim a Released volume was bound to.
	ReleasedFrom string    `json:"releasedFrom,omitempty"`
	Created      time.Time `json:"created"`
}

// hostDevice reports whether the volume is a host block device (not a
// loop device nodevirt attached to a file of its own).
func (v *volumeRecord) hostDevice() bool { return v.Device != "" && v.Backing == "" }

// claimRecord is a claim's binding and a DataVolume's import state.
type claimRecord struct {
	V      int    `json:"v"`
	Key    string `json:"key"`
	Object string `json:"object"`
	Owner  string `json:"owner,omitempty"`
	Hash   string `json:"hash"`
	Volume string `json:"volume,omitempty"`
	// Path is the disk: disk.img in the volume's directory, or the device.
	Path  string `json:"path,omitempty"`
	Block bool   `json:"block,omitempty"`
	Phase string `json:"phase"`
	// Progress is the import's share done, in percent.
	Progress float64   `json:"progress,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Message  string    `json:"message,omitempty"`
	Attempts int       `json:"attempts,omitempty"`
	Retry    time.Time `json:"retry,omitzero"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Restarts counts imports interrupted by an agent restart.
	Restarts int           `json:"restarts,omitempty"`
	Result   *ImportResult `json:"result,omitempty"`
	// Claim is the desired claim last applied: the state an invalid
	// manifest keeps.
	Claim *Claim `json:"claim,omitempty"`
}

func (r *claimRecord) hasData() bool {
	return r.Volume != "" || r.Phase == PhaseSucceeded
}

func encode(v any) ([]byte, error) { return json.Marshal(v) }

func decode[T any](b []byte, what string) (*T, error) {
	var probe struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("decode %s record: %w", what, err)
	}
	if probe.V != recordVersion {
		return nil, fmt.Errorf("%s record has version %d; this nodevirt reads version %d", what, probe.V, recordVersion)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode %s record: %w", what, err)
	}
	return &out, nil
}

// load reads every record of the three buckets.
func (m *Manager) load() error {
	m.classRecs = map[string]*classRecord{}
	m.volumeRecs = map[string]*volumeRecord{}
	m.claimRecs = map[string]*claimRecord{}
	if err := m.kv.ForEach(bucketClasses, func(k string, v []byte) error {
		r, err := decode[classRecord](v, "storage class "+k)
		if err == nil {
			m.classRecs[k] = r
		}
		return err
	}); err != nil {
		return err
	}
	if err := m.kv.ForEach(bucketVolumes, func(k string, v []byte) error {
		r, err := decode[volumeRecord](v, "volume "+k)
		if err == nil {
			m.volumeRecs[k] = r
		}
		return err
	}); err != nil {
		return err
	}
	return m.kv.ForEach(bucketClaims, func(k string, v []byte) error {
		r, err := decode[claimRecord](v, "claim "+k)
		if err == nil {
			m.claimRecs[k] = r
		}
		return err
	})
}

func (m *Manager) putClass(r *classRecord) error {
	r.V = recordVersion
	b, err := encode(r)
	if err != nil {
		return err
	}
	if err := m.kv.Put(bucketClasses, r.Name, b); err != nil {
		return err
	}
	m.classRecs[r.Name] = r
	return nil
}

func (m *Manager) putVolume(r *volumeRecord) error {
	r.V = recordVersion
	b, err := encode(r)
	if err != nil {
		return err
	}
	if err := m.kv.Put(bucketVolumes, r.Name, b); err != nil {
		return err
	}
	m.volumeRecs[r.Name] = r
	return nil
}

func (m *Manager) deleteVolume(name string) error {
	if err := m.kv.Delete(bucketVolumes, name); err != nil {
		return err
	}
	delete(m.volumeRecs, name)
	return nil
}

func (m *Manager) putClaim(r *claimRecord) error {
	r.V = recordVersion
	b, err := encode(r)
	if err != nil {
		return err
	}
	if err := m.kv.Put(bucketClaims, r.Key, b); err != nil {
		return err
	}
	m.claimRecs[r.Key] = r
	return nil
}

func (m *Manager) deleteClaim(key string) error {
	if err := m.kv.Delete(bucketClaims, key); err != nil {
		return err
	}
	delete(m.claimRecs, key)
	return nil
}
