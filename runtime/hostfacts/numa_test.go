package hostfacts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNUMANodes(t *testing.T) {
	t.Run("two nodes, one memory-only", func(t *testing.T) {
		root := tree(t, map[string]string{
			"sys/devices/system/node/node0/cpulist": "0-3,8-11\n",
			"sys/devices/system/node/node1/cpulist": "4-7,12-15\n",
			"sys/devices/system/node/node2/cpulist": "\n",
			"sys/devices/system/node/possible":      "0-2\n",
		})
		got, err := NUMANodes(root)
		if err != nil {
			t.Fatal(err)
		}
		want := []NUMANode{{0, []uint{0, 1, 2, 3, 8, 9, 10, 11}}, {1, []uint{4, 5, 6, 7, 12, 13, 14, 15}}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("NUMANodes (-want +got):\n%s", diff)
		}
	})
	t.Run("no NUMA in the kernel: one node of the online CPUs", func(t *testing.T) {
		root := tree(t, map[string]string{"sys/devices/system/cpu/online": "0-1\n"})
		got, err := NUMANodes(root)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]NUMANode{{0, []uint{0, 1}}}, got); diff != "" {
			t.Errorf("NUMANodes (-want +got):\n%s", diff)
		}
	})
	t.Run("a bad cpulist names its file", func(t *testing.T) {
		root := tree(t, map[string]string{"sys/devices/system/node/node0/cpulist": "0-x\n"})
		if _, err := NUMANodes(root); err == nil || !strings.Contains(err.Error(), "node0/cpulist") {
			t.Errorf("err = %v, want it to name node0/cpulist", err)
		}
	})
	t.Run("this host", func(t *testing.T) {
		nodes, err := NUMANodes("/")
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) == 0 || len(nodes[0].CPUs) == 0 {
			t.Errorf("NUMANodes(/) = %v, want at least one node with CPUs", nodes)
		}
	})
}

func TestVirtiofsd(t *testing.T) {
	root := t.TempDir()
	if got := Virtiofsd(root); got != "" {
		t.Errorf("Virtiofsd(empty root) = %q, want \"\"", got)
	}
	write := func(p string, mode os.FileMode) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("usr/libexec/virtiofsd", 0o644)
	if got := Virtiofsd(root); got != "" {
		t.Errorf("Virtiofsd with a non-executable file = %q, want \"\"", got)
	}
	write("usr/lib/qemu/virtiofsd", 0o755)
	if got := Virtiofsd(root); got != "/usr/lib/qemu/virtiofsd" {
		t.Errorf("Virtiofsd = %q, want QEMU's /usr/lib/qemu/virtiofsd", got)
	}
	if err := os.Chmod(filepath.Join(root, "usr/libexec/virtiofsd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := Virtiofsd(root); got != "/usr/libexec/virtiofsd" {
		t.Errorf("Virtiofsd = %q, want the preferred /usr/libexec/virtiofsd", got)
	}
}
