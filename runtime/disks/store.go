package disks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nodevirt/nodevirt/runtime/atomicfile"
)

var (
	// ErrOutsideBase is returned for any path the Store would create or
	// remove outside its base directory (or, for images, its cache).
	ErrOutsideBase = errors.New("path is outside the disk store's base directory")

	// ErrQemuImgMissing means qemu-img is not installed.
	ErrQemuImgMissing = errors.New("qemu-img is not installed (Debian package qemu-utils; `make test` installs it)")
)

// Store creates and removes disk artifacts under one base directory.
// It holds no mutable state and is safe for concurrent use on distinct paths.
type Store struct {
	base     string // as given, cleaned
	realBase string // base with symlinks resolved
	cache    string // image cache, cleaned
	// realCache is the cache with symlinks resolved.
	realCache string
}

// New returns a Store rooted at base, extracting OCI images into imageCache.
// Both must be absolute; they are created if missing.
func New(base, imageCache string) (*Store, error) {
	if !filepath.IsAbs(base) {
		return nil, fmt.Errorf("disk store base %q is not an absolute path", base)
	}
	if !filepath.IsAbs(imageCache) {
		return nil, fmt.Errorf("image cache %q is not an absolute path", imageCache)
	}
	s := &Store{base: filepath.Clean(base), cache: filepath.Clean(imageCache)}
	for _, dir := range []string{s.base, s.cache} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create disk store directory: %w", err)
		}
	}
	var err error
	if s.realBase, err = filepath.EvalSymlinks(s.base); err != nil {
		return nil, fmt.Errorf("resolve disk store base: %w", err)
	}
	if s.realCache, err = filepath.EvalSymlinks(s.cache); err != nil {
		return nil, fmt.Errorf("resolve image cache: %w", err)
	}
	return s, nil
}

// Exists reports whether something exists at path (a dangling symlink
// counts, since creating there would fail too).
func (s *Store) Exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// inBase checks that path may be written by the Store and returns it
// cleaned. See within.
func (s *Store) inBase(path string) (string, error) {
	return within(path, s.base, s.realBase)
}

// within accepts an absolute path strictly below root (lexically, against
// root as given or resolved), whose deepest existing ancestor, with symlinks
// resolved, is still below realRoot: a symlink inside the tree must not lead
// writes out of it. root itself is refused, as is anything relative.
func within(path, root, realRoot string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("%w: %q is not an absolute path", ErrOutsideBase, path)
	}
	clean := filepath.Clean(path)
	if !below(clean, root) && !below(clean, realRoot) {
		return "", fmt.Errorf("%w: %q is not inside %q", ErrOutsideBase, path, root)
	}
	existing := filepath.Dir(clean)
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		}
		existing = filepath.Dir(existing)
	}
	real, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return "", fmt.Errorf("resolve %q: %w", existing, err)
	}
	if real != realRoot && !below(real, realRoot) {
		return "", fmt.Errorf("%w: %q leads through a symlink to %q, outside %q", ErrOutsideBase, path, real, root)
	}
	return clean, nil
}

// below reports whether path is strictly inside dir; both must be clean.
func below(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// RemoveAll removes dir and everything below it; a missing dir is fine. dir
// must be inside the base directory (not the base itself).
func (s *Store) RemoveAll(ctx context.Context, dir string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	clean, err := s.inBase(dir)
	if err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	if err := os.RemoveAll(clean); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// EnsureQcow2 creates a blank qcow2 disk of size bytes (a KubeVirt
// emptyDisk). An existing file is left alone, whatever its size.
func (s *Store) EnsureQcow2(ctx context.Context, path string, size int64) error {
	return s.ensureNew(ctx, "create qcow2 disk", path, size, func(tmp string) error {
		return qemuImg(ctx, "create", "-q", "-f", "qcow2", tmp, strconv.FormatInt(size, 10))
	})
}

// EnsureRaw creates a sparse raw disk of size bytes (a KubeVirt hostDisk of
// type DiskOrCreate). An existing file is left alone, whatever its size.
func (s *Store) EnsureRaw(ctx context.Context, path string, size int64) error {
	return s.ensureNew(ctx, "create raw disk", path, size, func(tmp string) error {
		return os.Truncate(tmp, size)
	})
}

// ensureNew creates path through fill(tmp) unless it exists already.
func (s *Store) ensureNew(ctx context.Context, what, path string, size int64, fill func(tmp string) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if size <= 0 {
		return fmt.Errorf("%s %s: size must be positive, got %d", what, path, size)
	}
	clean, err := s.inBase(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if s.Exists(clean) {
		return nil
	}
	if err := writeAtomic(clean, fill); err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	return nil
}

// writeAtomic lets fill write path's content by name and puts it in place
// whole (atomicfile), creating the directory if needed. Disk files stay
// 0600: QEMU gets them through libvirt's ownership change, not the mode.
func writeAtomic(path string, fill func(tmp string) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WritePath(path, 0o600, fill)
}

// EnsureOverlay makes path a qcow2 overlay on backing (format backingFormat,
// "qcow2" or "raw"; "iso" as ResolveImage reports it is accepted and stored as
// raw, which is what an ISO is to QEMU), as containerDisks are used: the image stays pristine and
// the guest writes into the overlay. An existing overlay on the same backing
// file is kept; one on another backing file (a new image) or a file that is
// not a qcow2 overlay is replaced, discarding the guest's writes, which is
// containerDisk's ephemeral semantics. The caller must not do this under a
// running domain.
func (s *Store) EnsureOverlay(ctx context.Context, path, backing, backingFormat string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create overlay %s: %w", path, err)
	}
	if backingFormat == FormatISO {
		backingFormat = FormatRaw
	}
	if backingFormat != FormatQcow2 && backingFormat != FormatRaw {
		return fmt.Errorf("create overlay %s: backing format %q is not qcow2, raw or iso", path, backingFormat)
	}
	if !filepath.IsAbs(backing) {
		return fmt.Errorf("create overlay %s: backing file %q is not an absolute path", path, backing)
	}
	backing = filepath.Clean(backing)
	if st, err := os.Stat(backing); err != nil {
		return fmt.Errorf("create overlay %s: %w", path, err)
	} else if !st.Mode().IsRegular() {
		return fmt.Errorf("create overlay %s: backing file %q is not a regular file", path, backing)
	}
	clean, err := s.inBase(path)
	if err != nil {
		return fmt.Errorf("create overlay: %w", err)
	}
	if s.Exists(clean) {
		info, err := ImageInfo(ctx, clean)
		if err != nil {
			return fmt.Errorf("create overlay %s: %w", path, err)
		}
		if info.Format == "qcow2" && info.BackingFilename == backing && info.BackingFormat == backingFormat {
			return nil
		}
	}
	err = writeAtomic(clean, func(tmp string) error {
		return qemuImg(ctx, "create", "-q", "-f", "qcow2", "-F", backingFormat, "-b", backing, tmp)
	})
	if err != nil {
		return fmt.Errorf("create overlay %s: %w", path, err)
	}
	return nil
}

// Info is what qemu-img reports about an image file.
type Info struct {
	Format          string `json:"format"`
	VirtualSize     int64  `json:"virtual-size"`
	BackingFilename string `json:"backing-filename"`
	BackingFormat   string `json:"backing-filename-format"`
}

// ImageInfo runs `qemu-img info` on path. --force-share lets it read an image
// that a running QEMU holds locked.
func ImageInfo(ctx context.Context, path string) (Info, error) {
	out, err := qemuImgOutput(ctx, "info", "--output=json", "--force-share", path)
	if err != nil {
		return Info{}, err
	}
	var info Info
	if err := json.Unmarshal(out, &info); err != nil {
		return Info{}, fmt.Errorf("parse qemu-img info for %s: %w", path, err)
	}
	return info, nil
}

func qemuImg(ctx context.Context, args ...string) error {
	_, err := qemuImgOutput(ctx, args...)
	return err
}

// qemuImgOutput runs qemu-img and returns its stdout; on failure the error
// carries its stderr, which says what went wrong.
func qemuImgOutput(ctx context.Context, args ...string) ([]byte, error) {
	bin, err := exec.LookPath("qemu-img")
	if err != nil {
		return nil, ErrQemuImgMissing
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("qemu-img %s: %s: %w", args[0], strings.TrimSpace(stderr.String()), err)
	}
	return stdout.Bytes(), nil
}

// isNotExist is errors.Is(err, fs.ErrNotExist), named for readability.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
