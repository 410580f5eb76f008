package diskmove

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// journal is what a pull has verified so far, beside <target>.partial:
// the manifest it pulls against and the chunks written and synced. A new
// manifest (the source changed) starts over.
type journal struct {
	Source   string   `json:"source"`
	Manifest Manifest `json:"manifest"`
	Done     []bool   `json:"done"`
}

// PartialPath and JournalPath are where a pull into target keeps its work.
func PartialPath(target string) string { return target + ".partial" }

// JournalPath is the journal of a pull into target.
func JournalPath(target string) string { return target + ".partial.journal" }

// Puller pulls a disk from a peer's Server.
type Puller struct {
	// Client speaks mutual TLS: its certificate is this node's, signed
	// by its own CA, and it trusts the peer's CA.
	Client *http.Client
	// Log, when set, hears where a pull resumes and how it ended.
	Log *slog.Logger
	// JournalDir keeps the journal of a pull into a block device, which
	// has no directory of its own to keep it beside (it is written in
	// place: a device cannot be renamed onto). Pulls into a device need it.
	JournalDir string
}

// deviceJournal is the journal of a pull into the block device target.
func (p *Puller) deviceJournal(target string) string {
	sum := sha256.Sum256([]byte(target))
	return filepath.Join(p.JournalDir, hex.EncodeToString(sum[:8])+".journal")
}

// Pull copies the disk volume pv served at base (the peer's prefix URL)
// into target: chunk by chunk into target's partial file, each checked
// against the manifest's SHA-256 and journalled once synced, then renamed
// onto target. After an interruption the next Pull resumes at the first
// chunk not journalled. A chunk that does not match is an error and is
// fetched again by the next Pull.
func (p *Puller) Pull(ctx context.Context, base, pv, target string) error {
	src := strings.TrimSuffix(base, "/") + "/" + url.PathEscape(pv)
	var m Manifest
	if err := p.getJSON(ctx, src+"/manifest", &m); err != nil {
		return fmt.Errorf("manifest of %s: %w", pv, err)
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%s from %s: %w", pv, base, err)
	}
	device := false
	if fi, err := os.Stat(target); err == nil && fi.Mode()&os.ModeDevice != 0 {
		device = true
	}
	journalPath, partial := JournalPath(target), PartialPath(target)
	if device {
		if p.JournalDir == "" {
			return fmt.Errorf("%s: pulling into the block device %s needs a journal directory", pv, target)
		}
		if err := os.MkdirAll(p.JournalDir, 0o700); err != nil {
			return err
		}
		journalPath, partial = p.deviceJournal(target), target
	}
	j := loadJournal(journalPath)
	if j == nil || j.Source != src || !sameManifest(j.Manifest, m) {
		j = &journal{Source: src, Manifest: m, Done: make([]bool, len(m.Chunks))}
		if !device {
			if err := os.Remove(partial); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	if device {
		dev, err := os.OpenFile(target, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer dev.Close()
		size, err := dev.Seek(0, io.SeekEnd)
		if err != nil {
			return fmt.Errorf("size of %s: %w", target, err)
		}
		if size < m.Size {
			return fmt.Errorf("%s: the block device %s holds %d bytes, the disk served is %d", pv, target, size, m.Size)
		}
		return p.fill(ctx, src, pv, base, m, j, journalPath, dev, "")
	}
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(m.Size); err != nil {
		return fmt.Errorf("size %s: %w", partial, err)
	}
	return p.fill(ctx, src, pv, base, m, j, journalPath, f, target)
}

// fill writes the chunks j lacks into f, journalling each once synced; with
// target set, f is its partial file, renamed onto it once complete.
func (p *Puller) fill(ctx context.Context, src, pv, base string, m Manifest, j *journal, journalPath string, f *os.File, target string) error {
	kept := 0
	for _, done := range j.Done {
		if done {
			kept++
		}
	}
	if kept > 0 && p.Log != nil {
		p.Log.Info("resuming a disk pull", "pv", pv, "from", base, "chunksKept", kept, "chunks", len(m.Chunks))
	}
	for i := range m.Chunks {
		if j.Done[i] {
			continue
		}
		if err := p.chunk(ctx, src, m, i, f); err != nil {
			return fmt.Errorf("%s chunk %d of %d: %w", pv, i, len(m.Chunks), err)
		}
		if err := f.Sync(); err != nil {
			return err
		}
		j.Done[i] = true
		if err := saveJournal(journalPath, j); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if target != "" {
		if err := os.Rename(PartialPath(target), target); err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(target)); err != nil {
			return err
		}
	}
	if p.Log != nil {
		p.Log.Info("disk pulled", "pv", pv, "from", base, "bytes", m.Size, "chunks", len(m.Chunks), "chunksKept", kept)
	}
	return removeIfExists(journalPath)
}

// ErrChecksum is a chunk whose bytes do not match the manifest.
var ErrChecksum = errors.New("SHA-256 mismatch")

func (p *Puller) chunk(ctx context.Context, src string, m Manifest, i int, f *os.File) error {
	off, n := m.span(i)
	resp, err := p.get(ctx, fmt.Sprintf("%s/chunks/%d", src, i))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	h := sha256.New()
	got, err := io.Copy(io.MultiWriter(io.NewOffsetWriter(f, off), h), io.LimitReader(resp.Body, n+1))
	if err != nil {
		return fmt.Errorf("after %d of %d bytes: %w", got, n, err)
	}
	if got != n {
		return fmt.Errorf("%d bytes, want %d", got, n)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != m.Chunks[i] {
		return fmt.Errorf("%w: got %s, manifest says %s", ErrChecksum, sum, m.Chunks[i])
	}
	return nil
}

func (p *Puller) get(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s: %s", u, resp.Status, bytes.TrimSpace(b))
	}
	return resp, nil
}

func (p *Puller) getJSON(ctx context.Context, u string, v any) error {
	resp, err := p.get(ctx, u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v)
}

func sameManifest(a, b Manifest) bool {
	return a.Size == b.Size && a.ChunkSize == b.ChunkSize && slices.Equal(a.Chunks, b.Chunks)
}

// loadJournal is nil when there is none or it is unreadable: starting
// over is always safe.
func loadJournal(path string) *journal {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var j journal
	if json.Unmarshal(b, &j) != nil || j.Manifest.Validate() != nil || len(j.Done) != len(j.Manifest.Chunks) {
		return nil
	}
	return &j
}

// saveJournal replaces the journal atomically: a crash leaves the old one,
// which claims less than is done, never more.
func saveJournal(path string, j *journal) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func writeJSON(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }
