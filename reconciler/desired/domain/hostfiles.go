package domain

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// ErrHostFileNotAllowed marks a hostDisk path or local containerDisk image
// outside the directories the operator allows (--allowed-host-dirs).
var ErrHostFileNotAllowed = errors.New("host file not allowed")

// hostFile maps a host file named in a manifest (hostDisk.path, a local
// containerDisk image) to where it is on this machine. Pushing to the
// repository must not hand a VM any host file (/etc/shadow read-write, a
// block device as a backing image), so the file must lie under one of
// ctx.HostDirs, which name directories on the host as seen under ctx.Root.
// Symlinks are resolved inside the root (as for host configuration files)
// and the result must still be under the resolved allowed directory, so a
// link cannot lead out of it.
func hostFile(ctx Context, p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%w: %q is not an absolute path under a directory of --allowed-host-dirs", ErrHostFileNotAllowed, p)
	}
	if len(ctx.HostDirs) == 0 {
		return "", fmt.Errorf("%w: %s is not under a directory of --allowed-host-dirs (none is set); start nodevirt with --allowed-host-dirs naming the directory that holds it", ErrHostFileNotAllowed, p)
	}
	clean := path.Clean(p)
	root := ctx.Root
	if root == "" {
		root = "/"
	}
	for _, dir := range ctx.HostDirs {
		if !path.IsAbs(dir) {
			continue // a flag value the command line checks; never matches
		}
		dir = path.Clean(dir)
		if dir == "/" || !below(clean, dir) {
			continue
		}
		realDir, err := securejoin.SecureJoin(root, dir)
		if err != nil {
			return "", fmt.Errorf("%w: resolve allowed directory %s under %s: %w", ErrHostFileNotAllowed, dir, root, err)
		}
		real, err := securejoin.SecureJoin(root, clean)
		if err != nil {
			return "", fmt.Errorf("%w: resolve %s under %s: %w", ErrHostFileNotAllowed, p, root, err)
		}
		if !below(real, realDir) {
			return "", fmt.Errorf("%w: %s leads through a symlink to %s, outside %s of --allowed-host-dirs", ErrHostFileNotAllowed, p, real, dir)
		}
		return real, nil
	}
	return "", fmt.Errorf("%w: %s is not under a directory of --allowed-host-dirs (%s); add the directory that holds it to --allowed-host-dirs", ErrHostFileNotAllowed, p, strings.Join(ctx.HostDirs, ", "))
}

// below reports whether p is strictly inside dir; both clean and absolute.
func below(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// localImage maps a containerDisk image that names a host file or OCI
// layout directory (file:///p, /p, oci:/dir[:tag], as runtime/disks reads
// them) through hostFile; a registry reference is returned as it is: it
// reads nothing from the host.
func localImage(ctx Context, image string) (string, error) {
	switch {
	case strings.HasPrefix(image, "file://"):
		p, err := hostFile(ctx, strings.TrimPrefix(image, "file://"))
		return "file://" + p, err
	case strings.HasPrefix(image, "/"):
		return hostFile(ctx, image)
	case strings.HasPrefix(image, "oci:"):
		// The tag is whatever follows the last ':' unless it holds a '/'
		// (runtime/disks splits the same way).
		dir, tag := strings.TrimPrefix(image, "oci:"), ""
		if i := strings.LastIndex(dir, ":"); i >= 0 && !strings.Contains(dir[i+1:], "/") {
			dir, tag = dir[:i], dir[i:]
		}
		p, err := hostFile(ctx, dir)
		return "oci:" + p + tag, err
	}
	return image, nil
}
