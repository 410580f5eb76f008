package selinux

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestHost_Mode(t *testing.T) {
	root := t.TempDir()
	h := New(root)
	if m, err := h.Mode(); err != nil || m != Disabled {
		t.Errorf("no selinuxfs: %q, %v", m, err)
	}
	if err := os.MkdirAll(filepath.Join(root, "sys/fs/selinux"), 0o755); err != nil {
		t.Fatal(err)
	}
	for content, want := range map[string]string{"1": Enforcing, "0": Permissive} {
		if err := os.WriteFile(filepath.Join(root, "sys/fs/selinux/enforce"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if m, _ := h.Mode(); m != want {
			t.Errorf("enforce %s: %q, want %q", content, m, want)
		}
	}
}

// Labels are read from the security.selinux extended attribute. Setting it
// needs root and a file system that keeps security xattrs (ext4, xfs,
// tmpfs), even without SELinux enabled.
func TestHost_Label(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "var/hpvolumes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := New(root)
	if l, err := h.Label("/var/hpvolumes"); err != nil {
		t.Fatal(err)
	} else if l != "" {
		t.Skipf("the file system labels files itself (%q)", l)
	}
	if _, err := h.Label("/var/missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing path: %v", err)
	}
	const ctx = "system_u:object_r:container_file_t:s0"
	if err := unix.Lsetxattr(dir, "security.selinux", []byte(ctx+"\x00"), 0); err != nil {
		t.Skipf("cannot set security.selinux here: %v", err)
	}
	l, err := h.Label("/var/hpvolumes")
	if err != nil || l != ctx {
		t.Fatalf("label = %q, %v", l, err)
	}
	if Type(l) != "container_file_t" || Type("garbage") != "" {
		t.Errorf("Type(%q) = %q", l, Type(l))
	}
}
