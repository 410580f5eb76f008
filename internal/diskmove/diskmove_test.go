package diskmove_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/internal/diskmove"
	"github.com/nodevirt/nodevirt/internal/fleet"
	"github.com/nodevirt/nodevirt/internal/pki"
)

const testChunk = 4096

// exports serves files whose volume the test moved to a node.
type exports struct {
	mu    sync.Mutex
	files map[string]string // pv → file
	to    map[string]string // pv → node the volume is placed on
	asked []string          // peers asked for
}

func (e *exports) Export(_ context.Context, pv, peer string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.asked = append(e.asked, peer)
	f, ok := e.files[pv]
	if !ok {
		return "", fmt.Errorf("volume %s: %w", pv, os.ErrNotExist)
	}
	if e.to[pv] != peer {
		return "", fmt.Errorf("%w: placed on %q", diskmove.ErrNotServed, e.to[pv])
	}
	return f, nil
}

type node struct {
	name string
	dir  string
	pki  *pki.Manager
}

func newNode(t *testing.T, name string) node {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	m, err := pki.New(pki.Options{Dir: dir, Lifetimes: pki.DefaultLifetimes(), DNSNames: []string{name}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	return node{name: name, dir: dir, pki: m}
}

func (n node) report(at time.Time) fleet.Report {
	return fleet.Report{Node: n.name, Time: at, CA: string(n.pki.Bundle())}
}

// clientAs is an HTTPS client of server holding a certificate of signer's
// CA that names name.
func clientAs(t *testing.T, signer node, name string, server node) *http.Client {
	t.Helper()
	cert, key, err := pki.IssueClient(signer.dir, name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: server.pki.Pool(), Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

type fixture struct {
	old, new node
	ex       *exports
	url      string
	data     []byte
	reports  []fleet.Report
	mu       sync.Mutex
	wrap     func(w http.ResponseWriter, r *http.Request, next http.Handler)
}

// newFixture serves a disk of odd size from old, placed on new, with wrap
// (when set) between the network and the server.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{old: newNode(t, "n1"), new: newNode(t, "n2"), data: make([]byte, 10*testChunk+123)}
	rand.Read(f.data)
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, f.data, 0o600); err != nil {
		t.Fatal(err)
	}
	f.ex = &exports{files: map[string]string{"pv-a": disk}, to: map[string]string{"pv-a": "n2"}}
	f.reports = []fleet.Report{f.old.report(time.Now()), f.new.report(time.Now())}
	srv := &diskmove.Server{Exporter: f.ex, ChunkSize: testChunk, Peers: func() (diskmove.Peers, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return diskmove.PeersFrom(f.reports, "n1", time.Minute, time.Now())
	}}
	h := srv.Handler("/api/v1/disks")
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		wrap := f.wrap
		f.mu.Unlock()
		if wrap != nil {
			wrap(w, r, h)
			return
		}
		h.ServeHTTP(w, r)
	}))
	// httptest serves Certificates before asking GetCertificate: give
	// it the old node's own.
	leaf, err := f.old.pki.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{*leaf}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	f.url = ts.URL + "/api/v1/disks"
	return f
}

func (f *fixture) setWrap(w func(http.ResponseWriter, *http.Request, http.Handler)) {
	f.mu.Lock()
	f.wrap = w
	f.mu.Unlock()
}

func TestPull_copiesOverMutualTLS(t *testing.T) {
	f := newFixture(t)
	target := filepath.Join(t.TempDir(), "vol", "disk.img")
	p := diskmove.Puller{Client: clientAs(t, f.new, "n2", f.old)}
	if err := p.Pull(t.Context(), f.url, "pv-a", target); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, f.data) {
		t.Fatalf("pulled %d bytes differ from the %d served", len(got), len(f.data))
	}
	for _, p := range []string{diskmove.PartialPath(target), diskmove.JournalPath(target)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
	if strings.Join(f.ex.asked, ",") == "" || f.ex.asked[0] != "n2" {
		t.Errorf("exporter asked for peers %v, want n2", f.ex.asked)
	}
}

func TestPull_resumesAfterInterruption(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	served := map[string]int{}
	cut := true
	f.setWrap(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		mu.Lock()
		served[r.URL.Path]++
		kill := cut && strings.HasSuffix(r.URL.Path, "/chunks/4")
		cut = cut && !kill
		mu.Unlock()
		if kill {
			// Half the chunk, then the connection drops.
			w.Header().Set("Content-Length", fmt.Sprint(testChunk))
			w.Write(f.data[4*testChunk : 4*testChunk+testChunk/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		next.ServeHTTP(w, r)
	})
	target := filepath.Join(t.TempDir(), "disk.img")
	p := diskmove.Puller{Client: clientAs(t, f.new, "n2", f.old)}
	err := p.Pull(t.Context(), f.url, "pv-a", target)
	if err == nil || !strings.Contains(err.Error(), "chunk 4 of 11") {
		t.Fatalf("interrupted pull: %v, want an error at chunk 4", err)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("target exists after an interrupted pull: %v", err)
	}
	if _, err := os.Stat(diskmove.JournalPath(target)); err != nil {
		t.Fatalf("no journal after an interrupted pull: %v", err)
	}
	if err := p.Pull(t.Context(), f.url, "pv-a", target); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(target)
	if !bytes.Equal(got, f.data) {
		t.Fatal("resumed pull differs from the served disk")
	}
	for i := range 11 {
		want := 1
		if i == 4 {
			want = 2
		}
		if n := served[fmt.Sprintf("/api/v1/disks/pv-a/chunks/%d", i)]; n != want {
			t.Errorf("chunk %d served %d times, want %d (resume refetches only what was not journalled)", i, n, want)
		}
	}
}

// corrupt flips a byte of every chunk i it serves.
type corrupt struct {
	http.ResponseWriter
	done bool
}

func (c *corrupt) Write(b []byte) (int, error) {
	if !c.done && len(b) > 0 {
		b = bytes.Clone(b)
		b[0] ^= 0xff
		c.done = true
	}
	return c.ResponseWriter.Write(b)
}

func TestPull_refusesCorruptedChunk(t *testing.T) {
	f := newFixture(t)
	f.setWrap(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if strings.HasSuffix(r.URL.Path, "/chunks/2") {
			w = &corrupt{ResponseWriter: w}
		}
		next.ServeHTTP(w, r)
	})
	target := filepath.Join(t.TempDir(), "disk.img")
	p := diskmove.Puller{Client: clientAs(t, f.new, "n2", f.old)}
	err := p.Pull(t.Context(), f.url, "pv-a", target)
	if !errors.Is(err, diskmove.ErrChecksum) || !strings.Contains(err.Error(), "chunk 2 ") {
		t.Fatalf("pull of a corrupted chunk: %v, want a SHA-256 mismatch at chunk 2", err)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("target exists after a corrupted chunk: %v", err)
	}
	f.setWrap(nil)
	if err := p.Pull(t.Context(), f.url, "pv-a", target); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(target)
	if !bytes.Equal(got, f.data) {
		t.Fatal("pull after the corruption differs from the served disk")
	}
}

func TestServer_refusesUntrustedPeers(t *testing.T) {
	f := newFixture(t)
	stranger := newNode(t, "n3")
	target := filepath.Join(t.TempDir(), "disk.img")
	for _, c := range []struct {
		name   string
		client *http.Client
		setup  func()
		want   string
	}{
		{"CA in no report", clientAs(t, stranger, "n3", f.old), nil, "no fresh status report of node \"n3\""},
		{"another node's CA naming n2", clientAs(t, stranger, "n2", f.old), func() {
			f.reports = append(f.reports, stranger.report(time.Now()))
		}, "certificate signed by unknown authority"},
		{"volume placed elsewhere", clientAs(t, stranger, "n3", f.old), nil, "placed on \"n2\""},
		{"stale report", clientAs(t, f.new, "n2", f.old), func() {
			f.reports = []fleet.Report{f.new.report(time.Now().Add(-time.Hour))}
		}, "no fresh status report of node \"n2\""},
	} {
		if c.setup != nil {
			f.mu.Lock()
			c.setup()
			f.mu.Unlock()
		}
		p := diskmove.Puller{Client: c.client}
		err := p.Pull(t.Context(), f.url, "pv-a", target)
		if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want 403 saying %q", c.name, err, c.want)
		}
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused pull wrote the target: %v", err)
	}
}

func TestPull_unknownVolume(t *testing.T) {
	f := newFixture(t)
	p := diskmove.Puller{Client: clientAs(t, f.new, "n2", f.old)}
	err := p.Pull(t.Context(), f.url, "pv-missing", filepath.Join(t.TempDir(), "d"))
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("pull of an unknown volume: %v, want 404", err)
	}
}

func TestManifest_Validate(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for _, c := range []struct {
		m    diskmove.Manifest
		want string
	}{
		{diskmove.Manifest{Size: 10, ChunkSize: 0}, "chunk size 0"},
		{diskmove.Manifest{Size: -1, ChunkSize: 4}, "negative size"},
		{diskmove.Manifest{Size: 10, ChunkSize: 4, Chunks: []string{h, h}}, "2 chunks for 10 bytes"},
		{diskmove.Manifest{Size: 4, ChunkSize: 4, Chunks: []string{"zz"}}, "chunk 0: \"zz\" is no SHA-256"},
	} {
		if err := c.m.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.m, err, c.want)
		}
	}
	if err := (diskmove.Manifest{Size: 5, ChunkSize: 4, Chunks: []string{h, h}}).Validate(); err != nil {
		t.Errorf("valid manifest refused: %v", err)
	}
}

func TestPeersFrom_badCA(t *testing.T) {
	_, err := diskmove.PeersFrom([]fleet.Report{{Node: "n9", Time: time.Now(), CA: "garbage"}}, "n1", time.Minute, time.Now())
	if err == nil || !strings.Contains(err.Error(), "CA of node n9") {
		t.Fatalf("garbled CA: %v, want an error naming n9", err)
	}
}
