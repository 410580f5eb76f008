package hostfs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestFS_WriteFile_modeOwnerAtomic(t *testing.T) {
	root := t.TempDir()
	f := New(root)
	if err := f.WriteFile("/etc/modprobe.d/vfio.conf", []byte("options vfio-pci ids=10de:1eb8\n"), 0o640|fs.ModeSetgid, 0, 0); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(root, "etc/modprobe.d/vfio.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&(fs.ModePerm|fs.ModeSetgid) != 0o640|fs.ModeSetgid {
		t.Errorf("mode = %v", st.Mode())
	}
	// Replacing leaves no temporary files behind.
	if err := f.WriteFile("/etc/modprobe.d/vfio.conf", []byte("x"), 0o644, 0, 0); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(root, "etc/modprobe.d"))
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(ents))
	}
	if os.Geteuid() == 0 {
		if err := f.WriteFile("/etc/owned", nil, 0o600, 1234, 5678); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Lstat(filepath.Join(root, "etc/owned"))
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid != 1234 || sys.Gid != 5678 {
			t.Errorf("owner = %d:%d", sys.Uid, sys.Gid)
		}
	}
}

// A symlink in the tree never leads out of the root.
func TestFS_symlinksStayInRoot(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "etc/escape")); err != nil {
		t.Fatal(err)
	}
	f := New(root)
	if err := f.WriteFile("/etc/escape/x", []byte("x"), 0o644, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "x")); err == nil {
		t.Fatal("write followed a symlink out of the root")
	}
	if _, err := os.Stat(filepath.Join(root, outside, "x")); err != nil {
		t.Errorf("want the file inside the root: %v", err)
	}
	// Lstat and Readlink see a final symlink itself.
	if err := f.Symlink("/dev/null", "/etc/systemd/system/x.service"); err != nil {
		t.Fatal(err)
	}
	st, err := f.Lstat("/etc/systemd/system/x.service")
	if err != nil || st.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("lstat = %v, %v", st, err)
	}
	if target, _ := f.Readlink("/etc/systemd/system/x.service"); target != "/dev/null" {
		t.Errorf("target = %q", target)
	}
	if err := f.Remove("/etc/systemd/system/x.service"); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove("/etc/systemd/system/x.service"); err != nil {
		t.Errorf("removing a missing file: %v", err)
	}
}

func TestFS_Owner(t *testing.T) {
	root := t.TempDir()
	f := New(root)
	_ = f.WriteFile("/etc/passwd", []byte("root:x:0:0::/root:/bin/sh\ncore:x:1000:1000::/home/core:/bin/bash\n"), 0o644, 0, 0)
	_ = f.WriteFile("/etc/group", []byte("root:x:0:\nkvm:x:36:qemu\n"), 0o644, 0, 0)
	uid, gid, err := f.Owner("core", "kvm")
	if err != nil || uid != 1000 || gid != 36 {
		t.Errorf("Owner(core, kvm) = %d, %d, %v", uid, gid, err)
	}
	if uid, gid, err := f.Owner("", "42"); err != nil || uid != 0 || gid != 42 {
		t.Errorf("Owner(\"\", 42) = %d, %d, %v", uid, gid, err)
	}
	if _, _, err := f.Owner("nobody-here", ""); !errors.Is(err, ErrUnknownName) {
		t.Errorf("unknown user: %v", err)
	}
}

func TestExec_runsToolsOfTheRoot(t *testing.T) {
	root := t.TempDir()
	f := New(root)
	if err := f.WriteFile("/usr/sbin/update-grub", []byte("#!/bin/sh\n"), 0o755, 0, 0); err != nil {
		t.Fatal(err)
	}
	e := Exec{Root: root}
	if !e.Has("update-grub") || e.Has("grubby") {
		t.Errorf("Has: update-grub %v, grubby %v", e.Has("update-grub"), e.Has("grubby"))
	}
	if _, err := e.Run(context.Background(), "grubby"); err == nil {
		t.Error("running a missing tool must fail")
	}
	host := Exec{Root: "/"}
	out, err := host.Run(context.Background(), "sh", "-c", "echo ok")
	if err != nil || string(out) != "ok\n" {
		t.Errorf("run on / = %q, %v", out, err)
	}
	if _, err := host.Run(context.Background(), "sh", "-c", "echo boom >&2; exit 3"); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("want the tool's stderr in the error, got %v", err)
	}
}
