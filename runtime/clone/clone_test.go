package clone

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// sparseFile writes a 64 MiB file with 1 MiB of data at 8 MiB and 4 KiB at
// its very end, the rest holes.
func sparseFile(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := bytes.Repeat([]byte("nodevirt"), 1<<17)
	if _, err := f.WriteAt(data, 8<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data[:4096], 64<<20-4096); err != nil {
		t.Fatal(err)
	}
	return data
}

func allocated(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

func TestFile_copyKeepsBytesAndHoles(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "disk.img"), filepath.Join(dir, "snap.img")
	sparseFile(t, src)
	m, err := File(context.Background(), dst, src)
	if err != nil {
		t.Fatal(err)
	}
	if m != Reflink && m != Copy {
		t.Fatalf("method %q", m)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	if !bytes.Equal(a, b) {
		t.Fatal("copy differs from the source")
	}
	// Either way the copy must not allocate the holes: 64 MiB logical,
	// about 1 MiB of data.
	if got := allocated(t, dst); m == Copy && got > 4<<20 {
		t.Errorf("sparse copy allocated %d bytes, want about 1 MiB", got)
	}
	if fi, _ := os.Stat(dst); fi.Size() != 64<<20 {
		t.Errorf("size %d", fi.Size())
	}
	t.Logf("method %s, %d bytes allocated", m, allocated(t, dst))
}

func TestFile_replacesAtomicallyKeepingMode(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "snap.img"), filepath.Join(dir, "disk.img")
	if err := os.WriteFile(src, []byte("original bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, []byte("garbage garbage garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := File(context.Background(), dst, src); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "original bytes" {
		t.Errorf("dst %q", b)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want the old 0644", fi.Mode().Perm())
	}
	// A cancelled copy leaves the old file and no temporary one.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	big := filepath.Join(dir, "big.img")
	sparseFile(t, big)
	if _, err := File(ctx, dst, big); err == nil {
		// A reflink does not look at ctx; only the byte copy stops.
		t.Log("copy finished before it saw the cancel (reflink)")
	} else if b, _ := os.ReadFile(dst); string(b) != "original bytes" {
		t.Errorf("a failed copy changed dst: %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 {
		t.Errorf("entries %v, want the three files only", ents)
	}
}

func TestFile_missingSource(t *testing.T) {
	dir := t.TempDir()
	if _, err := File(context.Background(), filepath.Join(dir, "d"), filepath.Join(dir, "nope")); err == nil {
		t.Fatal("copy of a missing file succeeded")
	}
}

// fromDevice reads a device whole; the chunks of zeros stay holes. A
// regular file stands in for the device: the read is the same.
func TestFromDevice_leavesZeroChunksAsHoles(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "dev")
	f, err := os.Create(dev)
	if err != nil {
		t.Fatal(err)
	}
	// A device reads its zeros back as data: write them out, allocated.
	if _, err := f.Write(make([]byte, 16<<20)); err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("block data"), 5<<20)
	f.Close()
	in, _ := os.Open(dev)
	defer in.Close()
	out, _ := os.Create(filepath.Join(dir, "copy"))
	if err := fromDevice(context.Background(), out, in); err != nil {
		t.Fatal(err)
	}
	out.Close()
	a, _ := os.ReadFile(dev)
	b, _ := os.ReadFile(out.Name())
	if !bytes.Equal(a, b) {
		t.Fatal("copy differs")
	}
	if got := allocated(t, out.Name()); got > 2<<20 {
		t.Errorf("copy allocated %d bytes, want one 1 MiB chunk", got)
	}
}

func TestToDevice_writesWholeAndRefusesTooLarge(t *testing.T) {
	dir := t.TempDir()
	dev, src := filepath.Join(dir, "dev"), filepath.Join(dir, "snap.img")
	os.WriteFile(dev, bytes.Repeat([]byte{0xee}, 4<<20), 0o600)
	want := make([]byte, 2<<20)
	copy(want[1<<20:], "restored")
	os.WriteFile(src, want, 0o600)
	if err := ToDevice(context.Background(), dev, src); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dev)
	if !bytes.Equal(got[:len(want)], want) || got[len(want)] != 0xee {
		t.Fatal("the device does not hold the source, zeros included, followed by what was there")
	}
	os.WriteFile(src, make([]byte, 8<<20), 0o600)
	if err := ToDevice(context.Background(), dev, src); err == nil {
		t.Fatal("a source larger than the device was written")
	}
}
