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
	r.m.cfg.Running = r.m.cfg.InUse
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

	// Released once the new node runs the VM, not before; not while a
	// domain here uses the disk.
	var askedVMs []string
	released := false
	r.m.cfg.Released = func(pv string, vms []string) (bool, string) {
		askedVMs = vms
		if !released {
			return false, "kept until node node02 runs vm default/db"
		}
		return true, ""
	}
	p = r.plan(st)
	if a := hasAction(p, ActHold, "PersistentVolume local-block-pv10"); a == nil || a.Reason != "its nodeAffinity selects another node: kept until node node02 runs vm default/db" {
		t.Fatalf("before the new node runs the VM: %q", actions(p))
	}
	if strings.Join(askedVMs, ",") != "VirtualMachine default/db" {
		t.Fatalf("Released asked about VMs %v, want VirtualMachine default/db", askedVMs)
	}
	released, used = true, true
	if p = r.plan(st); hasAction(p, ActDeleteData, "PersistentVolume local-block-pv10") != nil {
		t.Fatalf("deleted while a domain here uses the disk: %q", actions(p))
	}
	used = false
	p, rep = r.apply(st)
	if a := hasAction(p, ActDeleteData, "PersistentVolume local-block-pv10"); a == nil || a.Target != backing || !strings.Contains(a.Reason, "the copy here goes") {
		t.Fatalf("after the new node runs the VM: %q", actions(p))
	}
	if rep.Err() != nil {
		t.Fatal(rep.Outcomes)
	}
	if _, ok, _ := r.loops.Backing("/dev/loop10"); ok || r.files.Exists(backing) {
		t.Fatal("the old copy survived its release")
	}
	r.m.mu.Lock()
	rec, claim := r.m.volumeRecs["local-block-pv10"], r.m.claimRecs["default/blockdv"]
	r.m.mu.Unlock()
	if rec != nil || claim != nil {
		t.Fatalf("records after the release: volume %+v, claim %+v", rec, claim)
	}

	// Without its claim bound or released, a PV of another node is none of
	// this node's business: a fresh rig never records it.
	r2 := newRig(t)
	p2, _ := r2.apply(r2.state(moved))
	if hasAction(p2, ActHold, "PersistentVolume local-block-pv10") != nil || hasAction(p2, ActProvision, "PersistentVolume local-block-pv10") != nil {
		t.Fatalf("another node's PV on a node that never held it: %q", actions(p2))
	}
}

const movedPV = `---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv1}
spec:
  local: {path: /var/lib/nodevirt/pv1}
  capacity: {storage: 2Gi}
  volumeMode: Filesystem
  storageClassName: local
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [node02]}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: data, namespace: default}
spec:
  source: {blank: {}}
  pvc:
    accessModes: [ReadWriteOnce]
    storageClassName: local
    resources: {requests: {storage: 1Gi}}
`

// On the node a volume moved to, its DataVolume pulls the data from the
// node that held it instead of importing its source again; where that is
// unknown, it waits rather than make a blank disk.
func TestManager_movedVolumeIsPulled(t *testing.T) {
	r := newRig(t)
	r.node = "node02"
	var from string
	var fromErr error
	r.cfg.MovedFrom = func(pv string) (string, error) {
		if pv != "pv1" {
			t.Errorf("MovedFrom(%q)", pv)
		}
		return from, fromErr
	}
	r.restart()
	st := r.state(movedPV + vm("db", "dv:data"))
	if st.Diags.HasErrors() {
		t.Fatal(st.Diags)
	}
	target := "/var/lib/nodevirt/pv1/disk.img"

	fromErr = errors.New("no status report read yet")
	p := r.plan(st)
	if a := hasAction(p, ActWait, "DataVolume default/data"); a == nil || !strings.Contains(a.Reason, "no status report read yet") {
		t.Fatalf("origin unknown: %q", actions(p))
	}
	if hasAction(p, ActImport, "DataVolume default/data") != nil {
		t.Fatal("imports while the volume's data may be on another node")
	}

	fromErr, from = nil, "node01"
	p, rep := r.apply(st)
	a := hasAction(p, ActImport, "DataVolume default/data")
	if a == nil || a.Target != target || !strings.Contains(a.Reason, "from node node01") {
		t.Fatalf("moved volume: %q", actions(p))
	}
	if rep.Err() != nil {
		t.Fatal(rep.Outcomes)
	}
	req := r.imp.last()
	if req.Kind != SourcePeer || req.URL != "node01" || req.SourcePath != "pv1" || req.Target != target {
		t.Fatalf("pull request %+v", req)
	}
	if s, _ := r.m.Claim("default", "data"); !s.Ready {
		t.Fatalf("claim after the pull: %+v", s)
	}
	// Pulled once: the old node's copy still listed changes nothing.
	if p := r.plan(st); hasAction(p, ActImport, "DataVolume default/data") != nil {
		t.Fatalf("pulled again: %q", actions(p))
	}

	// A volume no other node holds is made as before.
	r2 := newRig(t)
	r2.node = "node02"
	r2.cfg.MovedFrom = func(string) (string, error) { return "", nil }
	r2.restart()
	r2.apply(r2.state(movedPV + vm("db", "dv:data")))
	if req := r2.imp.last(); req.Kind != SourceBlank {
		t.Fatalf("fresh volume imported as %+v", req)
	}
}

// A plain claim on a volume that moved here is pulled too: a blank disk
// would hide the data the old node holds.
func TestManager_movedVolumeOfPlainClaimIsPulled(t *testing.T) {
	r := newRig(t)
	r.node = "node02"
	r.cfg.MovedFrom = func(string) (string, error) { return "node01", nil }
	r.restart()
	i := strings.Index(movedPV, "---\napiVersion: cdi.kubevirt.io/v1beta1")
	if i < 0 {
		t.Fatal("movedPV has no DataVolume to replace")
	}
	claim := movedPV[:i] + `---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: local
  resources: {requests: {storage: 1Gi}}
`
	st := r.state(claim + vm("db", "pvc:data"))
	if st.Diags.HasErrors() {
		t.Fatal(st.Diags)
	}
	p, rep := r.apply(st)
	if a := hasAction(p, ActImport, "PersistentVolumeClaim default/data"); a == nil || !strings.Contains(a.Reason, "from node node01") {
		t.Fatalf("moved volume of a plain claim: %q", actions(p))
	}
	if hasAction(p, ActCreateDisk, "PersistentVolumeClaim default/data") != nil {
		t.Fatal("a blank disk was made over the moved volume's data")
	}
	if rep.Err() != nil {
		t.Fatal(rep.Outcomes)
	}
	if req := r.imp.last(); req.Kind != SourcePeer || req.URL != "node01" || req.SourcePath != "pv1" {
		t.Fatalf("pull request %+v", req)
	}
	if p := r.plan(st); hasAction(p, ActImport, "PersistentVolumeClaim default/data") != nil {
		t.Fatalf("pulled again: %q", actions(p))
	} else if s := p.Claims["default/data"]; !s.Ready || s.Phase != PhaseBound {
		t.Fatalf("claim after the pull: %+v", s)
	}
}
