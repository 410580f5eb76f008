package loop

import (
	"errors"
	"github.com/nodevirt/nodevirt/internal/testenv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// requireLoops skips unless this process may create loop devices: they need
// root (CAP_SYS_ADMIN) and /dev/loop-control. Under CI=true it fails instead,
// because `make test` runs as root on a host with loop devices.
func requireLoops(t *testing.T) {
	t.Helper()
	missing := ""
	switch {
	case os.Geteuid() != 0:
		missing = "loop device tests run as root"
	default:
		if _, err := os.Stat("/dev/loop-control"); err != nil {
			missing = "/dev/loop-control is missing (no loop driver)"
		}
	}
	if missing == "" {
		return
	}
	testenv.Missing(t, missing)
}

func backingFile(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "backing.img")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

// highDevice returns a loop device number no other test is likely to use,
// and removes the device when the test ends.
func highDevice(t *testing.T, l *Loops) string {
	t.Helper()
	dev := "/dev/loop" + strconv.Itoa(180+rand.IntN(60))
	t.Cleanup(func() {
		_ = l.Detach(dev)
		_ = l.Remove(dev)
	})
	return dev
}

func TestNumber(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  bool
	}{
		{"/dev/loop0", 0, false},
		{"/dev/loop10", 10, false},
		{"/dev/loop-control", 0, true},
		{"/dev/sda", 0, true},
		{"/tmp/loop1", 0, true},
		{"loop1", 0, true},
	} {
		got, err := Number(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("Number(%q) = %d, %v", tc.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrNotLoop) {
			t.Errorf("Number(%q): error %v is not ErrNotLoop", tc.in, err)
		}
	}
}

// A free device, attached without autoclear: it stays attached after every
// descriptor this process had is closed (QEMU closing it must not detach it).
func TestLoops_Attach_staysAttached(t *testing.T) {
	requireLoops(t)
	l := New()
	f := backingFile(t, 8<<20)
	dev, err := l.Attach(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Detach(dev) })
	got, ok, err := l.Backing(dev)
	if err != nil || !ok {
		t.Fatalf("Backing(%s) = %q, %v, %v", dev, got, ok, err)
	}
	want, _ := filepath.EvalSymlinks(f)
	if got != want {
		t.Fatalf("backing file %q, want %q", got, want)
	}
	devs, err := l.Find(f)
	if err != nil || len(devs) != 1 || devs[0] != dev {
		t.Fatalf("Find = %v, %v; want [%s]", devs, err, dev)
	}
	all, err := l.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		if d.Path == dev && d.Autoclear {
			t.Fatalf("%s has autoclear set; a VM volume would vanish when QEMU closes it", dev)
		}
	}
	if err := l.Detach(dev); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := l.Backing(dev); ok {
		t.Fatalf("%s still attached after Detach", dev)
	}
	if devs, _ := l.Find(f); len(devs) != 0 {
		t.Fatalf("Find after detach = %v", devs)
	}
	// Detaching twice is fine.
	if err := l.Detach(dev); err != nil {
		t.Fatalf("second Detach: %v", err)
	}
}

// The PV names its device (local.path: /dev/loopN): AttachAt creates that
// device when the kernel lacks it, is idempotent, and refuses a device that
// holds another file.
func TestLoops_AttachAt(t *testing.T) {
	requireLoops(t)
	l := New()
	dev := highDevice(t, l)
	a, b := backingFile(t, 4<<20), backingFile(t, 4<<20)
	if err := l.AttachAt(dev, a, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := l.AttachAt(dev, a, Options{}); err != nil {
		t.Fatalf("second AttachAt of the same file: %v", err)
	}
	err := l.AttachAt(dev, b, Options{})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("AttachAt of another file: %v, want ErrBusy", err)
	}
	if cur, _, _ := l.Backing(dev); cur == "" {
		t.Fatal("device lost its file after a refused attach")
	}
	if _, err := os.Stat(dev); err != nil {
		t.Fatalf("device node: %v", err)
	}
}

// Kernels before 5.8 lack LOOP_CONFIGURE; the SET_FD + SET_STATUS64 path must
// work as well.
func TestLoops_AttachAt_fallback(t *testing.T) {
	requireLoops(t)
	l := New()
	l.noConfigure = true
	dev := highDevice(t, l)
	f := backingFile(t, 4<<20)
	if err := l.AttachAt(dev, f, Options{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	all, err := l.List()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range all {
		if d.Path == dev {
			found = true
			if !d.ReadOnly {
				t.Errorf("%s is not read-only", dev)
			}
		}
	}
	if !found {
		t.Fatalf("%s not listed: %+v", dev, all)
	}
}

// A backing file unlinked while attached shows as deleted and is not found
// by its old path.
func TestLoops_deletedBacking(t *testing.T) {
	requireLoops(t)
	l := New()
	dev := highDevice(t, l)
	f := backingFile(t, 4<<20)
	if err := l.AttachAt(dev, f, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f); err != nil {
		t.Fatal(err)
	}
	if devs, _ := l.Find(f); len(devs) != 0 {
		t.Fatalf("Find found a deleted backing file: %v", devs)
	}
	all, _ := l.List()
	for _, d := range all {
		if d.Path == dev && !d.Deleted {
			t.Fatalf("%s: want Deleted", dev)
		}
	}
}
