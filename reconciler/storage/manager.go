package storage

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// Importer fills a volume (runtime/importer behind an adapter).
type Importer interface {
	Import(ctx context.Context, req ImportRequest, progress func(percent float64)) (ImportResult, error)
}

// ImportRequest is one import with credentials resolved.
type ImportRequest struct {
	// Kind is the source kind (SourceHTTP, …).
	Kind     string
	URL      string
	Username string
	Password string
	// CA is PEM certificates to trust in addition to the system's.
	CA           []byte
	Headers      []string
	Checksum     string
	Insecure     bool
	Architecture string
	// SourcePath is a clone's source disk (file or device).
	SourcePath string
	// Target is the disk file or device; Size its virtual size (0 for a
	// device: all of it).
	Target      string
	Block       bool
	Size        int64
	Preallocate bool
	// Scratch is the scratch directory (scratchSpaceStorageClass).
	Scratch string
	Limits  Limits
	// Reader is an upload's data, ReaderSize its length (-1: unknown).
	Reader     io.Reader
	ReaderSize int64
	// Received, if set, is called once every byte of Reader was read and
	// the image checked; conversion may go on after it.
	Received func()
}

// ImportResult is what an import reports.
type ImportResult struct {
	Format        string `json:"format,omitempty"`
	Compression   string `json:"compression,omitempty"`
	VirtualSize   int64  `json:"virtualSize,omitempty"`
	Transferred   int64  `json:"transferred,omitempty"`
	Scratch       string `json:"scratch,omitempty"`
	Preallocation string `json:"preallocation,omitempty"`
	Clone         string `json:"clone,omitempty"`
	Limits        string `json:"limits,omitempty"`
}

// Loops manages loop devices (runtime/loop).
type Loops interface {
	// AttachAt attaches backing to dev without autoclear; idempotent.
	AttachAt(dev, backing string) error
	// Backing returns the file dev is attached to.
	Backing(dev string) (file string, attached bool, err error)
	// Find returns the devices backing is attached to.
	Find(backing string) ([]string, error)
	Detach(dev string) error
}

// Files is the host file system.
type Files interface {
	Exists(path string) bool
	MkdirAll(path string) error
	// RemoveAll removes a directory tree; Remove one file.
	RemoveAll(path string) error
	Remove(path string) error
	// CreateSparse makes a sparse file of size bytes (never truncating an
	// existing one).
	CreateSparse(path string, size int64) error
	// Size returns a file's size.
	Size(path string) (int64, error)
	// HasData reports whether a file holds any data: false for an empty
	// file or one that is all holes (a sparse file never written).
	HasData(path string) (bool, error)
	// ReadFile reads a small file (a marker); WriteFile replaces one
	// atomically (temporary file, sync, rename), creating its directory.
	ReadFile(path string) ([]byte, error)
	WriteFile(path string, data []byte) error
}

// Secrets reads credentials and CA bundles kept outside git.
type Secrets interface {
	Read(namespace, name string) (map[string][]byte, error)
}

// KV is the state database.
type KV interface {
	Get(bucket, key string) ([]byte, error)
	Put(bucket, key string, val []byte) error
	Delete(bucket, key string) error
	ForEach(bucket string, fn func(key string, val []byte) error) error
}

// Config is the operator's policy for storage on this node.
type Config struct {
	// Root prefixes host paths from manifests (HostPathProvisioner paths,
	// PersistentVolume directories) so tests use a temporary directory.
	Root string
	// StateDir holds loop backing files (StateDir/blockpv) and fallback
	// scratch space (StateDir/scratch).
	StateDir string
	// AllowedRoots are directories (under Root) where a PersistentVolume's
	// local.path or hostPath.path may lie, besides the hostpath
	// provisioner's paths and StateDir.
	AllowedRoots []string
	// SelfHeal re-attaches detached loop devices and re-imports missing
	// disks; off, such drift is only reported.
	SelfHeal      bool
	AllowPruneAll bool
	// InUse reports whether a running domain uses a path; data in use is
	// never deleted. nil means nothing is.
	InUse func(path string) bool
	// Running reports whether a running domain uses a path: a volume
	// moved to another node is served to it only when none does (a
	// stopped domain may keep its definition). Nil counts every path as
	// used.
	Running func(path string) bool
	// MovedFrom names the other node that holds the data of static
	// PersistentVolume pv, which moved here: a DataVolume bound to it
	// pulls that data instead of importing its source. "" when no node
	// does (a fresh volume); an error when it cannot be told, and the
	// claim waits. nil: volumes never move.
	MovedFrom func(pv string) (node string, err error)
	// Released says whether the copy here of a static PersistentVolume
	// that moved to another node may go: once that node runs the VMs
	// that use it ("VirtualMachine namespace/name", as a claim's
	// consumers are named); otherwise why it stays. nil: moved volumes
	// are kept.
	Released func(pv string, vms []string) (bool, string)
	// OnChange is called (from a background goroutine) when an import
	// ends, so the caller can reconcile the VMs waiting for it.
	OnChange func()
	// Backoff is the wait before retry n (1-based) of a failed import; nil
	// means 10s doubling up to 5m.
	Backoff func(n int) time.Duration
	Now     func() time.Time
	Log     *slog.Logger
}

func defaultBackoff(n int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// Manager plans and applies storage; it is safe for concurrent use.
type Manager struct {
	cfg     Config
	imp     Importer
	loops   Loops
	files   Files
	secrets Secrets
	kv      KV
	log     *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	classRecs  map[string]*classRecord
	volumeRecs map[string]*volumeRecord
	claimRecs  map[string]*claimRecord
	jobs       map[string]*job
	// pending is the status of desired claims without a record, as of the
	// last Plan.
	pending map[string]ClaimStatus
	// desired is the state of the last Plan: what an upload may fill.
	desired *State
}

type job struct {
	cancel  context.CancelFunc
	done    chan struct{}
	persist time.Time
}

// NewManager loads the persisted records and returns a Manager. Imports it
// starts run until Close.
func NewManager(cfg Config, imp Importer, loops Loops, files Files, secrets Secrets, kv KV) (*Manager, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Backoff == nil {
		cfg.Backoff = defaultBackoff
	}
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{cfg: cfg, imp: imp, loops: loops, files: files, secrets: secrets, kv: kv, log: log,
		ctx: ctx, cancel: cancel, jobs: map[string]*job{}, pending: map[string]ClaimStatus{}}
	if err := m.load(); err != nil {
		cancel()
		return nil, fmt.Errorf("storage state: %w", err)
	}
	return m, nil
}

// Close stops running imports (their records stay in progress, so the next
// Manager restarts them) and waits for them.
func (m *Manager) Close() {
	m.cancel()
	m.wg.Wait()
}

// Wait blocks until no import runs or ctx ends.
func (m *Manager) Wait(ctx context.Context) error {
	for {
		m.mu.Lock()
		var done chan struct{}
		for _, j := range m.jobs {
			done = j.done
			break
		}
		m.mu.Unlock()
		if done == nil {
			return nil
		}
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Running reports whether any import runs.
func (m *Manager) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.jobs) > 0
}

// ClaimStatus is what the VM side needs of a claim.
type ClaimStatus struct {
	// Ready: the disk is complete; a VM may use it.
	Ready bool `json:"ready"`
	// Phase is CDI's DataVolume phase, or Pending/Bound for a plain claim.
	Phase string `json:"phase"`
	// Progress is the import's share done, in percent.
	Progress float64 `json:"progress,omitempty"`
	// Path is disk.img in the claim's directory (Filesystem) or the block
	// device (Block): <disk type='file'> or <disk type='block'>.
	Path  string `json:"path,omitempty"`
	Block bool   `json:"block,omitempty"`
	// Reason and Message say why a claim is not ready.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	Volume  string `json:"volume,omitempty"`
}

// Claim returns the status of claim namespace/name; ok is false when
// nodevirt knows nothing of it yet.
func (m *Manager) Claim(namespace, name string) (ClaimStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := namespace + "/" + name
	if r := m.claimRecs[key]; r != nil {
		return statusOf(r), true
	}
	s, ok := m.pending[key]
	return s, ok
}

func statusOf(r *claimRecord) ClaimStatus {
	s := ClaimStatus{Phase: r.Phase, Progress: r.Progress, Path: r.Path, Block: r.Block, Reason: r.Reason, Message: r.Message, Volume: r.Volume}
	s.Ready = r.Phase == PhaseSucceeded || r.Phase == PhaseBound
	if s.Ready {
		s.Progress = 100
	}
	return s
}

// host maps a manifest path onto the host root with the same secure join as
// host files: symlinks are resolved inside Root, so a symlinked directory
// under Root cannot send volumes (and their removal) outside it.
func (m *Manager) host(p string) (string, error) {
	root := m.cfg.Root
	if root == "" {
		root = "/"
	}
	hp, err := securejoin.SecureJoin(root, filepath.FromSlash(p))
	if err != nil {
		return "", fmt.Errorf("resolve %s under %s: %w", p, root, err)
	}
	return hp, nil
}

// devicePath is where a device volume's path is on the host: under the
// root as written, so a VM keeps a stable /dev/disk/by-id name rather than
// the sdX it resolves to today.
func (m *Manager) devicePath(p string) string {
	root := m.cfg.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, filepath.FromSlash(p))
}

// blockDevice resolves a device volume's path through its symlinks, inside
// the root, and checks that it leads to a block device; it returns the
// device it resolved to.
func (m *Manager) blockDevice(p string) (string, error) {
	hp, err := m.host(p)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(hp)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotBlockDevice, err)
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return "", fmt.Errorf("%w: %s is %s", ErrNotBlockDevice, hp, fileKind(fi.Mode()))
	}
	return hp, nil
}

func fileKind(mode os.FileMode) string {
	switch {
	case mode.IsDir():
		return "a directory"
	case mode&os.ModeCharDevice != 0:
		return "a character device"
	case mode.IsRegular():
		return "a regular file"
	}
	return "not a device"
}

// backing is the file behind a loop-backed PersistentVolume.
func (m *Manager) backing(pv string) string {
	return filepath.Join(m.cfg.StateDir, "blockpv", pv+".img")
}

// dynamicName is the PersistentVolume name the provisioner gives a claim:
// pvc-<uid>, with a name-based uid since there is no API server.
func dynamicName(key string) string {
	h := sha1.Sum([]byte("nodevirt/pvc/" + key))
	h[6] = (h[6] & 0x0f) | 0x50
	h[8] = (h[8] & 0x3f) | 0x80
	return fmt.Sprintf("pvc-%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// allowed says whether dir (a host path) may hold volumes.
func (m *Manager) allowed(st *State, dir string) bool {
	roots := []string{m.cfg.StateDir}
	// A root that cannot be resolved allows nothing.
	add := func(p string) {
		if hp, err := m.host(p); err == nil {
			roots = append(roots, hp)
		}
	}
	for _, r := range m.cfg.AllowedRoots {
		add(r)
	}
	if hp := st.HostPath; hp != nil {
		if hp.Path != "" {
			add(hp.Path)
		}
		for _, p := range hp.Pools {
			add(p)
		}
	}
	dir = filepath.Clean(dir)
	for _, r := range roots {
		r = filepath.Clean(r)
		if r == "" || r == "/" {
			continue
		}
		if dir == r || strings.HasPrefix(dir, r+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// resolve fills an import request's credentials from the repository or the
// secrets directory.
func (m *Manager) resolve(ns string, src *Source, req *ImportRequest) error {
	if src.SecretRef != "" {
		data := src.SecretData
		if data == nil {
			if m.secrets == nil {
				return fmt.Errorf("secret %s/%s: no secrets directory configured", ns, src.SecretRef)
			}
			var err error
			if data, err = m.secrets.Read(ns, src.SecretRef); err != nil {
				return err
			}
		}
		req.Username, req.Password = string(data["accessKeyId"]), string(data["secretKey"])
		if req.Username == "" && req.Password == "" {
			return fmt.Errorf("secret %s/%s has neither accessKeyId nor secretKey", ns, src.SecretRef)
		}
	}
	if src.CertConfigMap != "" {
		var pem []byte
		if src.CAData != nil {
			keys := make([]string, 0, len(src.CAData))
			for k := range src.CAData {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				pem = append(pem, src.CAData[k]...)
				pem = append(pem, '\n')
			}
		} else {
			if m.secrets == nil {
				return fmt.Errorf("config map %s/%s: no secrets directory configured", ns, src.CertConfigMap)
			}
			data, err := m.secrets.Read(ns, src.CertConfigMap)
			if err != nil {
				return fmt.Errorf("CA bundle: %w", err)
			}
			keys := make([]string, 0, len(data))
			for k := range data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				pem = append(pem, data[k]...)
				pem = append(pem, '\n')
			}
		}
		req.CA = pem
	}
	req.Headers = append(req.Headers, src.Headers...)
	for _, name := range src.SecretHeaders {
		if m.secrets == nil {
			return fmt.Errorf("secret %s/%s: no secrets directory configured", ns, name)
		}
		data, err := m.secrets.Read(ns, name)
		if err != nil {
			return err
		}
		for _, v := range data {
			req.Headers = append(req.Headers, strings.TrimSpace(string(v)))
		}
	}
	return nil
}

// startImport runs an import in the background; file is the disk file it
// fills, marked once the import succeeded. Called with m.mu held.
func (m *Manager) startImport(r *claimRecord, req ImportRequest, scratch, file string) {
	ctx, cancel := context.WithCancel(m.ctx)
	j := &job{cancel: cancel, done: make(chan struct{})}
	m.jobs[r.Key] = j
	key := r.Key
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(j.done)
		res, err := m.imp.Import(ctx, req, func(p float64) { m.progress(key, p) })
		// A claim deleted meanwhile, or an agent stopping, leaves the
		// record "in progress": the next agent restarts the import.
		_ = m.settle(key, scratch, func(rec *claimRecord, now time.Time) {
			switch {
			case err == nil:
				rec.Phase, rec.Progress, rec.Reason, rec.Message = PhaseSucceeded, 100, "Completed", "Import Complete"
				if req.Kind == SourcePVC {
					rec.Message = "Clone Complete"
				}
				rec.Result = &res
				rec.Attempts, rec.Retry = 0, time.Time{}
				m.log.Info("import done", "claim", key, "format", res.Format, "took", now.Sub(rec.Started).Round(time.Millisecond))
				if merr := m.writeMarker(rec, file, req.Checksum); merr != nil {
					// The disk is complete and the record says so; only a
					// lost state could not adopt it.
					m.log.Error("write import marker", "claim", key, "file", file, "err", merr)
				}
			case errors.Is(err, context.Canceled):
				rec.Phase, rec.Reason, rec.Message = PhaseImportScheduled, "Cancelled", "the import was cancelled"
			default:
				rec.Attempts++
				rec.Phase, rec.Reason, rec.Message = PhaseFailed, "Error", err.Error()
				rec.Retry = now.Add(m.cfg.Backoff(rec.Attempts))
				m.log.Error("import failed", "claim", key, "attempt", rec.Attempts, "retry", rec.Retry, "err", err)
			}
		})
	}()
}

// Why settle recorded no outcome.
var (
	errClaimRemoved = errors.New("the claim was removed meanwhile")
	errStopping     = errors.New("the agent is stopping")
)

// settle ends key's import or upload job: it removes the scratch space,
// drops the job and, unless the claim is gone or the agent stops
// (errClaimRemoved, errStopping), sets the outcome with record (under
// m.mu, with the finish time), persists the record and tells OnChange.
func (m *Manager) settle(key, scratch string, record func(rec *claimRecord, now time.Time)) error {
	if scratch != "" {
		_ = m.files.RemoveAll(scratch)
	}
	m.mu.Lock()
	delete(m.jobs, key)
	rec := m.claimRecs[key]
	switch {
	case rec == nil:
		m.mu.Unlock()
		return errClaimRemoved
	case m.ctx.Err() != nil:
		m.mu.Unlock()
		return errStopping
	}
	now := m.cfg.Now()
	rec.Finished = now
	record(rec, now)
	if perr := m.putClaim(rec); perr != nil {
		m.log.Error("persist claim", "claim", key, "err", perr)
	}
	m.mu.Unlock()
	if m.cfg.OnChange != nil {
		m.cfg.OnChange()
	}
	return nil
}

// progress records an import's progress, persisting it at most every
// second so a restarted agent reports where the import was.
func (m *Manager) progress(key string, p float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, j := m.claimRecs[key], m.jobs[key]
	if rec == nil || j == nil {
		return
	}
	rec.Progress = p
	if now := m.cfg.Now(); now.Sub(j.persist) >= time.Second {
		j.persist = now
		if err := m.putClaim(rec); err != nil {
			m.log.Error("persist progress", "claim", key, "err", err)
		}
	}
}

// stop cancels a claim's import and waits for it. Called without m.mu.
func (m *Manager) stop(key string) {
	m.mu.Lock()
	j := m.jobs[key]
	m.mu.Unlock()
	if j == nil {
		return
	}
	j.cancel()
	<-j.done
}
