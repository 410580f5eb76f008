package snapshot

import (
	"encoding/json"
	"fmt"
	"time"
)

// Buckets of the state database.
const (
	bucketSnapshots = "snapshots"
	bucketRestores  = "restores"
	recordVersion   = 1

	phaseInProgress = "InProgress"
	phaseSucceeded  = "Succeeded"
	phaseFailed     = "Failed"
)

// snapRecord is what the agent knows of one snapshot, keyed "ns/name".
type snapRecord struct {
	V      int    `json:"v"`
	Key    string `json:"key"`
	Object string `json:"object"`
	// UID is made when the snapshot is first seen (git objects have none);
	// FirstSeen is its creationTimestamp.
	UID       string    `json:"uid"`
	FirstSeen time.Time `json:"firstSeen"`
	Hash      string    `json:"hash"`
	VM        string    `json:"vm"`
	VMUID     string    `json:"vmUID,omitempty"`
	// Phase is KubeVirt's: InProgress, Succeeded, Failed.
	Phase        string     `json:"phase"`
	Ready        bool       `json:"readyToUse"`
	CreationTime *time.Time `json:"creationTime,omitempty"`
	// Waiting says why an InProgress snapshot is not taken yet.
	Waiting   string      `json:"waiting,omitempty"`
	Error     string      `json:"error,omitempty"`
	ErrorTime *time.Time  `json:"errorTime,omitempty"`
	Dir       string      `json:"dir,omitempty"`
	Volumes   []volRecord `json:"volumes,omitempty"`
	Excluded  []string    `json:"excluded,omitempty"`
	Retain    bool        `json:"retain,omitempty"`
	// Retained: the manifest is gone and deletionPolicy Retain kept the
	// content, which only the host now holds.
	Retained bool            `json:"retained,omitempty"`
	VMSpec   json.RawMessage `json:"vmSpec,omitempty"`
	// TPM is the copy of a persistent TPM's state in the content
	// directory, its files at their paths under libvirt's per-domain
	// directory; "" when the VM had none (or it never ran).
	TPM string `json:"tpm,omitempty"`
}

// volRecord is one volume copied into a content.
type volRecord struct {
	Name       string `json:"name"`
	Claim      string `json:"claim"`
	DataVolume bool   `json:"dataVolume,omitempty"`
	// File is the copy in the content directory; From the disk it was
	// copied from; Block: From is a block device.
	File   string `json:"file"`
	From   string `json:"from"`
	Block  bool   `json:"block,omitempty"`
	Size   int64  `json:"size"`
	Method string `json:"method"`
}

// restoreRecord is what the agent knows of one restore, keyed "ns/name".
// Complete with Hash is what makes a restore run once.
type restoreRecord struct {
	V           int              `json:"v"`
	Key         string           `json:"key"`
	Object      string           `json:"object"`
	UID         string           `json:"uid"`
	FirstSeen   time.Time        `json:"firstSeen"`
	Hash        string           `json:"hash"`
	Target      string           `json:"target"`
	Snapshot    string           `json:"snapshot"`
	Complete    bool             `json:"complete"`
	RestoreTime *time.Time       `json:"restoreTime,omitempty"`
	Restores    []restoredVolume `json:"restores,omitempty"`
	Waiting     string           `json:"waiting,omitempty"`
	Error       string           `json:"error,omitempty"`
	// Failed: the restore cannot succeed (Error says why); it is not tried
	// again.
	Failed bool `json:"failed,omitempty"`
	// Note is what the restore wants the operator to know (the VM's spec
	// in git differs from the snapshot's).
	Note string `json:"note,omitempty"`
}

type restoredVolume struct {
	Volume     string `json:"volumeName"`
	Claim      string `json:"persistentVolumeClaim"`
	Snapshot   string `json:"volumeSnapshotName"`
	DataVolume string `json:"dataVolumeName,omitempty"`
}

func decodeRecord[T any](b []byte, what string) (*T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s record: %w", what, err)
	}
	var ver struct {
		V int `json:"v"`
	}
	_ = json.Unmarshal(b, &ver)
	if ver.V != recordVersion {
		return nil, fmt.Errorf("%s record has version %d; this nodevirt reads version %d", what, ver.V, recordVersion)
	}
	return &v, nil
}

// Decoders check the records of each bucket this package keeps (state
// check and repair).
func Decoders() map[string]func(key string, val []byte) error {
	return map[string]func(string, []byte) error{
		bucketSnapshots: func(_ string, b []byte) error { _, err := decodeRecord[snapRecord](b, "snapshot"); return err },
		bucketRestores:  func(_ string, b []byte) error { _, err := decodeRecord[restoreRecord](b, "restore"); return err },
	}
}

func encode(v any) ([]byte, error) { return json.Marshal(v) }
