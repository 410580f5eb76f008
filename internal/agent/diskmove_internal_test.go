package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/diskmove"
	"github.com/nodevirt/nodevirt/internal/fleet"
	"github.com/nodevirt/nodevirt/internal/pki"
	"github.com/nodevirt/nodevirt/reconciler/storage"
)

func runtimeWithReports(node, pkiDir string, reports map[string]fleet.Report) *Runtime {
	a := newAgent(Config{}, nil, nil, nil, make(chan struct{}, 1))
	if reports != nil {
		a.fleet.Store(&Fleet{a: a, reports: reports, readAt: time.Now()})
	}
	return &Runtime{Agent: a, cfg: OpenConfig{Node: node, NodeLease: time.Minute, PKIDir: pkiDir}}
}

func pvVolume(phase string) fleet.Volume {
	return fleet.Volume{Name: "pv1", Kind: "PersistentVolume", Phase: phase}
}

// Where a moved volume's data is, and when its old copy may go, come from
// the fleet's reports.
func TestRuntime_movedFromAndReleased(t *testing.T) {
	if from, err := runtimeWithReports("n2", "", nil).movedFrom("pv1"); from != "" || err != nil {
		t.Fatalf("without a status branch: %q, %v", from, err)
	}
	rt := runtimeWithReports("n2", "", nil)
	rt.Agent.fleet.Store(&Fleet{a: rt.Agent})
	if _, err := rt.movedFrom("pv1"); err == nil || !strings.Contains(err.Error(), "not read yet") {
		t.Fatalf("before the first read: %v", err)
	}
	now := time.Now()
	reports := map[string]fleet.Report{
		"n1": {Node: "n1", Time: now, API: "https://n1:9443", CA: "x", Volumes: []fleet.Volume{pvVolume("Bound")},
			VMs: []fleet.VM{{Namespace: "default", Name: "db", State: "Stopped"}}},
		"n2": {Node: "n2", Time: now, VMs: []fleet.VM{{Namespace: "default", Name: "db", State: "Starting"}}},
	}
	if from, err := runtimeWithReports("n2", "", reports).movedFrom("pv1"); from != "n1" || err != nil {
		t.Fatalf("moved from n1: %q, %v", from, err)
	}

	// On n1: kept until n2 reports the volume bound and the VM running.
	old := runtimeWithReports("n1", "", reports)
	if ok, why := old.released("pv1", []string{"VirtualMachine default/db"}); ok || why != "kept until the node it moved to reports it bound" {
		t.Fatalf("before n2 has it: %v %q", ok, why)
	}
	r2 := reports["n2"]
	r2.Volumes = []fleet.Volume{pvVolume("Bound")}
	reports["n2"] = r2
	if ok, why := old.released("pv1", []string{"VirtualMachine default/db"}); ok || why != "kept until node n2 runs vm default/db" {
		t.Fatalf("before n2 runs the VM: %v %q", ok, why)
	}
	r2.VMs[0].Running = true
	if ok, why := old.released("pv1", []string{"VirtualMachine default/db"}); !ok {
		t.Fatalf("n2 runs the VM: %v %q", ok, why)
	}
	if ok, _ := old.released("pv1", nil); ok {
		t.Fatal("released a volume no VM used")
	}
}

type fileExport struct{ file string }

func (f fileExport) Export(_ context.Context, pv, peer string) (string, error) {
	if pv != "pv1" || peer != "n2" {
		return "", diskmove.ErrNotServed
	}
	return f.file, nil
}

// The importer's peer source pulls over mutual TLS from the node the
// reports name, with a client certificate of the agent's own CA.
func TestRuntime_pullDisk(t *testing.T) {
	newPKI := func(name string) (*pki.Manager, string) {
		dir := filepath.Join(t.TempDir(), "pki")
		m, err := pki.New(pki.Options{Dir: dir, Lifetimes: pki.DefaultLifetimes(), DNSNames: []string{name}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
		if err != nil {
			t.Fatal(err)
		}
		return m, dir
	}
	n1, _ := newPKI("n1")
	n2, dir2 := newPKI("n2")
	data := bytes.Repeat([]byte("moved disk "), 100000)
	src := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	n2Report := fleet.Report{Node: "n2", Time: time.Now(), CA: string(n2.Bundle())}
	srv := &diskmove.Server{Exporter: fileExport{src}, ChunkSize: 64 << 10, Peers: func() (diskmove.Peers, error) {
		return diskmove.PeersFrom([]fleet.Report{n2Report}, "n1", time.Minute, time.Now())
	}}
	ts := httptest.NewUnstartedServer(srv.Handler(api.DisksPrefix))
	leaf, err := n1.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{*leaf}, ClientAuth: tls.RequestClientCert}
	ts.StartTLS()
	t.Cleanup(ts.Close)

	reports := map[string]fleet.Report{
		"n1": {Node: "n1", Time: time.Now(), API: ts.URL, CA: string(n1.Bundle()), Volumes: []fleet.Volume{pvVolume("Bound")}},
		"n2": n2Report,
	}
	rt := runtimeWithReports("n2", dir2, reports)
	target := filepath.Join(t.TempDir(), "pv1", "disk.img")
	im := importerAdapter{pull: rt.pullDisk}
	if _, err := im.Import(t.Context(), storage.ImportRequest{Kind: storage.SourcePeer, URL: "n1", SourcePath: "pv1", Target: target}, func(float64) {}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); !bytes.Equal(got, data) {
		t.Fatal("pulled disk differs")
	}
}
