package volumes

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestFiles_CreateSparse(t *testing.T) {
	var f Files
	p := filepath.Join(t.TempDir(), "blockpv", "pv.img")
	if err := f.CreateSparse(p, 64<<20); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Size() != 64<<20 {
		t.Fatalf("stat %v %v", st, err)
	}
	if blocks := st.Sys().(*syscall.Stat_t).Blocks; blocks*512 > 1<<20 {
		t.Errorf("%d bytes allocated; want sparse", blocks*512)
	}
	// Never truncates what is there.
	if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.CreateSparse(p, 64<<20); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "data" {
		t.Fatalf("existing file changed: %q", b)
	}
	if n, err := f.Size(p); err != nil || n != 4 {
		t.Fatalf("Size = %d, %v", n, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Fatalf("leftovers: %v", entries)
	}
}

func TestFiles_RemoveAllRefusesRoot(t *testing.T) {
	var f Files
	for _, p := range []string{"", "/", "relative/dir"} {
		if err := f.RemoveAll(p); err == nil {
			t.Errorf("RemoveAll(%q) accepted", p)
		}
	}
	d := filepath.Join(t.TempDir(), "pvc-x")
	_ = f.MkdirAll(d)
	if err := f.RemoveAll(d); err != nil || f.Exists(d) {
		t.Fatalf("RemoveAll: %v", err)
	}
}
