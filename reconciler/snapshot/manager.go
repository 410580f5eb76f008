package snapshot

import (
	"context"
	"crypto/sha1"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/runtime/hv"
)

// Files is the host I/O of snapshots: copies (reflink, else sparse) and
// the content directories.
type Files interface {
	// Copy replaces the file dst atomically with a copy of src (a file or a
	// block device) and says how it copied: "reflink" or "copy".
	Copy(ctx context.Context, dst, src string) (string, error)
	// ToDevice writes the file src over the block device dst.
	ToDevice(ctx context.Context, dst, src string) error
	Exists(path string) bool
	MkdirAll(path string) error
	RemoveAll(path string) error
	// WriteFile replaces path atomically.
	WriteFile(path string, data []byte) error
	// Rename renames and syncs the parent directory.
	Rename(from, to string) error
	Glob(pattern string) ([]string, error)
}

// Domains lists libvirt's domains: a snapshot or restore runs only while
// its VM's domain is inactive.
type Domains interface {
	Domains(ctx context.Context) ([]hv.Domain, error)
}

// Claims says where a claim's disk is (the storage manager).
type Claims interface {
	Claim(namespace, name string) (storage.ClaimStatus, bool)
}

// KV is the state database.
type KV interface {
	Get(bucket, key string) ([]byte, error)
	Put(bucket, key string, val []byte) error
	Delete(bucket, key string) error
	ForEach(bucket string, fn func(key string, val []byte) error) error
}

// Config is the operator's policy.
type Config struct {
	// StateDir holds the contents, in snapshots/<namespace>/<name>.
	StateDir string
	// AllowPruneAll confirms deleting every snapshot at once.
	AllowPruneAll bool
	Log           *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// TPMStateDir is where libvirt keeps the swtpm state of the domain
	// with a UUID ("" when out of reach); nil leaves TPM state out of
	// snapshots.
	TPMStateDir func(uuid string) string
}

// Manager plans and applies snapshots and restores.
type Manager struct {
	cfg     Config
	files   Files
	domains Domains
	claims  Claims
	kv      KV

	// mu guards the maps of records, which status reads beside the loop;
	// only the loop writes them, and it replaces a record rather than
	// changing one.
	mu    sync.Mutex
	snaps map[string]*snapRecord
	rests map[string]*restoreRecord
}

// New loads the records of kv.
func New(cfg Config, files Files, domains Domains, claims Claims, kv KV) (*Manager, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Manager{cfg: cfg, files: files, domains: domains, claims: claims, kv: kv,
		snaps: map[string]*snapRecord{}, rests: map[string]*restoreRecord{}}
	if err := kv.ForEach(bucketSnapshots, func(k string, v []byte) error {
		r, err := decodeRecord[snapRecord](v, "snapshot "+k)
		if err == nil {
			m.snaps[k] = r
		}
		return err
	}); err != nil {
		return nil, err
	}
	if err := kv.ForEach(bucketRestores, func(k string, v []byte) error {
		r, err := decodeRecord[restoreRecord](v, "restore "+k)
		if err == nil {
			m.rests[k] = r
		}
		return err
	}); err != nil {
		return nil, err
	}
	// A content cut short by a crash is never used: only a renamed
	// directory is one.
	left, err := files.Glob(filepath.Join(cfg.StateDir, "snapshots", "*", "*.tmp"))
	if err != nil {
		return nil, err
	}
	for _, d := range left {
		if err := files.RemoveAll(d); err != nil {
			return nil, fmt.Errorf("remove the unfinished content %s: %w", d, err)
		}
		cfg.Log.Info("removed an unfinished snapshot content", "dir", d)
	}
	return m, nil
}

func (m *Manager) putSnap(r *snapRecord) error {
	r.V = recordVersion
	b, err := encode(r)
	if err == nil {
		err = m.kv.Put(bucketSnapshots, r.Key, b)
	}
	if err != nil {
		return fmt.Errorf("record snapshot %s: %w", r.Key, err)
	}
	m.mu.Lock()
	m.snaps[r.Key] = r
	m.mu.Unlock()
	return nil
}

func (m *Manager) putRestore(r *restoreRecord) error {
	r.V = recordVersion
	b, err := encode(r)
	if err == nil {
		err = m.kv.Put(bucketRestores, r.Key, b)
	}
	if err != nil {
		return fmt.Errorf("record restore %s: %w", r.Key, err)
	}
	m.mu.Lock()
	m.rests[r.Key] = r
	m.mu.Unlock()
	return nil
}

// uid gives an object of the source, which has none, a UID: name-based on
// its key and the time it was first seen, so a snapshot deleted and
// committed again under the same name is a new one.
func uid(kind, key string, seen time.Time) string {
	h := sha1.Sum([]byte("nodevirt/" + kind + "/" + key + "/" + seen.UTC().Format(time.RFC3339Nano)))
	h[6] = (h[6] & 0x0f) | 0x50
	h[8] = (h[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// ContentName is KubeVirt's name of a snapshot's content.
func ContentName(snapUID string) string { return "vmsnapshot-content-" + snapUID }

// volumeSnapshotName is KubeVirt's name of one volume's backup.
func volumeSnapshotName(snapUID, volume string) string {
	return "vmsnapshot-" + snapUID + "-volume-" + volume
}

// dirOf is the content directory of snapshot key.
func (m *Manager) dirOf(key string) string {
	ns, name, _ := strings.Cut(key, "/")
	return filepath.Join(m.cfg.StateDir, "snapshots", ns, name)
}

// running reads which domains are active.
func (m *Manager) running(ctx context.Context) (map[string]bool, error) {
	doms, err := m.domains.Domains(ctx)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	out := map[string]bool{}
	for _, d := range doms {
		out[d.Name] = d.State.Active()
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
