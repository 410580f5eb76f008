package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const hostpathBase = `apiVersion: hostpathprovisioner.kubevirt.io/v1beta1
kind: HostPathProvisioner
metadata: {name: hostpath-provisioner}
spec:
  pathConfig: {path: /var/hpvolumes, useNamingPrefix: false}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: hostpath-provisioner
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubevirt.io/hostpath-provisioner
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: hostpath-retain}
provisioner: kubevirt.io/hostpath-provisioner
reclaimPolicy: Retain
volumeBindingMode: Immediate
`

func vm(name string, volumes ...string) string {
	var vols, disks strings.Builder
	for _, v := range volumes {
		kind, claim, _ := strings.Cut(v, ":")
		key := map[string]string{"dv": "dataVolume: {name: " + claim + "}", "pvc": "persistentVolumeClaim: {claimName: " + claim + "}"}[kind]
		fmt.Fprintf(&disks, "            - {name: %s, disk: {bus: virtio}}\n", claim)
		fmt.Fprintf(&vols, "        - {name: %s, %s}\n", claim, key)
	}
	return fmt.Sprintf(`---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: %s, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          disks:
%s      volumes:
%s`, name, disks.String(), vols.String())
}

const dvHTTP = `---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: fedora, namespace: default}
spec:
  source:
    http: {url: "https://images.example/fedora.qcow2"}
  storage:
    resources: {requests: {storage: 1Gi}}
`

// A DataVolume on the hostpath provisioner waits for its first consumer,
// then gets a directory, is bound and imported in the background; its
// disk.img is sized to the request and the claim to request + overhead.
func TestManager_hostpathDataVolume(t *testing.T) {
	r := newRig(t)
	r.imp.auto = false
	st := r.state(hostpathBase + dvHTTP)
	if st.Diags.HasErrors() {
		t.Fatal(st.Diags)
	}
	p := r.plan(st)
	if got := actions(p); !slices.Equal(got, []string{"wait DataVolume default/fedora"}) {
		t.Fatalf("without a consumer: %q", got)
	}
	if s, _ := r.m.Claim("default", "fedora"); s.Phase != PhaseWaitForFirstConsumer {
		t.Fatalf("phase %q, want WaitForFirstConsumer", s.Phase)
	}

	st = r.state(hostpathBase + dvHTTP + vm("web", "dv:fedora"))
	c := st.Claims["default/fedora"]
	if c.Capacity != 1084<<20 || c.DiskSize != 1<<30 || c.VolumeMode != Filesystem || !slices.Equal(c.AccessModes, []string{ReadWriteOnce}) {
		t.Fatalf("claim sizing %+v", c)
	}
	p = r.plan(st)
	dir := "/var/hpvolumes/" + dynamicName("default/fedora")
	want := []string{
		"provision DataVolume default/fedora " + dir,
		"bind DataVolume default/fedora " + dir + "/disk.img",
		"import DataVolume default/fedora " + dir + "/disk.img",
	}
	if diff := cmp.Diff(want, actions(p)); diff != "" {
		t.Fatalf("plan (-want +got):\n%s", diff)
	}
	rep := r.m.Apply(t.Context(), p, All)
	if rep.Err() != nil {
		t.Fatal(rep.Outcomes)
	}
	waitFor(t, func() bool { s, _ := r.m.Claim("default", "fedora"); return s.Progress == 42 })
	s, ok := r.m.Claim("default", "fedora")
	if !ok || s.Ready || s.Phase != PhaseImportInProgress || s.Path != dir+"/disk.img" || s.Block {
		t.Fatalf("during import: %+v", s)
	}
	if got := actions(r.plan(st)); !slices.Equal(got, []string{"wait DataVolume default/fedora " + dir + "/disk.img"}) {
		t.Fatalf("plan during import: %q", got)
	}
	req := r.imp.last()
	if req.Size != 1<<30 || req.URL != "https://images.example/fedora.qcow2" || req.Scratch != "/var/hpvolumes/fedora-scratch-"+dynamicName("default/fedora") {
		t.Fatalf("request %+v", req)
	}
	r.imp.finish(t, dir+"/disk.img", nil)
	waitFor(t, func() bool { s, _ := r.m.Claim("default", "fedora"); return s.Ready })
	if s, _ := r.m.Claim("default", "fedora"); s.Phase != PhaseSucceeded || s.Progress != 100 {
		t.Fatalf("after import: %+v", s)
	}
	if p := r.plan(st); !p.Empty() || !slices.Contains(p.InSync, "DataVolume default/fedora") {
		t.Fatalf("plan after import: %q", actions(p))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A failed import is Failed with its reason, retried after a back-off, and
// a VM never sees it as ready.
func TestManager_failedImportRetries(t *testing.T) {
	r := newRig(t)
	r.imp.autoErr = errors.New("GET https://images.example/fedora.qcow2: 401 Unauthorized: wrong or missing credentials")
	st := r.state(hostpathBase + dvHTTP + vm("web", "dv:fedora"))
	r.apply(st)
	s, _ := r.m.Claim("default", "fedora")
	if s.Ready || s.Phase != PhaseFailed || !strings.Contains(s.Message, "401 Unauthorized") {
		t.Fatalf("after failure: %+v", s)
	}
	p := r.plan(st)
	if a := hasAction(p, ActWait, "DataVolume default/fedora"); a == nil || !strings.Contains(a.Reason, "retry in 10s") {
		t.Fatalf("before the back-off: %q", actions(p))
	}
	r.now = r.now.Add(11 * time.Second)
	r.imp.autoErr = nil
	p = r.plan(st)
	if a := hasAction(p, ActImport, "DataVolume default/fedora"); a == nil || !strings.Contains(a.Reason, "retry 1 after") {
		t.Fatalf("after the back-off: %q", actions(p))
	}
	r.m.Apply(t.Context(), p, All)
	_ = r.m.Wait(t.Context())
	if s, _ := r.m.Claim("default", "fedora"); !s.Ready {
		t.Fatalf("after retry: %+v", s)
	}
}

// An agent killed during an import leaves the record in progress; the next
// agent restarts the import and nothing is ready before it completes.
func TestManager_restartInterruptedImport(t *testing.T) {
	r := newRig(t)
	r.imp.auto = false
	st := r.state(hostpathBase + dvHTTP + vm("web", "dv:fedora"))
	r.m.Apply(t.Context(), r.plan(st), All)
	waitFor(t, func() bool { s, _ := r.m.Claim("default", "fedora"); return s.Progress == 42 })
	r.restart() // Close cancels the running import: the record stays in progress
	if s, _ := r.m.Claim("default", "fedora"); s.Ready || s.Phase != PhaseImportInProgress {
		t.Fatalf("after restart: %+v", s)
	}
	p := r.plan(st)
	a := hasAction(p, ActImport, "DataVolume default/fedora")
	if a == nil || !strings.Contains(a.Reason, "restart the import interrupted at 42.0%") {
		t.Fatalf("plan after restart: %q", actions(p))
	}
	r.imp.auto = true
	r.m.Apply(t.Context(), p, All)
	_ = r.m.Wait(t.Context())
	if s, _ := r.m.Claim("default", "fedora"); !s.Ready {
		t.Fatalf("restarted import: %+v", s)
	}
	r.m.mu.Lock()
	restarts := r.m.claimRecs["default/fedora"].Restarts
	r.m.mu.Unlock()
	if restarts != 1 {
		t.Fatalf("restarts = %d", restarts)
	}
}

const loopPV = `---
apiVersion: v1
kind: PersistentVolume
metadata: {name: local-block-pv10, labels: {disk: fast}}
spec:
  local: {path: /dev/loop10}
  capacity: {storage: 2Gi}
  volumeMode: Block
  storageClassName: local
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: %s
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [node01]}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
`

const blockDV = `---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: blockdv, namespace: default}
spec:
  source: {blank: {}}
  pvc:
    accessModes: [ReadWriteOnce]
    volumeMode: Block
    storageClassName: local
    selector: {matchLabels: {disk: fast}}
    resources: {requests: {storage: 1Gi}}
`

// The seed's local block PV (8.18.10): nodevirt creates the backing file,
// attaches /dev/loop10 and binds a Block claim to it; after a reboot the
// device is attached again (drift); a device holding another file is a
// conflict nodevirt does not touch.
func TestManager_loopBlockPV(t *testing.T) {
	r := newRig(t)
	st := r.state(fmt.Sprintf(loopPV, "Delete") + blockDV + vm("db", "dv:blockdv"))
	if st.Diags.HasErrors() {
		t.Fatal(st.Diags)
	}
	backing := "/var/lib/nodevirt/blockpv/local-block-pv10.img"
	p, rep := r.apply(st)
	want := []string{
		"provision PersistentVolume local-block-pv10 " + backing,
		"attach-loop PersistentVolume local-block-pv10 /dev/loop10",
		"bind DataVolume default/blockdv /dev/loop10",
		"import DataVolume default/blockdv /dev/loop10",
	}
	if diff := cmp.Diff(want, actions(p)); diff != "" || rep.Err() != nil {
		t.Fatalf("plan (-want +got):\n%s\n%v", diff, rep.Outcomes)
	}
	if b, ok, _ := r.loops.Backing("/dev/loop10"); !ok || b != backing {
		t.Fatalf("loop10 -> %q", b)
	}
	s, _ := r.m.Claim("default", "blockdv")
	if !s.Ready || !s.Block || s.Path != "/dev/loop10" {
		t.Fatalf("claim %+v", s)
	}
	if req := r.imp.last(); !req.Block || req.Size != 0 || req.Kind != SourceBlank {
		t.Fatalf("request %+v", req)
	}

	// Reboot: loop devices are gone; the record says nodevirt attached it.
	r.loops = newFakeLoops()
	r.restart()
	r.m.loops = r.loops
	p = r.plan(st)
	if a := hasAction(p, ActAttach, "PersistentVolume local-block-pv10"); a == nil || !a.Drift {
		t.Fatalf("after reboot: %q", actions(p))
	}
	r.m.Apply(t.Context(), p, All)
	if _, ok, _ := r.loops.Backing("/dev/loop10"); !ok {
		t.Fatal("not re-attached")
	}

	// Another file on the device: reported, never healed.
	r.loops.dev["/dev/loop10"] = "/srv/other.img"
	p = r.plan(st)
	a := hasAction(p, ActConflict, "PersistentVolume local-block-pv10")
	if a == nil || !strings.Contains(a.Reason, "attached to /srv/other.img") || len(p.Drift()) == 0 {
		t.Fatalf("conflict: %q", actions(p))
	}
	r.m.Apply(t.Context(), p, All)
	if b, _, _ := r.loops.Backing("/dev/loop10"); b != "/srv/other.img" {
		t.Fatal("nodevirt touched a device it does not own")
	}
}

// Claims bind by class, capacity, access modes and matchLabels; a Released
// volume is not reused (seed 8.18.19).
func TestManager_bindingRules(t *testing.T) {
	r := newRig(t)
	base := fmt.Sprintf(loopPV, "Retain")
	for _, c := range []struct {
		name, claim string
		bound       bool
	}{
		{"matches", blockDV, true},
		{"other labels", strings.Replace(blockDV, "disk: fast", "disk: slow", 1), false},
		{"too large", strings.Replace(blockDV, "storage: 1Gi", "storage: 3Gi", 1), false},
		{"other class", strings.Replace(blockDV, "storageClassName: local", "storageClassName: other", 1) + "---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: other}\nprovisioner: kubernetes.io/no-provisioner\n", false},
		{"Filesystem", strings.Replace(blockDV, "volumeMode: Block", "volumeMode: Filesystem", 1), false},
		{"RWX", strings.Replace(blockDV, "[ReadWriteOnce]", "[ReadWriteMany]", 1), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := r.state(hostpathBase + base + c.claim + vm("db", "dv:blockdv"))
			p := r.plan(st)
			if got := hasAction(p, ActBind, "DataVolume default/blockdv") != nil; got != c.bound {
				t.Fatalf("bound = %v: %q", got, actions(p))
			}
			if !c.bound {
				a := hasAction(p, ActWait, "DataVolume default/blockdv")
				if a == nil || !strings.Contains(a.Reason, "no PersistentVolume on this node matches") {
					t.Fatalf("unbound claim: %q", actions(p))
				}
			}
		})
	}
}

// Reclaim (8.18.19, 8.18.20): Delete removes the data; Retain keeps it,
// marks the volume Released and a new claim does not get it.
func TestManager_reclaim(t *testing.T) {
	t.Run("delete", func(t *testing.T) {
		r := newRig(t)
		keep := `---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: keep, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: hostpath-retain
  resources: {requests: {storage: 1Gi}}
`
		r.apply(r.state(hostpathBase + dvHTTP + keep + vm("web", "dv:fedora")))
		dir := "/var/hpvolumes/" + dynamicName("default/fedora")
		if !r.files.Exists(dir + "/disk.img") {
			t.Fatal("no disk")
		}
		p, _ := r.apply(r.state(hostpathBase + keep))
		if a := hasAction(p, ActDeleteData, "DataVolume default/fedora"); a == nil || a.Target != dir {
			t.Fatalf("plan: %q", actions(p))
		}
		if r.files.Exists(dir) {
			t.Fatal("data of a Delete claim is still there")
		}
		if _, ok := r.m.Claim("default", "fedora"); ok {
			t.Fatal("claim still known")
		}
	})
	t.Run("retain", func(t *testing.T) {
		r := newRig(t)
		pv := fmt.Sprintf(loopPV, "Retain")
		other := `---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: other, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: hostpath-retain
  resources: {requests: {storage: 1Gi}}
`
		r.apply(r.state(hostpathBase + pv + blockDV + other + vm("db", "dv:blockdv")))
		backing := "/var/lib/nodevirt/blockpv/local-block-pv10.img"
		p, _ := r.apply(r.state(hostpathBase + pv + other + strings.Replace(blockDV, "name: blockdv", "name: again", 1) + vm("db", "dv:again")))
		if a := hasAction(p, ActRelease, "DataVolume default/blockdv"); a == nil || !strings.Contains(a.Reason, "Released") {
			t.Fatalf("plan: %q", actions(p))
		}
		if !r.files.Exists(backing) {
			t.Fatal("retained data removed")
		}
		r.m.mu.Lock()
		phase := r.m.volumeRecs["local-block-pv10"].Phase
		r.m.mu.Unlock()
		if phase != VolumeReleased {
			t.Fatalf("volume phase %q", phase)
		}
		p = r.plan(r.state(hostpathBase + pv + other + strings.Replace(blockDV, "name: blockdv", "name: again", 1) + vm("db", "dv:again")))
		if hasAction(p, ActBind, "DataVolume default/again") != nil {
			t.Fatalf("a Released volume was reused: %q", actions(p))
		}
	})
}

// Nothing with data goes when a file fails to parse or when a revision
// would remove every claim; dataVolumeTemplates go with their VM.
func TestManager_pruneGuards(t *testing.T) {
	r := newRig(t)
	vmDV := strings.Replace(vm("web", "dv:root"), "spec:\n  runStrategy", `spec:
  dataVolumeTemplates:
    - metadata: {name: root}
      spec:
        source: {blank: {}}
        storage: {resources: {requests: {storage: 64Mi}}}
  runStrategy`, 1)
	pvc := `---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: hostpath-retain
  resources: {requests: {storage: 1Gi}}
`
	st := r.state(hostpathBase + vmDV + pvc)
	if st.Claims["default/root"] == nil || st.Claims["default/root"].Owner != "VirtualMachine default/web" {
		t.Fatalf("template claim: %+v", st.Claims["default/root"])
	}
	r.apply(st)

	broken := r.state(hostpathBase + pvc + "---\nkind: [\n")
	if !broken.PruneSuspended {
		t.Fatal("a syntax error must suspend pruning")
	}
	p := r.plan(broken)
	if a := hasAction(p, ActHold, "DataVolume default/root"); a == nil {
		t.Fatalf("parse failure: %q", actions(p))
	}

	p = r.plan(r.state(hostpathBase))
	if hasAction(p, ActHold, "DataVolume default/root") == nil || hasAction(p, ActHold, "PersistentVolumeClaim default/data") == nil {
		t.Fatalf("removing everything must be held: %q", actions(p))
	}

	// Invalid VM: its DataVolume keeps its state.
	bad := strings.Replace(vmDV, "runStrategy: Always", "runStrategy: Sometimes", 1)
	p = r.plan(r.state(hostpathBase + bad + pvc))
	if hasAction(p, ActKeep, "DataVolume default/root") == nil || hasAction(p, ActDeleteData, "DataVolume default/root") != nil {
		t.Fatalf("invalid owner: %q", actions(p))
	}

	// VM removed: its DataVolume goes with it (8.18.20).
	p, _ = r.apply(r.state(hostpathBase + pvc))
	if a := hasAction(p, ActDeleteData, "DataVolume default/root"); a == nil || !strings.Contains(a.Reason, "its VM VirtualMachine default/web was removed") {
		t.Fatalf("owner removed: %q", actions(p))
	}
}

// StorageClass parameters are immutable once used: a change is an error,
// the volumes keep the class as first used.
func TestManager_classImmutable(t *testing.T) {
	r := newRig(t)
	r.apply(r.state(hostpathBase + dvHTTP + vm("web", "dv:fedora")))
	changed := strings.Replace(hostpathBase, "reclaimPolicy: Delete", "reclaimPolicy: Retain", 1)
	p := r.plan(r.state(changed + dvHTTP + vm("web", "dv:fedora")))
	var found bool
	for _, d := range p.Diags {
		if errors.Is(d.Err, ErrClassImmutable) && d.Object == "StorageClass hostpath-provisioner" && d.Path == "reclaimPolicy" && d.Line > 0 {
			found = true
		}
	}
	if !found {
		t.Fatalf("diagnostics: %v", p.Diags)
	}
	a := hasAction(p, ActKeep, "StorageClass hostpath-provisioner")
	if a == nil || len(a.Changes) != 1 || a.Changes[0].From != "Delete" || a.Changes[0].To != "Retain" {
		t.Fatalf("keep action: %+v", a)
	}
	// An unused class may change.
	p = r.plan(r.state(strings.Replace(hostpathBase, "reclaimPolicy: Retain", "reclaimPolicy: Delete", 1) + dvHTTP + vm("web", "dv:fedora")))
	if hasAction(p, ActKeep, "StorageClass hostpath-retain") != nil {
		t.Fatalf("unused class: %q", actions(p))
	}
}

// Credentials come from the secrets directory, or from a Secret in git
// (with a warning); the CA from a ConfigMap.
func TestManager_credentials(t *testing.T) {
	r := newRig(t)
	r.secrets["default/creds"] = map[string][]byte{"accessKeyId": []byte("user"), "secretKey": []byte("pw")}
	dv := strings.Replace(dvHTTP, `http: {url: "https://images.example/fedora.qcow2"}`,
		`http: {url: "https://images.example/fedora.qcow2", secretRef: creds, certConfigMap: ca}`, 1)
	ca := `---
apiVersion: v1
kind: ConfigMap
metadata: {name: ca, namespace: default}
data: {ca.pem: "-----BEGIN CERTIFICATE-----"}
`
	r.apply(r.state(hostpathBase + dv + ca + vm("web", "dv:fedora")))
	req := r.imp.last()
	if req.Username != "user" || req.Password != "pw" || !strings.Contains(string(req.CA), "BEGIN CERTIFICATE") {
		t.Fatalf("request %+v", req)
	}

	secret := `---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: default}
stringData: {accessKeyId: gituser, secretKey: gitpw}
`
	st := r.state(hostpathBase + strings.Replace(dv, "name: fedora", "name: other", 1) + ca + secret + vm("web", "dv:other"))
	var warned bool
	for _, d := range st.Diags {
		if errors.Is(d.Err, ErrSecretInGit) && d.Object == "Secret default/creds" {
			warned = true
		}
	}
	if !warned || st.Diags.HasErrors() {
		t.Fatalf("diags %v", st.Diags)
	}
	r.apply(st)
	if req := r.imp.last(); req.Username != "gituser" {
		t.Fatalf("request %+v", req)
	}

	// A missing secret fails the import with the reason.
	delete(r.secrets, "default/creds")
	r.apply(r.state(hostpathBase + strings.Replace(dv, "name: fedora", "name: third", 1) + ca + vm("web", "dv:third")))
	if s, _ := r.m.Claim("default", "third"); s.Phase != PhaseFailed || !strings.Contains(s.Message, "secret default/creds") {
		t.Fatalf("missing secret: %+v", s)
	}
}

// Clones wait for their source; uploads wait for an upload.
func TestManager_cloneAndUpload(t *testing.T) {
	r := newRig(t)
	r.imp.auto = false
	clone := `---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: copy, namespace: default}
spec:
  source: {pvc: {namespace: default, name: fedora}}
  storage: {}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: up, namespace: default}
spec:
  source: {upload: {}}
  storage: {resources: {requests: {storage: 1Gi}}}
`
	st := r.state(hostpathBase + dvHTTP + clone + vm("web", "dv:fedora", "dv:copy", "dv:up"))
	if st.Diags.HasErrors() {
		t.Fatal(st.Diags)
	}
	if c := st.Claims["default/copy"]; c.Request != 1<<30 {
		t.Fatalf("clone size from its source: %d", c.Request)
	}
	p := r.plan(st)
	if a := hasAction(p, ActWait, "DataVolume default/copy"); a == nil || !strings.Contains(a.Reason, "clone source default/fedora is not ready") {
		t.Fatalf("clone: %q", actions(p))
	}
	if a := hasAction(p, ActWait, "DataVolume default/up"); a == nil || !strings.Contains(a.Reason, "waiting for the volume") || p.Claims["default/up"].Phase != PhaseUploadScheduled {
		t.Fatalf("upload: %q", actions(p))
	}
	r.m.Apply(t.Context(), p, All)
	// The volume the apply provisioned takes the upload at once.
	if s, _ := r.m.Claim("default", "up"); s.Phase != PhaseUploadReady || !strings.Contains(s.Message, "nodevirt image-upload dv up --no-create --image-path FILE") {
		t.Fatalf("upload phase %+v", s)
	}
	r.imp.finish(t, "/var/hpvolumes/"+dynamicName("default/fedora")+"/disk.img", nil)
	waitFor(t, func() bool { s, _ := r.m.Claim("default", "fedora"); return s.Ready })
	r.imp.auto = true
	r.apply(st)
	if req := r.imp.last(); req.Kind != SourcePVC || req.SourcePath != "/var/hpvolumes/"+dynamicName("default/fedora")+"/disk.img" {
		t.Fatalf("clone request %+v", req)
	}
	if s, _ := r.m.Claim("default", "copy"); !s.Ready {
		t.Fatalf("clone %+v", s)
	}
}

// A plain PVC gets a blank disk.img; self-heal off only reports drift.
func TestManager_plainClaimAndSelfHeal(t *testing.T) {
	r := newRig(t)
	pvc := `---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`
	st := r.state(hostpathBase + pvc + vm("web", "pvc:data"))
	r.apply(st)
	s, _ := r.m.Claim("default", "data")
	dir := "/var/hpvolumes/" + dynamicName("default/data")
	if !s.Ready || s.Phase != PhaseBound || s.Path != dir+"/disk.img" {
		t.Fatalf("claim %+v", s)
	}
	if size, _ := r.files.Size(dir + "/disk.img"); size != 967<<20 {
		t.Fatalf("disk.img is %d bytes, want 1Gi less 5.5%% overhead rounded down to MiB", size)
	}
	_ = r.files.Remove(dir + "/disk.img")
	r.cfg.SelfHeal = false
	r.restart()
	p, rep := r.apply(st)
	if a := hasAction(p, ActCreateDisk, "PersistentVolumeClaim default/data"); a == nil || !a.Drift {
		t.Fatalf("missing disk: %q", actions(p))
	}
	if rep.Outcomes[0].Result != "skipped" || r.files.Exists(dir+"/disk.img") {
		t.Fatalf("self-heal off: %+v", rep.Outcomes)
	}
}

// A PersistentVolume directory outside the allowed roots is refused.
func TestManager_allowedRoots(t *testing.T) {
	r := newRig(t)
	pv := `---
apiVersion: v1
kind: PersistentVolume
metadata: {name: etc}
spec:
  hostPath: {path: /etc/pv}
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
`
	p := r.plan(r.state(hostpathBase + pv))
	if a := hasAction(p, ActConflict, "PersistentVolume etc"); a == nil || !strings.Contains(a.Reason, "outside the allowed roots") || !p.Diags.HasErrors() {
		t.Fatalf("plan %q %v", actions(p), p.Diags)
	}
	r.cfg.AllowedRoots = []string{"/etc"}
	r.restart()
	p = r.plan(r.state(hostpathBase + pv))
	if hasAction(p, ActProvision, "PersistentVolume etc") == nil {
		t.Fatalf("allowed: %q", actions(p))
	}
}

// Apply in two stages around the VMs: Setup never deletes, Teardown never
// provisions.
func TestManager_applyStages(t *testing.T) {
	r := newRig(t)
	keep := `---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: keep, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: hostpath-retain
  resources: {requests: {storage: 1Gi}}
`
	r.apply(r.state(hostpathBase + dvHTTP + keep + vm("web", "dv:fedora")))
	dir := "/var/hpvolumes/" + dynamicName("default/fedora")
	st := r.state(hostpathBase + keep + strings.Replace(dvHTTP, "name: fedora", "name: next", 1) + vm("web", "dv:next"))
	p := r.plan(st)
	rep := r.m.Apply(t.Context(), p, Setup)
	for _, o := range rep.Outcomes {
		if phaseOf(o.Action) != Setup {
			t.Errorf("Setup ran %s", o.Action)
		}
	}
	if !r.files.Exists(dir) {
		t.Fatal("Setup deleted data")
	}
	_ = r.m.Wait(t.Context())
	rep = r.m.Apply(t.Context(), p, Teardown)
	if len(rep.Outcomes) != 1 || rep.Outcomes[0].Action != ActDeleteData || r.files.Exists(dir) {
		t.Fatalf("Teardown: %+v", rep.Outcomes)
	}
}

// A storage plan is plain data: read back from its JSON (the state, the
// bindings, each step's claim and volume) it applies as the original does,
// setup and teardown, on twin hosts.
func TestManager_planSurvivesJSON(t *testing.T) {
	pvc := `---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`
	first := hostpathBase + fmt.Sprintf(loopPV, "Delete") + blockDV + dvHTTP + pvc + vm("web", "dv:fedora", "pvc:data") + vm("db", "dv:blockdv")
	second := hostpathBase + fmt.Sprintf(loopPV, "Delete") + blockDV + vm("db", "dv:blockdv")
	type result struct {
		Outcomes, Next []string
		Claims         []ClaimStatus
		Files          []string
		Loops          map[string]string
	}
	var got [2]result
	for i, viaJSON := range []bool{false, true} {
		r := newRig(t)
		var res result
		for _, yaml := range []string{first, second} {
			p := r.plan(r.state(yaml))
			if viaJSON {
				p = jsonCopy(t, p)
			}
			for _, phase := range []Phase{Setup, Teardown} {
				rep := r.m.Apply(t.Context(), p, phase)
				if rep.Err() != nil {
					t.Fatalf("json %v: %+v", viaJSON, rep.Outcomes)
				}
				for _, o := range rep.Outcomes {
					res.Outcomes = append(res.Outcomes, fmt.Sprintf("%s %s %s %s %s %s", o.Stage, o.Action, o.Object, o.Target, o.Result, o.Error))
				}
				if err := r.m.Wait(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			res.Next = append(res.Next, actions(r.plan(r.state(yaml)))...)
		}
		for _, key := range []string{"fedora", "data", "blockdv"} {
			s, _ := r.m.Claim("default", key)
			res.Claims = append(res.Claims, s)
		}
		for _, f := range []string{"/var/hpvolumes/" + dynamicName("default/fedora"), "/var/hpvolumes/" + dynamicName("default/data"), "/var/lib/nodevirt/blockpv/local-block-pv10.img"} {
			res.Files = append(res.Files, fmt.Sprint(f, " ", r.files.Exists(f)))
		}
		res.Loops = map[string]string{}
		if b, ok, _ := r.loops.Backing("/dev/loop10"); ok {
			res.Loops["/dev/loop10"] = b
		}
		got[i] = res
	}
	if !strings.Contains(strings.Join(got[0].Outcomes, "\n"), "storage delete-data DataVolume default/fedora") || len(got[0].Loops) != 1 {
		t.Fatalf("the original plans did not provision and delete: %q %v", got[0].Outcomes, got[0].Loops)
	}
	if d := cmp.Diff(got[0], got[1]); d != "" {
		t.Fatalf("applying the plans read back from JSON differs (-original +read back):\n%s", d)
	}
}

// jsonCopy writes v as JSON and reads it back.
func jsonCopy[T any](t *testing.T, v T) T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("read back %s: %v", b, err)
	}
	return out
}
