// Package selinux reads SELinux state below a root: whether SELinux is
// enabled (enforcing or permissive, from selinuxfs) and files' labels from
// their security.selinux extended attribute. Hosts without SELinux report
// "disabled"; callers treat label checks there as not applicable, never as
// failures. It does not set labels: the chcon units do, so a label survives
// the way the seed's MachineConfig intends (every boot).
//
// This package must not import nodevirt's reconciler or manifests.
package selinux

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nodevirt/nodevirt/runtime/hostfs"
)

// Modes.
const (
	Enforcing  = "enforcing"
	Permissive = "permissive"
	Disabled   = "disabled"
)

// Host is the SELinux state of a root.
type Host struct {
	root string
	fs   *hostfs.FS
}

// New returns the SELinux state below root.
func New(root string) *Host {
	if root == "" {
		root = "/"
	}
	return &Host{root: root, fs: hostfs.New(root)}
}

// Mode returns enforcing, permissive or disabled. SELinux is enabled when
// selinuxfs is mounted, i.e. <root>/sys/fs/selinux/enforce exists (what
// libselinux's is_selinux_enabled checks).
func (h *Host) Mode() (string, error) {
	b, err := os.ReadFile(filepath.Join(h.root, "sys/fs/selinux/enforce"))
	if errors.Is(err, os.ErrNotExist) {
		return Disabled, nil
	}
	if err != nil {
		return "", fmt.Errorf("read SELinux mode: %w", err)
	}
	if strings.TrimSpace(string(b)) == "1" {
		return Enforcing, nil
	}
	return Permissive, nil
}

// Label returns the security.selinux context of p (not following a final
// symlink), or "" when the file has none. A missing file is an error
// wrapping os.ErrNotExist.
func (h *Host) Label(p string) (string, error) {
	hp, err := h.fs.Path(p)
	if err != nil {
		return "", err
	}
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(hp, "security.selinux", buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, len(buf)*4)
			continue
		case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
			return "", nil
		case errors.Is(err, unix.ENOENT):
			return "", fmt.Errorf("label of %s: %w", p, os.ErrNotExist)
		case err != nil:
			return "", fmt.Errorf("label of %s: %w", p, err)
		}
		return strings.TrimRight(string(buf[:n]), "\x00"), nil
	}
}

// Type returns the type field of a context (user:role:type:level), or "".
func Type(context string) string {
	f := strings.SplitN(context, ":", 4)
	if len(f) < 3 {
		return ""
	}
	return f[2]
}
