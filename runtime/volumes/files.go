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
	"os"
	"path/filepath"
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
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tmp := f.Name()
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
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
