package diskmove_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/internal/diskmove"
	"github.com/nodevirt/nodevirt/internal/fleet"
)

func pvReport(node string, at time.Time, phase string) fleet.Report {
	return fleet.Report{Node: node, Time: at, API: "https://" + node + ":8443", CA: "ca of " + node,
		Volumes: []fleet.Volume{{Name: "pv-a", Kind: "PersistentVolume", Phase: phase, Node: node}, {Name: "pv-b", Kind: "PersistentVolume", Phase: "Bound", Node: node}}}
}

func TestLocate(t *testing.T) {
	now := time.Now()
	o, found, err := diskmove.Locate([]fleet.Report{pvReport("n2", now, "Bound"), pvReport("n1", now, "Bound")}, "n2", "pv-a", time.Minute, now)
	if err != nil || !found || o.Node != "n1" || o.URL != "https://n1:8443" || string(o.CA) != "ca of n1" {
		t.Fatalf("Locate = %+v, %v, %v; want n1's origin", o, found, err)
	}
	if _, found, err := diskmove.Locate([]fleet.Report{pvReport("n1", now, "Pending")}, "n2", "pv-a", time.Minute, now); found || err != nil {
		t.Fatalf("a pending volume elsewhere: found %v, %v; want a fresh volume", found, err)
	}
	if _, found, err := diskmove.Locate([]fleet.Report{pvReport("n1", now, "Bound")}, "n2", "pv-c", time.Minute, now); found || err != nil {
		t.Fatalf("a volume nobody has: found %v, %v; want a fresh volume", found, err)
	}
	for _, c := range []struct {
		name    string
		reports []fleet.Report
		want    string
	}{
		{"two holders", []fleet.Report{pvReport("n1", now, "Bound"), pvReport("n3", now, "Bound")}, "reported by nodes n1, n3"},
		{"stale holder", []fleet.Report{pvReport("n1", now.Add(-time.Hour), "Bound")}, "older than 1m0s"},
		{"holder without API", []fleet.Report{{Node: "n1", Time: now, Volumes: []fleet.Volume{{Name: "pv-a", Kind: "PersistentVolume", Phase: "Bound"}}}}, "publishes no API address"},
	} {
		if _, found, err := diskmove.Locate(c.reports, "n2", "pv-a", time.Minute, now); !found || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: found %v, %v; want an error saying %q", c.name, found, err, c.want)
		}
	}
}

func TestReleased(t *testing.T) {
	r := fleet.Report{Node: "n2", VMs: []fleet.VM{{Namespace: "default", Name: "vm-a", State: "Starting"}}}
	if ok, why := diskmove.Released([]fleet.Report{r}, "n2", "default", "vm-a"); ok || why != "kept until node n2 runs vm default/vm-a" {
		t.Fatalf("VM not yet running on n2: %v %q", ok, why)
	}
	// Running elsewhere is not running on the new node.
	other := fleet.Report{Node: "n1", VMs: []fleet.VM{{Namespace: "default", Name: "vm-a", Running: true}}}
	if ok, _ := diskmove.Released([]fleet.Report{r, other}, "n2", "default", "vm-a"); ok {
		t.Fatal("released while the VM runs on another node than the new one")
	}
	r.VMs[0].Running = true
	if ok, why := diskmove.Released([]fleet.Report{r}, "n2", "default", "vm-a"); !ok || why != "" {
		t.Fatalf("VM running on n2: %v %q", ok, why)
	}
}

// Client holds the node's own client certificate and trusts the origin's
// CA from its report: enough to pull over mutual TLS.
func TestClient_pullsFromOrigin(t *testing.T) {
	f := newFixture(t)
	c, err := diskmove.Client(f.new.dir, "n2", diskmove.Origin{Node: "n1", URL: f.url, CA: f.old.pki.Bundle()}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "disk.img")
	if err := (&diskmove.Puller{Client: c}).Pull(t.Context(), f.url, "pv-a", target); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); !bytes.Equal(got, f.data) {
		t.Fatal("pulled disk differs")
	}
	// Trusting another CA than the origin's fails the handshake.
	c, err = diskmove.Client(f.new.dir, "n2", diskmove.Origin{Node: "n1", CA: f.new.pki.Bundle()}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&diskmove.Puller{Client: c}).Pull(t.Context(), f.url, "pv-a", target+"2"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("pull trusting the wrong CA: %v", err)
	}
	if _, err := diskmove.Client(f.new.dir, "n2", diskmove.Origin{Node: "n1", CA: []byte("nothing")}, time.Hour); err == nil || !strings.Contains(err.Error(), "CA of node n1") {
		t.Fatalf("origin without a CA: %v", err)
	}
}
