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
	if err := replace(path, func(f *os.File) error { return f.Truncate(size) }); err != nil {
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
	err := replace(path, func(f *os.File) error {
		if _, err := f.Write(data); err != nil {
			return err
		}
		return f.Sync()
	})
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// replace fills a temporary file beside path with fill and renames it over
// path (mode 0644); the temporary file never outlives a failure.
func replace(path string, fill func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = fill(f)
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
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
