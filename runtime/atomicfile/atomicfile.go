// Package atomicfile replaces a file so that a crash leaves either the old
// file or the whole new one, never a part: the content goes to a temporary
// file beside it, is synced, renamed over the target, and the directory is
// synced so the rename itself survives a power loss.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write fills a temporary file beside path with fill and renames it over
// path with mode perm. The temporary file never outlives a failure.
func Write(path string, perm os.FileMode, fill func(*os.File) error) error {
	return WritePath(path, perm, func(tmp string) error {
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return err
		}
		err = fill(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// WritePath is Write for content a tool writes by path (qemu-img, an
// extractor): fill gets the temporary file's name and may rewrite it.
func WritePath(path string, perm os.FileMode, fill func(tmp string) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Close(); err != nil {
		return err
	}
	if err = fill(tmp); err != nil {
		return err
	}
	if err = syncPath(tmp); err != nil {
		return err
	}
	if err = os.Chmod(tmp, perm); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncPath(dir)
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
