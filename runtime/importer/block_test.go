package importer

import (
	"bytes"
	"context"
	"github.com/nodevirt/nodevirt/internal/testenv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/nodevirt/nodevirt/runtime/loop"
)

// loopDevice attaches a fresh sparse file of size bytes to a loop device
// and detaches and removes it when the test ends.
func loopDevice(t *testing.T, size int64) (dev, backing string) {
	t.Helper()
	requireRoot(t, "loop devices")
	backing = filepath.Join(t.TempDir(), "block.img")
	if err := os.WriteFile(backing, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, size); err != nil {
		t.Fatal(err)
	}
	l := loop.New()
	dev = "/dev/loop" + strconv.Itoa(120+rand.IntN(50))
	if err := l.AttachAt(dev, backing, loop.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = l.Detach(dev)
		_ = l.Remove(dev)
	})
	return dev, backing
}

// A block PV (a loop device) is written in place: raw streams straight in,
// qcow2 goes through scratch space; old content never shows through.
func TestImport_blockTarget(t *testing.T) {
	requireQemuImg(t)
	raw := rawImage(4 * mib)
	srv := newImageServer(t, false)
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"raw.xz", xzData(t, raw)},
		{"qcow2", qcow2Of(t, raw)},
	} {
		t.Run(c.name, func(t *testing.T) {
			dev, _ := loopDevice(t, 8*mib)
			// Garbage where the image has zeros must be gone afterwards.
			f, err := os.OpenFile(dev, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = f.WriteAt(bytes.Repeat([]byte{0xAB}, mib), mib)
			f.Close()
			res, err := New(Config{}).Import(context.Background(), Request{
				Source:  Source{Kind: HTTP, URL: srv.put("d."+c.name, c.data)},
				Target:  Target{Path: dev, Block: true},
				Scratch: filepath.Join(t.TempDir(), "scratch"),
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := readN(t, dev, len(raw)); !bytes.Equal(got, raw) {
				t.Errorf("device content differs from the image (format %s)", res.Format)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		dev, _ := loopDevice(t, 2*mib)
		_, err := New(Config{}).Import(context.Background(), Request{
			Source: Source{Kind: HTTP, URL: srv.put("big.raw", raw)}, Target: Target{Path: dev, Block: true},
		})
		if err == nil {
			t.Fatal("a 4 MiB image fit a 2 MiB device")
		}
	})
}

// Clones between files of a copy-on-write file system are reflinks (FICLONE):
// an XFS with reflink=1 on a loop device here.
func TestImport_cloneReflink(t *testing.T) {
	requireRoot(t, "mounting a test file system")
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		testenv.Missing(t, "mkfs.xfs is not installed; `make test` installs xfsprogs")
	}
	dev, _ := loopDevice(t, 320*mib)
	if msg, err := exec.Command("mkfs.xfs", "-q", "-f", "-m", "reflink=1", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v %s", err, msg)
	}
	mnt := t.TempDir()
	if msg, err := exec.Command("mount", "-t", "xfs", dev, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount xfs here: %v %s", err, msg)
	}
	t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
	src := writeFile(t, mnt, "src.img", rawImage(8*mib))
	target := filepath.Join(mnt, "pvc-b", "disk.img")
	res, err := New(Config{}).Import(context.Background(), Request{
		Source: Source{Kind: Clone, Path: src}, Target: Target{Path: target, Size: 16 * mib},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Clone != "reflink" {
		t.Fatalf("clone method %q, want reflink on XFS", res.Clone)
	}
	if !bytes.Equal(readN(t, target, 8*mib), rawImage(8*mib)) {
		t.Error("reflinked clone differs")
	}
	if st, _ := os.Stat(target); st.Size() != 16*mib {
		t.Errorf("clone is %d bytes, want %d", st.Size(), 16*mib)
	}
}
