package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// SourceKind names where the data comes from (a DataVolume's spec.source).
type SourceKind string

const (
	HTTP     SourceKind = "http"
	Registry SourceKind = "registry"
	Blank    SourceKind = "blank"
	Clone    SourceKind = "pvc"
	Upload   SourceKind = "upload"
)

// Errors callers tell apart with errors.Is. Every error names the URL, file
// or device it is about.
var (
	// ErrTooSmall: the image does not fit the target. The text is CDI's.
	ErrTooSmall = errors.New("a larger PVC is required")
	// ErrUnauthorized: the server refused the credentials (HTTP 401 or 403).
	ErrUnauthorized = errors.New("wrong or missing credentials")
	ErrNotFound     = errors.New("not found on the server")
	// ErrUnreachable: no connection, DNS failure, TLS failure or timeout.
	ErrUnreachable = errors.New("endpoint unreachable")
	ErrChecksum    = errors.New("checksum mismatch")
	// ErrFormat: the data is not a disk image nodevirt accepts (a qcow2
	// with a backing file, an image qemu-img cannot read, …).
	ErrFormat = errors.New("unsupported or invalid image")
	// ErrUnsupported: an operation the seed's CDI matrix marks unsupported.
	ErrUnsupported = errors.New("not supported")
)

// Source is where the data comes from.
type Source struct {
	Kind SourceKind
	// URL: http(s)://… for HTTP; docker://registry/repo:tag for Registry.
	URL string
	// CA holds PEM certificates trusted in addition to the system's (a
	// DataVolume's certConfigMap).
	CA []byte
	// Username and Password are sent as HTTP basic auth, or to the
	// registry's token service.
	Username, Password string
	// Headers are extra HTTP headers, "Name: value".
	Headers []string
	// Checksum is "algorithm:hex" (md5, sha1, sha256, sha512) of the bytes
	// at URL, checked before anything is renamed into place.
	Checksum string
	// Insecure: the registry is in insecureRegistries: plain http is
	// allowed and TLS certificates are not verified.
	Insecure bool
	// Architecture picks the image of a multi-platform registry index;
	// "" means this machine's.
	Architecture string
	// Path is the source volume of a Clone: a disk file or a block device.
	Path string
	// Reader is an Upload's data and Size its length when known.
	Reader io.Reader
	Size   int64
}

// Target is the volume to fill.
type Target struct {
	// Path is the final file (…/disk.img) or a block device (/dev/loopN).
	Path  string
	Block bool
	// Size is the virtual size of the disk in bytes: images larger than it
	// are refused, smaller ones are grown to it. For a block target 0 means
	// the device's size.
	Size int64
	// Preallocate allocates every block of a file target (fallocate, or
	// writing zeros where the file system cannot).
	Preallocate bool
}

// Limits are CPU and memory limits for the conversion (a HyperConverged's
// resourceRequirements.storageWorkloads.limits).
type Limits struct {
	CPUMillis   int64
	MemoryBytes int64
}

// Request is one import.
type Request struct {
	Source Source
	Target Target
	// Scratch is a directory for scratch space (HyperConverged's
	// scratchSpaceStorageClass). It is used where the seed's CDI support
	// matrix says an import needs scratch space; other imports that still
	// need a staging file put it beside the target.
	Scratch string
	Limits  Limits
	// Progress receives the share done in percent, never decreasing.
	Progress func(percent float64)
	// Received, if set, is called once when every byte of the source was
	// read and the image checked (its format, its size against the
	// target); what follows is conversion, sync and rename. An upload's
	// asynchronous answer waits for it.
	Received func()
}

// Result describes a finished import.
type Result struct {
	// Format is what the data was: qcow2, raw or iso (vmdk, vhdx).
	Format string `json:"format,omitempty"`
	// Compression is gz, xz or "".
	Compression string `json:"compression,omitempty"`
	// VirtualSize is the size of the image before it was grown to the target.
	VirtualSize int64 `json:"virtualSize,omitempty"`
	// Transferred counts the bytes read from the source.
	Transferred int64 `json:"transferred,omitempty"`
	// Scratch is the scratch file used, if the matrix asked for one.
	Scratch string `json:"scratch,omitempty"`
	// Preallocation is "fallocate" or "full" when the target was preallocated.
	Preallocation string `json:"preallocation,omitempty"`
	// Clone is "reflink" or "copy" for a Clone.
	Clone string `json:"clone,omitempty"`
	// Limits says whether the CPU and memory limits were enforced.
	Limits string `json:"limits,omitempty"`
}

// Config is the importer's policy.
type Config struct {
	// QemuImg is the qemu-img binary; "" means "qemu-img" from PATH.
	QemuImg string
	// XZ is the xz program used to decompress; "" means "xz" from PATH
	// when installed, "-" always the Go decoder.
	XZ string
	// CgroupMount and ProcSelf locate cgroup v2 and this process's cgroup;
	// "" means /proc/self/mountinfo's cgroup2 mount and /proc/self.
	CgroupMount string
	ProcSelf    string
	Log         *slog.Logger
}

// Importer runs imports. It is safe for concurrent use on distinct targets.
type Importer struct {
	cfg Config
	log *slog.Logger

	cgOnce sync.Once
	cg     cgroupHost
}

// New returns an Importer.
func New(cfg Config) *Importer {
	if cfg.QemuImg == "" {
		cfg.QemuImg = "qemu-img"
	}
	if cfg.ProcSelf == "" {
		cfg.ProcSelf = "/proc/self"
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Importer{cfg: cfg, log: log}
}

// Import fills req.Target from req.Source.
func (im *Importer) Import(ctx context.Context, req Request) (Result, error) {
	if req.Target.Path == "" {
		return Result{}, errors.New("import: no target path")
	}
	if !req.Target.Block && req.Target.Size <= 0 {
		return Result{}, fmt.Errorf("import into %s: target size must be positive", req.Target.Path)
	}
	j := &job{im: im, req: req, prog: &progress{fn: req.Progress}}
	if err := j.begin(); err != nil {
		return Result{}, err
	}
	defer j.cleanup()
	var err error
	switch req.Source.Kind {
	case HTTP:
		err = j.http(ctx)
	case Registry:
		err = j.registry(ctx)
	case Blank:
		err = j.blank(ctx)
	case Clone:
		err = j.clone(ctx)
	case Upload:
		err = j.upload(ctx)
	default:
		err = fmt.Errorf("source %q: %w", req.Source.Kind, ErrUnsupported)
	}
	if err != nil {
		return j.res, err
	}
	j.prog.set(100)
	return j.res, nil
}

// job is one running import.
type job struct {
	im   *Importer
	req  Request
	res  Result
	prog *progress
	// partial is the file written before the final rename ("" for block
	// targets); stages are the staging and scratch files of this import.
	partial string
	stages  []string
	// size is the target's virtual size (the device's for block targets).
	size int64
	// zeroed: the block target reads as zeros, so zero chunks can be skipped.
	zeroed bool
	// told: Received was called.
	told bool
}

// received tells the caller that the source was read and checked.
func (j *job) received() {
	if !j.told && j.req.Received != nil {
		j.told = true
		j.req.Received()
	}
}

func (j *job) removeStages() {
	for _, p := range j.stages {
		_ = os.Remove(p)
	}
	j.stages = nil
}

func partialName(target string) string {
	return filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".partial")
}

func stageName(target string) string {
	return filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".stage")
}

// Leftovers lists the hidden files an interrupted import of target may have
// left beside it; Import removes them itself before it starts.
func Leftovers(target string) []string {
	st := stageName(target)
	return []string{partialName(target), st + ".image", st + ".upload", st + ".registry"}
}

// begin removes what an interrupted import left and sizes the target.
func (j *job) begin() error {
	t := j.req.Target
	for _, p := range Leftovers(t.Path) {
		if t.Block {
			break // nothing is ever written beside a device
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove leftover of an interrupted import: %w", err)
		}
	}
	j.size = t.Size
	if t.Block {
		size, err := blockSize(t.Path)
		if err != nil {
			return err
		}
		if j.size == 0 || j.size > size {
			if j.size > size {
				return fmt.Errorf("import into %s: device has %d bytes, %d wanted: %w", t.Path, size, j.size, ErrTooSmall)
			}
			j.size = size
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(t.Path), 0o755); err != nil {
		return fmt.Errorf("import into %s: %w", t.Path, err)
	}
	j.partial = partialName(t.Path)
	return nil
}

func (j *job) cleanup() {
	if j.partial != "" {
		_ = os.Remove(j.partial)
	}
	j.removeStages()
}

// openTarget opens where data goes: the partial file, or the device after
// zeroing it.
func (j *job) openTarget() (*os.File, error) {
	t := j.req.Target
	if t.Block {
		f, err := os.OpenFile(t.Path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", t.Path, err)
		}
		j.zeroed = zeroDevice(f, j.size) == nil
		return f, nil
	}
	f, err := os.OpenFile(j.partial, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", j.partial, err)
	}
	return f, nil
}

// finish grows, preallocates and syncs f (the partial file or the device)
// and renames a file into place. It closes f.
func (j *job) finish(f *os.File) error {
	t := j.req.Target
	if t.Block {
		err := f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", t.Path, err)
		}
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < j.size {
		if err := f.Truncate(j.size); err != nil {
			return fmt.Errorf("grow %s to %d bytes: %w", t.Path, j.size, err)
		}
	}
	if t.Preallocate {
		method, err := preallocate(f, j.size)
		if err != nil {
			return fmt.Errorf("preallocate %s: %w", t.Path, err)
		}
		j.res.Preallocation = method
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", j.partial, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(j.partial, t.Path); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	j.partial = ""
	syncDir(filepath.Dir(t.Path))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// progress reports percentages through weighted phases, never decreasing.
type progress struct {
	fn   func(float64)
	mu   sync.Mutex
	last float64
	// base and span map the current phase's 0..1 onto the total.
	base, span float64
}

func (p *progress) phase(base, span float64) {
	p.mu.Lock()
	p.base, p.span = base, span
	p.mu.Unlock()
}

// step reports fraction f (0..1) of the current phase.
func (p *progress) step(f float64) {
	p.mu.Lock()
	span := p.span
	base := p.base
	p.mu.Unlock()
	if span == 0 {
		return
	}
	p.set(base + span*min(max(f, 0), 1))
}

func (p *progress) set(pct float64) {
	if p == nil || p.fn == nil {
		return
	}
	p.mu.Lock()
	if pct <= p.last && pct != 100 {
		p.mu.Unlock()
		return
	}
	if pct == 100 && p.last == 100 {
		p.mu.Unlock()
		return
	}
	// Report in steps of a tenth of a percent: callers persist it.
	if pct != 100 && pct-p.last < 0.1 {
		p.mu.Unlock()
		return
	}
	p.last = pct
	p.mu.Unlock()
	p.fn(pct)
}

// counter counts bytes read and reports them against total.
type counter struct {
	r     io.Reader
	n     int64
	total int64
	prog  *progress
	ctx   context.Context
}

func (c *counter) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(b)
	c.n += int64(n)
	if c.total > 0 {
		c.prog.step(float64(c.n) / float64(c.total))
	}
	return n, err
}
