package hostfacts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// DirectIO reports whether the filesystem holding dir supports O_DIRECT,
// the way QEMU opens disks with cache=none. It creates and removes a probe
// file in dir, which must exist. tmpfs answers EINVAL, as QEMU would see.
func DirectIO(dir string) (bool, error) {
	f, err := os.CreateTemp(dir, ".nodevirt-directio-*")
	if err != nil {
		return false, fmt.Errorf("probing O_DIRECT in %s: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	d, err := os.OpenFile(name, os.O_RDWR|syscall.O_DIRECT, 0)
	if errors.Is(err, syscall.EINVAL) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("probing O_DIRECT in %s: %w", dir, err)
	}
	d.Close()
	return true, nil
}

// NoDirectIO returns those of dirs (host paths under root) whose filesystem
// refuses O_DIRECT. A directory that does not exist yet is judged by its
// nearest existing parent, whose filesystem it will be created on.
func NoDirectIO(root string, dirs ...string) ([]string, error) {
	var out []string
	for _, dir := range dirs {
		p := filepath.Join(root, dir)
		for {
			if _, err := os.Stat(p); err == nil || p == filepath.Dir(p) {
				break
			}
			p = filepath.Dir(p)
		}
		ok, err := DirectIO(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			out = append(out, dir)
		}
	}
	return out, nil
}
