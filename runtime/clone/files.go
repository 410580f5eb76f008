package clone

import (
	"context"
	"os"
	"path/filepath"

	"github.com/nodevirt/nodevirt/runtime/atomicfile"
)

// Files is the host side of snapshots: copies plus the few directory
// operations a content needs, each durable when it returns.
type Files struct{}

// Copy is File with the method as text.
func (Files) Copy(ctx context.Context, dst, src string) (string, error) {
	m, err := File(ctx, dst, src)
	return string(m), err
}

// ToDevice writes src over the block device dst.
func (Files) ToDevice(ctx context.Context, dst, src string) error { return ToDevice(ctx, dst, src) }

// Exists reports whether path exists.
func (Files) Exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// MkdirAll makes path and its parents, private to root.
func (Files) MkdirAll(path string) error { return os.MkdirAll(path, 0o700) }

// RemoveAll removes path and what it holds; a missing path is no error.
func (Files) RemoveAll(path string) error { return os.RemoveAll(path) }

// WriteFile replaces path atomically.
func (Files) WriteFile(path string, data []byte) error {
	return atomicfile.Write(path, 0o600, func(f *os.File) error { _, err := f.Write(data); return err })
}

// Rename renames from to to and syncs to's directory, so the rename
// survives a crash.
func (Files) Rename(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(to))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Glob lists the paths matching pattern (filepath.Glob).
func (Files) Glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }
