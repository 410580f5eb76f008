// Package volumes is the host file system as the storage reconciler sees
// it: directories of hostpath volumes, sparse backing files of loop
// devices, and their removal. Creating a file goes through a temporary name
// and a rename, so a crash never leaves a half-made one under its name, and
// an existing file is never truncated.
//
// This package must not import github.com/nodevirt/nodevirt/reconciler:
// the reconciler declares the interface it satisfies.
package volumes

import (
	"errors"
	"fmt"
	"github.com/nodevirt/nodevirt/runtime/atomicfile"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Files works on the host's file system.
type Files struct{}

// Exists reports whether anything exists at path.
func (Files) Exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// MkdirAll creates a directory that QEMU's user can traverse.
func (Files) MkdirAll(path string) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}

// RemoveAll removes a directory tree; a missing one is not an error.
func (Files) RemoveAll(path string) error {
	if path == "" || path == "/" || !filepath.IsAbs(path) {
		return fmt.Errorf("refusing to remove %q", path)
	}
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// Remove removes one file; a missing one is not an error.
func (Files) Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// CreateSparse makes a sparse file of size bytes at path, unless something
// is there already.
func (Files) CreateSparse(path string, size int64) error {
	if _, err := os.Lstat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := atomicfile.Write(path, 0o644, func(f *os.File) error { return f.Truncate(size) }); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}

// Size returns a file's size in bytes.
func (Files) Size(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// HasData reports whether the file at path holds any data: an empty file,
// or a sparse one that is all holes (never written), does not. A file
// system that cannot tell holes from data says it has data.
func (Files) HasData(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	if !st.Mode().IsRegular() {
		return true, nil
	}
	if st.Size() == 0 {
		return false, nil
	}
	_, err = f.Seek(0, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return false, nil
	}
	return true, nil
}

// ReadFile reads a small file.
func (Files) ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Markers are a few hundred bytes; a huge file there is not one.
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// WriteFile replaces path with data atomically: a synced temporary file
// renamed into place, then the directory synced, so a crash leaves the old
// file or the new one, never a part.
func (Files) WriteFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err := atomicfile.Write(path, 0o644, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
