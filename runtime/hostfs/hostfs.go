// Package hostfs reads and writes host files below a root directory ("/" is
// the real host; tests and containers pass another): atomic writes with mode
// and owner, symlinks, user and group lookups in the root's own /etc/passwd
// and /etc/group, and a command runner that runs host tools inside the root
// (chroot when the root is not "/").
//
// Paths are resolved inside the root: a symlink in the tree never leads out
// of it. This package must not import nodevirt's reconciler or manifests.
package hostfs

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// FS is the host's file system below Root.
type FS struct {
	root string
}

// New returns the file system below root.
func New(root string) *FS {
	if root == "" {
		root = "/"
	}
	return &FS{root: filepath.Clean(root)}
}

// Root returns the root directory.
func (f *FS) Root() string { return f.root }

// Path returns where the host path p is on this machine. Symlinks in the
// directories of p are resolved inside the root; the last element is not
// followed, so Lstat and Readlink see links themselves.
func (f *FS) Path(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("host path %q is not absolute", p)
	}
	p = path.Clean(p)
	if f.root == "/" {
		return p, nil
	}
	dir, base := path.Split(p)
	d, err := securejoin.SecureJoin(f.root, dir)
	if err != nil {
		return "", fmt.Errorf("resolve %s under %s: %w", p, f.root, err)
	}
	if base == "" {
		return d, nil
	}
	return filepath.Join(d, base), nil
}

// Lstat describes p without following a final symlink.
func (f *FS) Lstat(p string) (fs.FileInfo, error) {
	hp, err := f.Path(p)
	if err != nil {
		return nil, err
	}
	return os.Lstat(hp)
}

// ReadFile reads p, following symlinks inside the root.
func (f *FS) ReadFile(p string) ([]byte, error) {
	hp, err := f.resolved(p)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(hp)
}

// ReadDir lists the directory p.
func (f *FS) ReadDir(p string) ([]fs.DirEntry, error) {
	hp, err := f.resolved(p)
	if err != nil {
		return nil, err
	}
	return os.ReadDir(hp)
}

// resolved follows every symlink of p inside the root.
func (f *FS) resolved(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("host path %q is not absolute", p)
	}
	if f.root == "/" {
		return path.Clean(p), nil
	}
	return securejoin.SecureJoin(f.root, p)
}

// Readlink returns the target of the symlink p.
func (f *FS) Readlink(p string) (string, error) {
	hp, err := f.Path(p)
	if err != nil {
		return "", err
	}
	return os.Readlink(hp)
}

// WriteFile replaces p atomically (a temporary file in the same directory,
// synced, then renamed over p) with data, mode and owner. Parent
// directories are created 0755. The mode is set explicitly, so the umask
// does not matter; setuid, setgid and sticky bits are kept.
func (f *FS) WriteFile(p string, data []byte, mode fs.FileMode, uid, gid int) error {
	hp, err := f.Path(p)
	if err != nil {
		return err
	}
	dir := filepath.Dir(hp)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(hp)+".nodevirt-")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Lchown(tmp.Name(), uid, gid); err != nil {
		return fmt.Errorf("chown %s to %d:%d: %w", p, uid, gid, err)
	}
	// chmod after chown: chown clears setuid and setgid.
	if err := os.Chmod(tmp.Name(), mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), hp); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	done = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil // best effort: the rename itself succeeded
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}

// Symlink makes p a symlink to target, replacing what is there atomically.
func (f *FS) Symlink(target, p string) error {
	hp, err := f.Path(p)
	if err != nil {
		return err
	}
	dir := filepath.Dir(hp)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("symlink %s: %w", p, err)
	}
	tmp := filepath.Join(dir, "."+filepath.Base(hp)+".nodevirt-"+randSuffix())
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("symlink %s: %w", p, err)
	}
	if err := os.Rename(tmp, hp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("symlink %s: %w", p, err)
	}
	return nil
}

func randSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Remove deletes the file or symlink p; a missing p is not an error.
func (f *FS) Remove(p string) error {
	hp, err := f.Path(p)
	if err != nil {
		return err
	}
	if err := os.Remove(hp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// RemoveEmptyDir removes the directory p if it is empty (drop-in
// directories nodevirt created); anything else is left alone.
func (f *FS) RemoveEmptyDir(p string) error {
	hp, err := f.Path(p)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(hp)
	if err != nil || len(ents) > 0 {
		return nil
	}
	return os.Remove(hp)
}

// MkdirAll creates the directory p and its parents.
func (f *FS) MkdirAll(p string, mode fs.FileMode) error {
	hp, err := f.resolved(p)
	if err != nil {
		return err
	}
	return os.MkdirAll(hp, mode)
}

// Owner resolves user and group names (or decimal ids) through the root's
// /etc/passwd and /etc/group; "" is root (0). A user's primary group is not
// implied: an unset group is root, as in Ignition.
func (f *FS) Owner(user, group string) (uid, gid int, err error) {
	if uid, err = f.lookup("/etc/passwd", user); err != nil {
		return 0, 0, fmt.Errorf("user %q: %w", user, err)
	}
	if gid, err = f.lookup("/etc/group", group); err != nil {
		return 0, 0, fmt.Errorf("group %q: %w", group, err)
	}
	return uid, gid, nil
}

// ErrUnknownName: a user or group the root's database does not list.
var ErrUnknownName = errors.New("not found")

func (f *FS) lookup(db, name string) (int, error) {
	if name == "" || name == "root" {
		return 0, nil
	}
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	data, err := f.ReadFile(db)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", db, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 3 && fields[0] == name {
			return strconv.Atoi(fields[2])
		}
	}
	return 0, fmt.Errorf("%w in %s", ErrUnknownName, db)
}
