package snapshot

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	snapshotv1beta1 "kubevirt.io/api/snapshot/v1beta1"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/runtime/clone"
	"github.com/nodevirt/nodevirt/runtime/hv"
	"github.com/nodevirt/nodevirt/runtime/statedb"
)

// domains is libvirt's answer as the test sets it.
type domains map[string]hv.State

func (d domains) Domains(context.Context) ([]hv.Domain, error) {
	var out []hv.Domain
	for n, s := range d {
		out = append(out, hv.Domain{Name: n, State: s})
	}
	return out, nil
}

// claims are the storage manager's answer: claim disks are real files.
type claims map[string]storage.ClaimStatus

func (c claims) Claim(ns, name string) (storage.ClaimStatus, bool) {
	s, ok := c[ns+"/"+name]
	return s, ok
}

type world struct {
	t       *testing.T
	dir     string
	db      *statedb.DB
	doms    domains
	claims  claims
	now     time.Time
	m       *Manager
	disk    string
	allowPA bool
}

const vmDoc = `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: web, namespace: default}
spec:
  runStrategy: Halted
  template:
    spec:
      domain:
        memory: {guest: 128Mi}
        devices:
          disks: [{name: root, disk: {bus: virtio}}, {name: scratch, disk: {bus: virtio}}]
      volumes:
      - {name: root, dataVolume: {name: web-root}}
      - {name: scratch, emptyDisk: {capacity: 1Mi}}
`

func snapDoc(name string) string {
	return "---\napiVersion: snapshot.kubevirt.io/v1beta1\nkind: VirtualMachineSnapshot\nmetadata: {name: " + name +
		", namespace: default}\nspec:\n  source: {apiGroup: kubevirt.io, kind: VirtualMachine, name: web}\n"
}

func restoreDoc(name, snap, extra string) string {
	return "---\napiVersion: snapshot.kubevirt.io/v1beta1\nkind: VirtualMachineRestore\nmetadata: {name: " + name +
		", namespace: default}\nspec:\n  target: {apiGroup: kubevirt.io, kind: VirtualMachine, name: web}\n  virtualMachineSnapshotName: " + snap + "\n" + extra
}

func newWorld(t *testing.T) *world {
	dir := t.TempDir()
	db, err := statedb.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := &world{t: t, dir: dir, db: db, doms: domains{"default_web": hv.Shutoff}, now: time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)}
	w.disk = filepath.Join(dir, "volumes", "web-root", "disk.img")
	if err := os.MkdirAll(filepath.Dir(w.disk), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(w.disk)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("original boot sector"), 0)
	f.WriteAt(bytes.Repeat([]byte{0xab}, 4096), 8<<20)
	f.Truncate(32 << 20)
	f.Close()
	w.claims = claims{"default/web-root": {Ready: true, Phase: "Succeeded", Path: w.disk}}
	w.open()
	return w
}

// tpmDir stands in for libvirt's per-domain swtpm state directory.
func (w *world) tpmDir(uuid string) string { return filepath.Join(w.dir, "swtpm", uuid) }

// open (re)starts the manager over the same state database: an agent restart.
func (w *world) open() {
	m, err := New(Config{StateDir: filepath.Join(w.dir, "state"), AllowPruneAll: w.allowPA, Now: func() time.Time { return w.now },
		TPMStateDir: w.tpmDir},
		clone.Files{}, w.doms, w.claims, w.db)
	if err != nil {
		w.t.Fatal(err)
	}
	w.m = m
}

func (w *world) state(docs string) *State {
	w.t.Helper()
	set := manifests.Parse("repo.yaml", []byte(docs), manifests.Options{})
	if set.Diags.HasErrors() {
		w.t.Fatalf("manifests: %v", set.Diags)
	}
	vms := &desired.State{VMs: []*desired.VM{{Namespace: "default", Name: "web", DomainName: "default_web", UUID: "5f0c8a2e-0000-5000-8000-000000000001"}}}
	return Desired(set, vms, nil)
}

func (w *world) plan(st *State) *Plan {
	w.t.Helper()
	p, err := w.m.Plan(context.Background(), st)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

func (w *world) apply(st *State) (*Plan, plan.Report) {
	w.t.Helper()
	p := w.plan(st)
	return p, w.m.Apply(context.Background(), p)
}

func actions(p *Plan) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, string(s.Action)+" "+s.Object)
	}
	return out
}

func (w *world) read(p string) []byte {
	w.t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func TestSnapshot_takeChangeRestore(t *testing.T) {
	w := newWorld(t)
	original := w.read(w.disk)
	st := w.state(vmDoc + snapDoc("before"))
	p, rep := w.apply(st)
	if got := actions(p); len(got) != 1 || got[0] != "snapshot VirtualMachineSnapshot default/before" {
		t.Fatalf("plan %v", got)
	}
	if rep.Failed > 0 || rep.Outcomes[0].Result != plan.Done {
		t.Fatalf("apply %+v", rep)
	}
	content := filepath.Join(w.dir, "state", "snapshots", "default", "before")
	if !bytes.Equal(w.read(filepath.Join(content, "root.img")), original) {
		t.Fatal("the content's copy of root differs from the disk")
	}
	if _, err := os.Stat(content + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary content directory left: %v", err)
	}
	snaps, contents, _ := w.m.Status(st)
	s := snaps[0].Status
	if s.Phase != snapshotv1beta1.Succeeded || s.ReadyToUse == nil || !*s.ReadyToUse || s.CreationTime == nil ||
		s.VirtualMachineSnapshotContentName == nil || *s.VirtualMachineSnapshotContentName != contents[0].Name ||
		!strings.HasPrefix(contents[0].Name, "vmsnapshot-content-") {
		t.Fatalf("snapshot status %+v, contents %v", s, contents)
	}
	if s.SnapshotVolumes == nil || len(s.SnapshotVolumes.IncludedVolumes) != 1 || s.SnapshotVolumes.ExcludedVolumes[0] != "scratch" {
		t.Errorf("volumes %+v: want root included, the emptyDisk excluded", s.SnapshotVolumes)
	}
	if contents[0].Annotations[AnnotationHostOnly] != "true" || contents[0].Spec.VolumeBackups[0].VolumeName != "root" {
		t.Errorf("content %+v", contents[0])
	}
	if p := w.plan(st); len(p.Steps) != 0 {
		t.Errorf("a taken snapshot plans %v", actions(p))
	}

	// Change the disk, then restore.
	f, _ := os.OpenFile(w.disk, os.O_WRONLY, 0)
	f.WriteAt([]byte("GARBAGE GARBAGE"), 8<<20+100)
	f.Close()
	if bytes.Equal(w.read(w.disk), original) {
		t.Fatal("the disk did not change")
	}
	st = w.state(vmDoc + snapDoc("before") + restoreDoc("back", "before", ""))
	p, rep = w.apply(st)
	if got := actions(p); len(got) != 1 || got[0] != "restore VirtualMachineRestore default/back" || rep.Failed > 0 {
		t.Fatalf("plan %v, report %+v", got, rep)
	}
	if !bytes.Equal(w.read(w.disk), original) {
		t.Fatal("the restore did not bring the original bytes back")
	}
	_, _, restores := w.m.Status(st)
	r := restores[0].Status
	if r.Complete == nil || !*r.Complete || r.RestoreTime == nil || len(r.Restores) != 1 || r.Restores[0].VolumeName != "root" ||
		r.Restores[0].DataVolumeName == nil || *r.Restores[0].DataVolumeName != "web-root" {
		t.Fatalf("restore status %+v", r)
	}

	// A restore runs once, across restarts too.
	f, _ = os.OpenFile(w.disk, os.O_WRONLY, 0)
	f.WriteAt([]byte("written after the restore"), 0)
	f.Close()
	w.open()
	if p := w.plan(st); len(p.Steps) != 0 {
		t.Fatalf("a completed restore plans %v after a restart", actions(p))
	}
	// A changed spec after completion is reported, not run.
	st = w.state(vmDoc + snapDoc("before") + restoreDoc("back", "before", "  targetReadinessPolicy: StopTarget\n"))
	p, _ = w.apply(st)
	if len(p.Steps) != 1 || p.Steps[0].Action != plan.Keep || !strings.Contains(p.Steps[0].Reason, "runs once") {
		t.Fatalf("plan %v", actions(p))
	}
	if !bytes.HasPrefix(w.read(w.disk), []byte("written after the restore")) {
		t.Error("a completed restore ran again")
	}
}

func TestSnapshot_runningVMWaitsThenDeadline(t *testing.T) {
	w := newWorld(t)
	w.doms["default_web"] = hv.Running
	st := w.state(vmDoc + snapDoc("live"))
	p, _ := w.apply(st)
	if len(p.Steps) != 1 || p.Steps[0].Action != plan.Wait || p.Steps[0].Reason != msgRunningSnapshot {
		t.Fatalf("plan %v", p.Steps)
	}
	snaps, _, _ := w.m.Status(st)
	s := snaps[0].Status
	if s.Phase != snapshotv1beta1.InProgress || *s.ReadyToUse || s.Conditions[0].Message != msgRunningSnapshot {
		t.Fatalf("status %+v", s)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "state", "snapshots", "default", "live")); !os.IsNotExist(err) {
		t.Error("a running VM's snapshot made a content")
	}
	// Past failureDeadline (5m by default) it fails, as KubeVirt's does.
	w.now = w.now.Add(6 * time.Minute)
	p, _ = w.apply(st)
	if len(p.Steps) != 1 || p.Steps[0].Action != ActFail || !strings.Contains(p.Steps[0].Reason, msgDeadline) {
		t.Fatalf("plan %v", p.Steps)
	}
	snaps, _, _ = w.m.Status(st)
	if s := snaps[0].Status; s.Phase != snapshotv1beta1.Failed || s.Error == nil || !strings.Contains(*s.Error.Message, msgDeadline) {
		t.Fatalf("status %+v", s)
	}
	// Stopping the VM later does not revive a failed snapshot.
	w.doms["default_web"] = hv.Shutoff
	if p := w.plan(st); len(p.Steps) != 0 {
		t.Errorf("a failed snapshot plans %v", actions(p))
	}
}

func TestSnapshot_restoreWaitsForStoppedVM(t *testing.T) {
	w := newWorld(t)
	st := w.state(vmDoc + snapDoc("s1"))
	w.apply(st)
	w.doms["default_web"] = hv.Running
	st = w.state(vmDoc + snapDoc("s1") + restoreDoc("r1", "s1", ""))
	p, _ := w.apply(st)
	if len(p.Steps) != 1 || p.Steps[0].Action != plan.Wait || p.Steps[0].Reason != msgRunningRestore {
		t.Fatalf("plan %v", p.Steps)
	}
	_, _, rs := w.m.Status(st)
	if *rs[0].Status.Complete || rs[0].Status.Conditions[0].Message != msgRunningRestore {
		t.Fatalf("status %+v", rs[0].Status)
	}
}

func TestSnapshot_pruneGuard(t *testing.T) {
	w := newWorld(t)
	w.apply(w.state(vmDoc + snapDoc("a") + snapDoc("b")))
	dirA := filepath.Join(w.dir, "state", "snapshots", "default", "a")
	dirB := filepath.Join(w.dir, "state", "snapshots", "default", "b")
	// Removing every snapshot at once is held.
	p, rep := w.apply(w.state(vmDoc))
	if len(p.Steps) != 2 || p.Steps[0].Action != plan.Hold || rep.Count(plan.Held) != 2 || !strings.Contains(p.Steps[0].Reason, "--allow-prune-all") {
		t.Fatalf("plan %v", p.Steps)
	}
	if _, err := os.Stat(dirA); err != nil {
		t.Fatal("a held delete removed the content")
	}
	// Removing one of two deletes its content.
	p, _ = w.apply(w.state(vmDoc + snapDoc("b")))
	if got := actions(p); len(got) != 1 || got[0] != "delete-content VirtualMachineSnapshot default/a" {
		t.Fatalf("plan %v", got)
	}
	if _, err := os.Stat(dirA); !os.IsNotExist(err) {
		t.Errorf("content a still there: %v", err)
	}
	// The last one goes with the confirmation.
	w.allowPA = true
	w.open()
	w.apply(w.state(vmDoc))
	if _, err := os.Stat(dirB); !os.IsNotExist(err) {
		t.Errorf("content b still there: %v", err)
	}
	if _, c, _ := w.m.Status(w.state(vmDoc)); len(c) != 0 {
		t.Errorf("contents left: %v", c)
	}
}

func TestSnapshot_lostContentIsDrift(t *testing.T) {
	w := newWorld(t)
	st := w.state(vmDoc + snapDoc("s"))
	w.apply(st)
	os.Remove(filepath.Join(w.dir, "state", "snapshots", "default", "s", "root.img"))
	p, _ := w.apply(st)
	if d := p.Drift(); len(d) != 1 || d[0].Action != ActLost {
		t.Fatalf("drift %v", p.Steps)
	}
	snaps, _, _ := w.m.Status(st)
	if s := snaps[0].Status; *s.ReadyToUse || s.Error == nil || !strings.Contains(*s.Error.Message, "missing") {
		t.Fatalf("status %+v", s)
	}
	// A restore from it waits instead of writing half a disk.
	p, _ = w.apply(w.state(vmDoc + snapDoc("s") + restoreDoc("r", "s", "")))
	if len(p.Steps) != 2 || p.Steps[1].Action != plan.Wait {
		t.Fatalf("plan %v", p.Steps)
	}
}

func TestSnapshot_vmNotInSourceWaits(t *testing.T) {
	w := newWorld(t)
	p, _ := w.apply(w.state(snapDoc("orphan")))
	if len(p.Steps) != 1 || p.Steps[0].Action != plan.Wait || !strings.Contains(p.Steps[0].Reason, "VirtualMachine default/web is not in the source") {
		t.Fatalf("plan %v", p.Steps)
	}
}

func TestSnapshot_hostPathClassRefused(t *testing.T) {
	w := newWorld(t)
	set := manifests.Parse("repo.yaml", []byte(vmDoc+snapDoc("s")), manifests.Options{})
	ss := &storage.State{
		Classes: map[string]*storage.Class{"hpp": {Name: "hpp", Provisioner: storage.ProvisionerHostPath, Features: storage.FeaturesOf(storage.ProvisionerHostPath, nil)}},
		Claims:  map[string]*storage.Claim{"default/web-root": {Namespace: "default", Name: "web-root", Class: "hpp"}},
	}
	vms := &desired.State{VMs: []*desired.VM{{Namespace: "default", Name: "web", DomainName: "default_web"}}}
	p, _ := w.apply(Desired(set, vms, ss))
	if len(p.Steps) != 1 || p.Steps[0].Action != ActFail || !strings.Contains(p.Steps[0].Reason, "hostpath provisioner") ||
		!strings.Contains(p.Steps[0].Reason, "seed 8.18.1") {
		t.Fatalf("plan %v", p.Steps)
	}
}

func TestSnapshot_unfinishedContentRemovedAtStart(t *testing.T) {
	w := newWorld(t)
	tmp := filepath.Join(w.dir, "state", "snapshots", "default", "cut.tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tmp, "root.img"), []byte("half"), 0o600)
	w.open()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("unfinished content left at start: %v", err)
	}
}

// The status is read beside the loop (the API) while a snapshot is taken.
func TestSnapshot_statusBesideApply(t *testing.T) {
	w := newWorld(t)
	st := w.state(vmDoc + snapDoc("a") + snapDoc("b") + restoreDoc("r", "a", ""))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			w.m.Status(st)
		}
	}()
	w.apply(st)
	w.apply(st)
	<-done
	_, _, rs := w.m.Status(st)
	if !*rs[0].Status.Complete {
		t.Fatalf("restore %+v", rs[0].Status)
	}
}

// A running target fails a restore as its readiness policy says:
// FailImmediate at once, WaitGracePeriod (the default) after 5 minutes,
// WaitEventually never.
func TestSnapshot_restoreReadinessPolicy(t *testing.T) {
	w := newWorld(t)
	w.apply(w.state(vmDoc + snapDoc("s")))
	w.doms["default_web"] = hv.Running
	st := w.state(vmDoc + snapDoc("s") + restoreDoc("now", "s", "  targetReadinessPolicy: FailImmediate\n") +
		restoreDoc("grace", "s", "") + restoreDoc("ever", "s", "  targetReadinessPolicy: WaitEventually\n"))
	results := func() map[string]plan.Action {
		p, _ := w.apply(st)
		out := map[string]plan.Action{}
		for _, s := range p.Steps {
			out[s.Restore] = s.Action
		}
		return out
	}
	if got := results(); got["default/now"] != ActFail || got["default/grace"] != plan.Wait || got["default/ever"] != plan.Wait {
		t.Fatalf("first apply: %v", got)
	}
	w.now = w.now.Add(6 * time.Minute)
	if got := results(); got["default/now"] != "" || got["default/grace"] != ActFail || got["default/ever"] != plan.Wait {
		t.Fatalf("after the grace period: %v", got)
	}
	_, _, rs := w.m.Status(st)
	for _, r := range rs {
		if r.Name == "grace" && !strings.Contains(r.Status.Conditions[1].Message, "failed to be ready within 5m0s") {
			t.Errorf("grace status %+v", r.Status)
		}
	}
	// Stopping the VM later: a failed restore stays failed, the patient one runs.
	w.doms["default_web"] = hv.Shutoff
	if got := results(); len(got) != 1 || got["default/ever"] != ActRestore {
		t.Fatalf("after the stop: %v", got)
	}
}

// deletionPolicy Retain keeps the content of a snapshot removed from git,
// shown as host-only.
func TestSnapshot_retainKeepsContent(t *testing.T) {
	w := newWorld(t)
	retain := "---\napiVersion: snapshot.kubevirt.io/v1beta1\nkind: VirtualMachineSnapshot\nmetadata: {name: kept, namespace: default}\n" +
		"spec:\n  source: {apiGroup: kubevirt.io, kind: VirtualMachine, name: web}\n  deletionPolicy: Retain\n"
	w.apply(w.state(vmDoc + retain + snapDoc("other")))
	p, _ := w.apply(w.state(vmDoc + snapDoc("other")))
	if got := actions(p); len(got) != 1 || got[0] != "retain-content VirtualMachineSnapshot default/kept" {
		t.Fatalf("plan %v", got)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "state", "snapshots", "default", "kept", "root.img")); err != nil {
		t.Fatalf("retained content gone: %v", err)
	}
	snaps, contents, _ := w.m.Status(w.state(vmDoc + snapDoc("other")))
	if len(snaps) != 1 || len(contents) != 2 {
		t.Fatalf("snapshots %d, contents %d: want the retained content shown beside the other", len(snaps), len(contents))
	}
	if p := w.plan(w.state(vmDoc + snapDoc("other"))); len(p.Steps) != 0 {
		t.Errorf("a retained content plans %v", actions(p))
	}
}

// A persistent TPM's state is part of the snapshot and comes back with the
// restore; swtpm's lock file stays behind. A VM whose TPM is not
// persistent snapshots only its volumes.
func TestSnapshot_persistentTPMState(t *testing.T) {
	w := newWorld(t)
	const uuid = "5f0c8a2e-0000-5000-8000-000000000001"
	permall := filepath.Join(w.tpmDir(uuid), "tpm2", "tpm2-00.permall")
	if err := os.MkdirAll(filepath.Dir(permall), 0o700); err != nil {
		t.Fatal(err)
	}
	for p, data := range map[string]string{permall: "NV before", filepath.Join(filepath.Dir(permall), ".lock"): ""} {
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	vm := strings.Replace(vmDoc, "        devices:\n", "        devices:\n          tpm: {persistent: true}\n", 1)
	st := w.state(vm + snapDoc("before"))
	if !st.VMs["default/web"].PersistentTPM {
		t.Fatal("the VM's persistent TPM is not seen")
	}
	if _, rep := w.apply(st); rep.Failed > 0 || !strings.Contains(rep.Outcomes[0].Detail, "TPM state") {
		t.Fatalf("snapshot: %+v", rep)
	}
	content := filepath.Join(w.dir, "state", "snapshots", "default", "before")
	if got := w.read(filepath.Join(content, "tpm", "tpm2", "tpm2-00.permall")); string(got) != "NV before" {
		t.Fatalf("the content's TPM state is %q", got)
	}
	if _, err := os.Stat(filepath.Join(content, "tpm", "tpm2", ".lock")); !os.IsNotExist(err) {
		t.Errorf("swtpm's lock file was copied: %v", err)
	}

	volatile := filepath.Join(filepath.Dir(permall), "tpm2-00.volatilestate")
	for p, data := range map[string]string{permall: "NV after", volatile: "saved after the snapshot"} {
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st = w.state(vm + snapDoc("before") + restoreDoc("back", "before", ""))
	if _, rep := w.apply(st); rep.Failed > 0 || !strings.Contains(rep.Outcomes[0].Detail, "TPM state") {
		t.Fatalf("restore: %+v", rep)
	}
	if got := w.read(permall); string(got) != "NV before" {
		t.Errorf("the restored TPM state is %q, want the snapshot's", got)
	}
	if _, err := os.Stat(volatile); !os.IsNotExist(err) {
		t.Errorf("state saved after the snapshot survived the restore: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(permall), ".lock")); err != nil {
		t.Errorf("swtpm's lock file was removed: %v", err)
	}

	// Without persistent: true the TPM starts empty on every boot: nothing
	// to keep.
	st = w.state(vmDoc + snapDoc("plain"))
	if _, rep := w.apply(st); rep.Failed > 0 || strings.Contains(rep.Outcomes[len(rep.Outcomes)-1].Detail, "TPM") {
		t.Fatalf("snapshot of a VM without a persistent TPM: %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "state", "snapshots", "default", "plain", "tpm")); !os.IsNotExist(err) {
		t.Errorf("TPM state copied for a VM without a persistent TPM: %v", err)
	}
}
