package hostfacts

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// ext4 (this host's root) supports O_DIRECT; ramfs refuses it with EINVAL,
// as QEMU's cache=none would find. (tmpfs supports O_DIRECT since Linux
// 6.6, so it no longer tells the two apart.)
func TestDirectIO(t *testing.T) {
	root := t.TempDir()
	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err != nil {
		t.Fatal(err)
	}
	const ext4 = 0xef53
	if st.Type == ext4 {
		ok, err := DirectIO(root)
		if err != nil || !ok {
			t.Errorf("DirectIO on ext4 = %v, %v; want true", ok, err)
		}
	}

	ram := filepath.Join(root, "ram")
	if err := os.Mkdir(ram, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("ramfs", ram, "ramfs", 0, ""); err != nil {
		t.Skipf("mounting a ramfs needs root: %v", err)
	}
	defer syscall.Unmount(ram, 0)
	ok, err := DirectIO(ram)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Errorf("DirectIO on ramfs = true, want false")
	}
	if left, _ := os.ReadDir(ram); len(left) != 0 {
		t.Errorf("the probe left %d files behind", len(left))
	}

	// A directory not created yet is judged by its parent's filesystem.
	got, err := NoDirectIO(root, "/ram/state/disks", "/var/lib/nodevirt/disks")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "/ram/state/disks" {
		t.Errorf("NoDirectIO = %q, want [/ram/state/disks]", got)
	}
	if _, err := os.Stat(filepath.Join(root, "var")); err == nil {
		t.Errorf("NoDirectIO created directories")
	}
	if _, err := DirectIO(filepath.Join(root, "missing")); err == nil {
		t.Error("DirectIO of a missing directory: want an error")
	}
}
