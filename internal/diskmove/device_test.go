package diskmove_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nodevirt/nodevirt/internal/diskmove"
	"github.com/nodevirt/nodevirt/internal/testenv"
)

// loopDevice attaches a loop device over a zeroed backing file of size
// bytes and returns the device and its backing file.
func loopDevice(t *testing.T, size int64) (dev, backing string) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "loop devices need root")
		return "", ""
	}
	backing = filepath.Join(t.TempDir(), "backing.img")
	if err := os.WriteFile(backing, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, size); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", backing).Output()
	if err != nil {
		testenv.Missing(t, fmt.Sprintf("losetup: %v", err))
		return "", ""
	}
	dev = strings.TrimSpace(string(out))
	if !strings.HasPrefix(dev, "/dev/loop") {
		t.Fatalf("losetup printed %q, not a loop device", dev)
	}
	t.Cleanup(func() { _ = exec.Command("losetup", "--detach", dev).Run() })
	return dev, backing
}

// A block volume is pulled into its device in place, its journal kept in
// the journal directory, and resumed after a cut connection.
func TestPull_intoBlockDeviceResumes(t *testing.T) {
	f := newFixture(t)
	// Whole sectors: a loop device ignores a partial last one.
	dev, backing := loopDevice(t, (int64(len(f.data))/512+8)*512)
	var mu sync.Mutex
	cut := true
	f.setWrap(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		mu.Lock()
		kill := cut && strings.HasSuffix(r.URL.Path, "/chunks/6")
		cut = cut && !kill
		mu.Unlock()
		if kill {
			w.Header().Set("Content-Length", fmt.Sprint(testChunk))
			w.Write(f.data[6*testChunk : 6*testChunk+testChunk/3])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		next.ServeHTTP(w, r)
	})
	client := clientAs(t, f.new, "n2", f.old)
	if err := (&diskmove.Puller{Client: client}).Pull(t.Context(), f.url, "pv-a", dev); err == nil || !strings.Contains(err.Error(), "journal directory") {
		t.Fatalf("a pull into a device without a journal directory: %v", err)
	}
	journals := t.TempDir()
	p := diskmove.Puller{Client: client, JournalDir: journals}
	if err := p.Pull(t.Context(), f.url, "pv-a", dev); err == nil || !strings.Contains(err.Error(), "chunk 6 of 11") {
		t.Fatalf("interrupted pull: %v, want an error at chunk 6", err)
	}
	if entries, _ := os.ReadDir(journals); len(entries) != 1 {
		t.Fatalf("journal directory holds %d entries after the cut, want the journal", len(entries))
	}
	if err := p.Pull(t.Context(), f.url, "pv-a", dev); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(diskmove.PartialPath(dev)); err == nil {
		t.Errorf("a partial file was made beside the device")
	}
	if entries, _ := os.ReadDir(journals); len(entries) != 0 {
		t.Errorf("the journal outlived the pull: %v", entries)
	}
	if out, err := exec.Command("sync").CombinedOutput(); err != nil {
		t.Fatalf("sync: %v: %s", err, out)
	}
	got, err := os.ReadFile(backing)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(f.data)], f.data) {
		t.Fatal("the device's backing file differs from the served disk")
	}
}
