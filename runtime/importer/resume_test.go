package importer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rangeServer serves one file with http.ServeContent (Range, If-Range),
// slowly, counting the body bytes it sends.
type rangeServer struct {
	*httptest.Server
	data    atomic.Pointer[[]byte]
	etag    atomic.Value
	noRange bool
	served  atomic.Int64
	active  sync.WaitGroup
}

// reset waits for the responses in flight to end and zeroes the count.
func (s *rangeServer) reset() {
	s.active.Wait()
	s.served.Store(0)
}

func newRangeServer(t *testing.T, data []byte, noRange bool) *rangeServer {
	s := &rangeServer{noRange: noRange}
	s.data.Store(&data)
	s.etag.Store(`"v1"`)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.active.Add(1)
		defer s.active.Done()
		cw := &countingWriter{ResponseWriter: w, n: &s.served}
		b := *s.data.Load()
		if s.noRange {
			w.Header().Set("Content-Length", itoa(len(b)))
			_, _ = io.Copy(cw, &slowReader{r: bytes.NewReader(b)})
			return
		}
		w.Header().Set("ETag", s.etag.Load().(string))
		http.ServeContent(cw, r, "disk", time.Unix(1700000000, 0), &slowReader{r: bytes.NewReader(b)})
	}))
	t.Cleanup(s.Close)
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// slowReader paces reads so a test can cancel an import midway.
type slowReader struct{ r *bytes.Reader }

func (s *slowReader) Read(b []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	return s.r.Read(b[:min(len(b), 32<<10)])
}

func (s *slowReader) Seek(off int64, whence int) (int64, error) { return s.r.Seek(off, whence) }

// importHalf imports until about half the source arrived, then cancels as
// the agent stopping would; it returns how many bytes were kept.
func importHalf(t *testing.T, url, target string, size int64) int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := New(Config{}).Import(ctx, Request{Source: Source{Kind: HTTP, URL: url}, Target: Target{Path: target, Size: size},
		// The download is the first half of the progress.
		Progress: func(p float64) {
			if p >= 25 {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted import: err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(target); err == nil {
		t.Fatal("an interrupted import left a disk")
	}
	data, _ := DownloadNames(target)
	st, err := os.Stat(data)
	if err != nil {
		t.Fatalf("an interrupted import must keep what it downloaded: %v", err)
	}
	return st.Size()
}

// noise is an image that does not compress, so a compressed source is as
// long as the raw one and can be interrupted midway.
func noise(size int) []byte {
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(b)
	return b
}

// An interrupted import resumes with a Range request: the second run fetches
// only the rest, and the disk is the same as from an uninterrupted import,
// for raw, gz, xz and qcow2 sources.
func TestImport_resumesWithRange(t *testing.T) {
	raw := noise(6 * mib)
	cases := map[string][]byte{"raw": raw, "gz": gz(t, raw), "xz": xzData(t, raw)}
	if _, err := os.Stat("/usr/bin/qemu-img"); err == nil {
		cases["qcow2"] = qcow2Of(t, raw)
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			s := newRangeServer(t, src, false)
			dir := t.TempDir()
			target := filepath.Join(dir, "disk.img")
			kept := importHalf(t, s.URL+"/disk", target, 8*mib)
			if kept == 0 || kept >= int64(len(src)) {
				t.Fatalf("kept %d of %d bytes: the interruption missed the middle", kept, len(src))
			}
			s.reset()
			res, err := New(Config{}).Import(context.Background(), Request{Source: Source{Kind: HTTP, URL: s.URL + "/disk"}, Target: Target{Path: target, Size: 8 * mib}})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := s.served.Load(), int64(len(src))-kept; got != want {
				t.Fatalf("the resumed import fetched %d bytes, want only the remaining %d of %d", got, want, len(src))
			}
			if res.Transferred != int64(len(src))-kept {
				t.Errorf("Transferred = %d, want %d", res.Transferred, int64(len(src))-kept)
			}
			got := readN(t, target, 8*mib)
			if !bytes.Equal(got[:len(raw)], raw) || !bytes.Equal(got[len(raw):], make([]byte, 8*mib-len(raw))) {
				t.Fatal("the resumed disk differs from the image")
			}
			noLeftovers(t, dir, "disk.img")
		})
	}
}

// A server without Range support, or a file whose ETag changed, restarts the
// download from zero and still yields the right disk.
func TestImport_resumeRestartsFromZero(t *testing.T) {
	raw := noise(6 * mib)
	t.Run("no range support", func(t *testing.T) {
		s := newRangeServer(t, raw, true)
		dir := t.TempDir()
		target := filepath.Join(dir, "disk.img")
		importHalf(t, s.URL+"/disk", target, 8*mib)
		s.reset()
		if _, err := New(Config{}).Import(context.Background(), Request{Source: Source{Kind: HTTP, URL: s.URL + "/disk"}, Target: Target{Path: target, Size: 8 * mib}}); err != nil {
			t.Fatal(err)
		}
		if got := s.served.Load(); got != int64(len(raw)) {
			t.Fatalf("served %d bytes, want the whole %d", got, len(raw))
		}
		if got := readN(t, target, len(raw)); !bytes.Equal(got, raw) {
			t.Fatal("disk differs from the image")
		}
	})
	t.Run("changed etag", func(t *testing.T) {
		s := newRangeServer(t, raw, false)
		dir := t.TempDir()
		target := filepath.Join(dir, "disk.img")
		importHalf(t, s.URL+"/disk", target, 8*mib)
		changed := rawImage(5 * mib)
		for i := range changed {
			changed[i] ^= 0x5a
		}
		s.data.Store(&changed)
		s.etag.Store(`"v2"`)
		s.reset()
		if _, err := New(Config{}).Import(context.Background(), Request{Source: Source{Kind: HTTP, URL: s.URL + "/disk"}, Target: Target{Path: target, Size: 8 * mib}}); err != nil {
			t.Fatal(err)
		}
		if got := s.served.Load(); got != int64(len(changed)) {
			t.Fatalf("served %d bytes, want the whole changed file's %d", got, len(changed))
		}
		got := readN(t, target, 8*mib)
		if !bytes.Equal(got[:len(changed)], changed) || !bytes.Equal(got[len(changed):], make([]byte, 8*mib-len(changed))) {
			t.Fatal("disk is not the changed image")
		}
		noLeftovers(t, dir, "disk.img")
	})
}
