package importer

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"github.com/nodevirt/nodevirt/internal/testenv"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdomanski/iso9660"
	"github.com/ulikunitz/xz"
)

// requireQemuImg fails under CI=true (make test installs qemu-utils) and
// skips elsewhere.
func requireQemuImg(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		testenv.Missing(t, "qemu-img is not installed; `make test` installs qemu-utils")
	}
}

func requireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, why+" needs root")
	}
}

// rawImage is a raw disk of size bytes with markers at its start and at
// 3 MiB, and zeros elsewhere (so sparse handling is exercised).
func rawImage(size int) []byte {
	b := make([]byte, size)
	copy(b, "nodevirt raw image: start")
	if size > 3<<20+64 {
		copy(b[3<<20:], "nodevirt raw image: 3MiB")
	}
	return b
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func xzData(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := xz.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// qcow2Of converts raw bytes to a qcow2 image with qemu-img.
func qcow2Of(t testing.TB, raw []byte) []byte {
	t.Helper()
	requireQemuImg(t)
	dir := t.TempDir()
	in := writeFile(t, dir, "in.raw", raw)
	out := filepath.Join(dir, "out.qcow2")
	if msg, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", in, out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// isoImage is an ISO 9660 image holding one file.
func isoImage(t testing.TB) []byte {
	t.Helper()
	w, err := iso9660.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cleanup()
	if err := w.AddFile(strings.NewReader("hello from the iso\n"), "README.TXT"); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := w.WriteTo(&b, "NODEVIRT"); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// imageServer serves files over http or https (its own CA), optionally
// behind basic auth, optionally throttled.
type imageServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	user  string
	pass  string
	// rate limits bytes per second (0: unlimited).
	rate int
}

func newImageServer(t testing.TB, tls bool) *imageServer {
	t.Helper()
	s := &imageServer{files: map[string][]byte{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	s.Server = srv
	t.Cleanup(srv.Close)
	return s
}

func (s *imageServer) put(name string, data []byte) string {
	s.mu.Lock()
	s.files[name] = data
	s.mu.Unlock()
	return s.URL + "/" + name
}

// caPEM is the server's certificate, which is its own CA.
func (s *imageServer) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

func (s *imageServer) serve(w http.ResponseWriter, r *http.Request) {
	if s.user != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != s.user || p != s.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="images"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	s.mu.Lock()
	data, ok := s.files[strings.TrimPrefix(r.URL.Path, "/")]
	rate := s.rate
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	if rate == 0 {
		_, _ = w.Write(data)
		return
	}
	chunk := max(rate/20, 1)
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		if _, err := w.Write(data[off:end]); err != nil {
			return
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readAll reads n bytes of a file or device.
func readN(t testing.TB, p string, n int) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b
}

// noLeftovers checks that nothing but the target is in dir.
func noLeftovers(t testing.TB, dir string, allowed ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	for _, e := range entries {
		if !ok[e.Name()] {
			t.Errorf("leftover %s in %s", e.Name(), dir)
		}
	}
}
