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
func Write(path string, perm os.FileMode, fill func(*os.File) error) (err error) {
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
	if err = fill(f); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, perm)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return err
	}
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
