package storage

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// A local PersistentVolume whose nodeAffinity moves to another node, its
// VM with it (seed 8.18.12): the old node keeps the volume, its device and
// its data for the new node to pull, and says so; nothing is forgotten,
// detached or deleted.
func TestManager_movedVolumeKeepsItsData(t *testing.T) {
	r := newRig(t)
	st := r.state(fmt.Sprintf(loopPV, "Delete") + blockDV + vm("db", "dv:blockdv"))
	if st.Diags.HasErrors() {
		t.Fatal(st.Diags)
	}
	if _, rep := r.apply(st); rep.Err() != nil {
		t.Fatal(rep.Outcomes)
	}
	backing := "/var/lib/nodevirt/blockpv/local-block-pv10.img"
	used := true
	r.m.cfg.InUse = func(string) bool { return used }
	if _, err := r.m.Export("local-block-pv10", "node02", nil); !errors.Is(err, ErrNotExportable) || !strings.Contains(err.Error(), "placed on this node") {
		t.Fatalf("export before the move: %v", err)
	}

	moved := strings.Replace(fmt.Sprintf(loopPV, "Delete"), "values: [node01]", "values: [node02]", 1) + blockDV +
		strings.Replace(vm("db", "dv:blockdv"), "    spec:\n      domain:", "    spec:\n      nodeSelector: {kubernetes.io/hostname: node02}\n      domain:", 1)
	st = r.state(moved)
	if st.Diags.HasErrors() {
		t.Fatal(st.Diags)
	}
	if st.Away["local-block-pv10"].NodeAffinity == nil || st.Volumes["local-block-pv10"] != nil {
		t.Fatalf("desired state: away %v, volumes %v; want the PV away", st.Away, st.Volumes)
	}
	p, rep := r.apply(st)
	a := hasAction(p, ActHold, "PersistentVolume local-block-pv10")
	if a == nil || a.Target != backing || !strings.Contains(a.Reason, "selects another node") || !strings.Contains(a.Reason, "until that node runs the VM") {
		t.Fatalf("plan after the move: %q", actions(p))
	}
	for _, act := range p.Actions {
		if act.Action == ActDeleteData || act.Action == ActForget || act.Action == ActDetach || act.Action == ActRelease {
			t.Errorf("the moved volume's data is touched: %s %s %s", act.Action, act.Object, act.Reason)
		}
	}
	if rep.Err() != nil {
		t.Fatal(rep.Outcomes)
	}
	if b, ok, _ := r.loops.Backing("/dev/loop10"); !ok || b != backing {
		t.Fatalf("loop10 -> %q, %v after the move; want it kept", b, ok)
	}
	r.m.mu.Lock()
	rec := r.m.volumeRecs["local-block-pv10"]
	r.m.mu.Unlock()
	if rec == nil || rec.Claim != "default/blockdv" {
		t.Fatalf("volume record after the move: %+v; want it kept, bound", rec)
	}

	// Served to the node the affinity names, once no domain uses it.
	if _, err := r.m.Export("local-block-pv10", "node02", nil); !errors.Is(err, ErrNotExportable) || !strings.Contains(err.Error(), "running domain") {
		t.Fatalf("export while the VM runs here: %v", err)
	}
	used = false
	if f, err := r.m.Export("local-block-pv10", "node02", nil); err != nil || f != backing {
		t.Fatalf("export to node02 = %q, %v; want %s", f, err, backing)
	}
	if _, err := r.m.Export("local-block-pv10", "node03", nil); !errors.Is(err, ErrNotExportable) || !strings.Contains(err.Error(), "does not select node node03") {
		t.Fatalf("export to a node the affinity does not name: %v", err)
	}
	if _, err := r.m.Export("pv-unknown", "node02", nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("export of an unknown volume: %v", err)
	}

	// Without its claim bound or released, a PV of another node is none of
	// this node's business: a fresh rig never records it.
	r2 := newRig(t)
	p2, _ := r2.apply(r2.state(moved))
	if hasAction(p2, ActHold, "PersistentVolume local-block-pv10") != nil || hasAction(p2, ActProvision, "PersistentVolume local-block-pv10") != nil {
		t.Fatalf("another node's PV on a node that never held it: %q", actions(p2))
	}
}
