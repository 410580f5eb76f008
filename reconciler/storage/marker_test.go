package storage

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// loseState gives the manager an empty state database on the same host.
func (r *rig) loseState() {
	r.kv = newFakeKV()
	r.restart()
}

// After a lost state a completed import is adopted by its marker, an
// unmarked disk (or one marked for an earlier spec) is left alone with a
// message naming it, and neither is bound, imported over or deleted.
func TestManager_lostStateAdoptsOrWaits(t *testing.T) {
	r := newRig(t)
	st := r.state(hostpathBase + dvHTTP + vm("web", "dv:fedora"))
	if _, rep := r.apply(st); rep.Err() != nil {
		t.Fatal(rep.Outcomes)
	}
	dir := "/var/hpvolumes/" + dynamicName("default/fedora")
	disk := dir + "/disk.img"
	if !r.files.Exists(markerPath(disk)) || !r.files.Exists(IndexPath(r.cfg.StateDir, "default/fedora")) {
		t.Fatal("no marker after a completed import")
	}
	imports := len(r.imp.requests)

	r.loseState()
	p, rep := r.apply(st)
	want := []string{"provision DataVolume default/fedora " + dir, "bind DataVolume default/fedora " + disk, "adopt DataVolume default/fedora " + disk}
	if !slices.Equal(actions(p), want) || rep.Err() != nil {
		t.Fatalf("after a lost state: %q %v", actions(p), rep.Outcomes)
	}
	if s, _ := r.m.Claim("default", "fedora"); !s.Ready || !strings.Contains(s.Message, "adopted") {
		t.Fatalf("adopted claim %+v", s)
	}
	if p := r.plan(st); !p.Empty() {
		t.Fatalf("plan after adoption: %q", actions(p))
	}

	// No marker: the disk is not the state's, nor provably ours.
	r.loseState()
	r.files.Remove(markerPath(disk))
	p, _ = r.apply(st)
	a := hasAction(p, ActConflict, "DataVolume default/fedora")
	if len(p.Actions) != 1 || a == nil || !strings.Contains(a.Reason, disk+" exists but nodevirt's state does not know it") {
		t.Fatalf("unmarked disk: %q", actions(p))
	}
	if s, ok := r.m.Claim("default", "fedora"); !ok || s.Ready || !strings.Contains(s.Message, "nodevirt state rebuild") {
		t.Fatalf("status of the waiting claim %+v", s)
	}

	// Source removed while unknown: nothing is deleted (nothing is bound).
	p, _ = r.apply(r.state(hostpathBase))
	if !r.files.Exists(disk) {
		t.Fatalf("the unknown disk was removed: %q", actions(p))
	}

	// A marker of an earlier spec of the claim.
	r.files.WriteFile(markerPath(disk), []byte(fmt.Sprintf(`{"v":1,"claim":"default/fedora","object":"DataVolume default/fedora","hash":"sha256:old","file":%q,"size":1}`, disk)))
	p, _ = r.apply(st)
	if a := hasAction(p, ActConflict, "DataVolume default/fedora"); a == nil || !strings.Contains(a.Reason, "earlier spec") {
		t.Fatalf("marker of an earlier spec: %q", actions(p))
	}
	if len(r.imp.requests) != imports {
		t.Fatalf("an import ran over the existing disk: %+v", r.imp.requests[imports:])
	}
}

// A loop device's backing file with data and no marker is never imported
// into after a lost state; a fresh sparse one is.
func TestManager_lostStateLoopBacking(t *testing.T) {
	r := newRig(t)
	st := r.state(fmt.Sprintf(loopPV, "Delete") + blockDV + vm("db", "dv:blockdv"))
	backing := "/var/lib/nodevirt/blockpv/local-block-pv10.img"
	if _, rep := r.apply(st); rep.Err() != nil {
		t.Fatal(rep.Outcomes)
	}
	imports := len(r.imp.requests)
	r.files.put(backing, 2<<30) // the guest wrote through the device
	r.loseState()
	r.files.Remove(markerPath(backing))
	p, _ := r.apply(st)
	if a := hasAction(p, ActConflict, "DataVolume default/blockdv"); a == nil || hasAction(p, ActBind, "DataVolume default/blockdv") != nil ||
		!strings.Contains(a.Reason, backing) {
		t.Fatalf("plan: %q", actions(p))
	}
	if len(r.imp.requests) != imports {
		t.Fatal("imported into a backing file the state does not know")
	}
}
