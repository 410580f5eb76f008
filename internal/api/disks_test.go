package api_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/diskmove"
	"github.com/nodevirt/nodevirt/internal/fleet"
	"github.com/nodevirt/nodevirt/internal/pki"
)

type oneDisk struct{ file, pv, peer string }

func (d oneDisk) Export(_ context.Context, pv, peer string) (string, error) {
	if pv != d.pv || peer != d.peer {
		return "", diskmove.ErrNotServed
	}
	return d.file, nil
}

// A peer node's certificate, signed by the CA its status report publishes,
// pulls a disk through the API's listener but is no credential for the
// rest of the API; the agent's own client certificates still are.
func TestAPI_peerCertificateReachesDisksOnly(t *testing.T) {
	newPKI := func(name string) (*pki.Manager, string) {
		dir := filepath.Join(t.TempDir(), "pki")
		m, err := pki.New(pki.Options{Dir: dir, Lifetimes: pki.DefaultLifetimes(), DNSNames: []string{name}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
		if err != nil {
			t.Fatal(err)
		}
		return m, dir
	}
	n1, dir1 := newPKI("n1")
	n2, dir2 := newPKI("n2")
	data := bytes.Repeat([]byte("disk"), 5000)
	file := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	reports := []fleet.Report{{Node: "n2", Time: time.Now(), CA: string(n2.Bundle())}}
	disks := &diskmove.Server{Exporter: oneDisk{file: file, pv: "pv-a", peer: "n2"}, ChunkSize: 4096,
		Peers: func() (diskmove.Peers, error) { return diskmove.PeersFrom(reports, "n1", time.Minute, time.Now()) }}
	srv := api.New(api.Options{Node: "n1", Agent: &node{}, Disks: disks.Handler(api.DisksPrefix), ClientCAs: n1.Pool})
	tcp, err := api.ListenTLS("127.0.0.1:0", n1.TLSConfigWithPeers(func() []byte { return []byte(reports[0].CA) }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); api.Serve(ctx, tcp, srv.Handler(), nil) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	base := "https://" + tcp.Addr().String()

	client := func(dir, name string) *http.Client {
		c, k, err := pki.IssueClient(dir, name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n1.Pool(), Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	get := func(c *http.Client, path string) (int, string) {
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	peer := client(dir2, "n2")
	target := filepath.Join(t.TempDir(), "pulled.img")
	if err := (&diskmove.Puller{Client: peer}).Pull(t.Context(), base+api.DisksPrefix, "pv-a", target); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); !bytes.Equal(got, data) {
		t.Fatal("disk pulled through the API differs")
	}
	if code, body := get(peer, "/api/v1/status"); code != http.StatusUnauthorized || !strings.Contains(body, "peer node") {
		t.Fatalf("peer certificate on /api/v1/status: %d %s, want 401", code, body)
	}
	if code, body := get(client(dir1, "ops"), "/api/v1/status"); code != http.StatusOK {
		t.Fatalf("own client certificate on /api/v1/status: %d %s", code, body)
	}
	// The agent's own client certificate names no peer: no disk for it.
	if code, body := get(client(dir1, "n2"), api.DisksPrefix+"/pv-a/manifest"); code != http.StatusForbidden {
		t.Fatalf("own CA's certificate naming n2 on the disks: %d %s, want 403", code, body)
	}
}
