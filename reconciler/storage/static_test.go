package storage

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// seedBlockPV is the seed's local block PersistentVolume (8.18.10.4) as
// printed: class "local" with no StorageClass object anywhere.
const seedBlockPV = `kind: PersistentVolume
apiVersion: v1
metadata:
  name: local-block-pv10
  annotations:
spec:
  local:
    path: /dev/loop10
  capacity:
    storage: 2Gi
  volumeMode: Block
  storageClassName: local
  accessModes:
    - ReadWriteOnce
  persistentVolumeReclaimPolicy: Delete
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - key: kubernetes.io/hostname
          operator: In
          values:
          - node01
`

// seedUploadDV is the seed's upload DataVolume (8.18.10.5) as printed.
const seedUploadDV = `---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata:
  name: upload-datavolume
spec:
  source:
      upload: {}
  pvc:
    accessModes:
      - ReadWriteOnce
    resources:
      requests:
        storage: 2Gi
`

// The seed's 8.18.10 procedure, literally: the PersistentVolume and the
// DataVolume are accepted although no StorageClass "local" exists. As in
// Kubernetes, the DataVolume as printed (no class, Filesystem) does not
// bind the Block volume of class "local", and the wait says which fields
// differ; naming the class and Block binds it by the class name alone.
func TestStatic_seedLocalBlockProcedure(t *testing.T) {
	r := newRig(t)
	st := r.state(seedBlockPV + seedUploadDV)
	if len(st.Diags) > 0 {
		t.Fatalf("the seed's manifests are refused: %v", st.Diags)
	}
	p := r.plan(st)
	a := hasAction(p, ActWait, "DataVolume default/upload-datavolume")
	if a == nil {
		t.Fatalf("as printed: %q", actions(p))
	}
	for _, want := range []string{`no PersistentVolume on this node matches: class ""`, `PersistentVolume local-block-pv10: storageClassName is "local"`} {
		if !strings.Contains(a.Reason, want) {
			t.Errorf("wait reason %q does not say %q", a.Reason, want)
		}
	}

	fixed := strings.Replace(seedUploadDV, "  pvc:\n", "  pvc:\n    storageClassName: local\n    volumeMode: Block\n", 1)
	st = r.state(seedBlockPV + fixed)
	if len(st.Diags) > 0 {
		t.Fatal(st.Diags)
	}
	if c := st.Claims["default/upload-datavolume"]; c == nil || c.Class != "local" || !c.Immediate {
		t.Fatalf("claim %+v", c)
	}
	p, rep := r.apply(st)
	want := []string{
		"provision PersistentVolume local-block-pv10 /var/lib/nodevirt/blockpv/local-block-pv10.img",
		"attach-loop PersistentVolume local-block-pv10 /dev/loop10",
		"bind DataVolume default/upload-datavolume /dev/loop10",
		"wait DataVolume default/upload-datavolume /dev/loop10",
	}
	if diff := cmp.Diff(want, actions(p)); diff != "" || rep.Err() != nil {
		t.Fatalf("plan (-want +got):\n%s\n%v", diff, rep.Outcomes)
	}
	if s := p.Claims["default/upload-datavolume"]; s.Phase != PhaseUploadScheduled || !s.Block || s.Path != "/dev/loop10" {
		t.Fatalf("status %+v", s)
	}
}

// A claim of a class with no StorageClass binds a static volume of that
// class; the storage API takes accessModes and volumeMode from the class's
// volumes (CDI does so for local storage). A class with neither a
// StorageClass nor a volume is refused naming both; a claim of a static
// class that no volume fits waits, saying the volume that is off and that
// no StorageClass provisions one.
func TestStatic_bindByClassName(t *testing.T) {
	storageDV := `---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: data, namespace: default}
spec:
  source: {blank: {}}
  storage:
    storageClassName: local
    resources: {requests: {storage: 1Gi}}
`
	t.Run("storage API", func(t *testing.T) {
		r := newRig(t)
		st := r.state(seedBlockPV + storageDV)
		if len(st.Diags) > 0 {
			t.Fatal(st.Diags)
		}
		c := st.Claims["default/data"]
		if c == nil || c.VolumeMode != Block || !cmp.Equal(c.AccessModes, []string{ReadWriteOnce}) || c.Capacity != 1<<30 {
			t.Fatalf("claim %+v", c)
		}
		if p := r.plan(st); hasAction(p, ActBind, "DataVolume default/data") == nil {
			t.Fatalf("not bound: %q", actions(p))
		}
	})
	t.Run("plain claim", func(t *testing.T) {
		r := newRig(t)
		pvc := `---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec:
  storageClassName: local
  volumeMode: Block
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 2Gi}}
`
		st := r.state(seedBlockPV + pvc)
		if len(st.Diags) > 0 {
			t.Fatal(st.Diags)
		}
		if p := r.plan(st); hasAction(p, ActBind, "PersistentVolumeClaim default/data") == nil {
			t.Fatalf("not bound: %q", actions(p))
		}
	})
	t.Run("no class and no volume", func(t *testing.T) {
		st := build(t, strings.Replace(storageDV, "local", "fast", 1))
		d := findDiag(st.Diags, ErrClassMissing)
		if d == nil || d.Path != "spec.storage.storageClassName" || d.Severity != diag.Error || !strings.Contains(d.Message, `"fast"`) {
			t.Fatalf("got %v", st.Diags)
		}
		if st.Invalid["DataVolume default/data"] == "" {
			t.Fatal("the DataVolume is not kept invalid")
		}
	})
	t.Run("no volume fits", func(t *testing.T) {
		r := newRig(t)
		st := r.state(seedBlockPV + strings.Replace(storageDV, "storage: 1Gi", "storage: 5Gi", 1))
		if len(st.Diags) > 0 {
			t.Fatal(st.Diags)
		}
		a := hasAction(r.plan(st), ActWait, "DataVolume default/data")
		if a == nil {
			t.Fatal("no wait")
		}
		for _, want := range []string{"PersistentVolume local-block-pv10: capacity is 2Gi", `no StorageClass "local" in the repository to provision one`} {
			if !strings.Contains(a.Reason, want) {
				t.Errorf("wait reason %q does not say %q", a.Reason, want)
			}
		}
	})
	t.Run("storage API, no volume of the mode", func(t *testing.T) {
		dv := strings.Replace(storageDV, "    storageClassName: local\n", "    storageClassName: local\n    volumeMode: Filesystem\n", 1)
		st := build(t, seedBlockPV+dv)
		if d := findDiag(st.Diags, ErrDVStaticModes); d == nil || d.Path != "spec.storage" {
			t.Fatalf("got %v", st.Diags)
		}
	})
	t.Run("volume on another node still names the class", func(t *testing.T) {
		st := build(t, strings.Replace(seedBlockPV, "- node01", "- node02", 1)+storageDV)
		if len(st.Diags) > 0 || len(st.Volumes) != 0 || st.Claims["default/data"] == nil {
			t.Fatalf("diags %v, volumes %v", st.Diags, st.Volumes)
		}
	})
}

// A claim that fits a volume already bound to another claim waits, saying
// which claim holds it.
func TestStatic_waitNamesTheHolder(t *testing.T) {
	r := newRig(t)
	second := strings.ReplaceAll(seedUploadDV, "upload-datavolume", "second")
	fix := func(dv string) string {
		return strings.Replace(dv, "  pvc:\n", "  pvc:\n    storageClassName: local\n    volumeMode: Block\n", 1)
	}
	st := r.state(seedBlockPV + fix(seedUploadDV) + fix(second))
	if len(st.Diags) > 0 {
		t.Fatal(st.Diags)
	}
	a := hasAction(r.plan(st), ActWait, "DataVolume default/upload-datavolume")
	if a == nil || !strings.Contains(a.Reason, "PersistentVolume local-block-pv10: bound to claim default/second") {
		t.Fatalf("wait: %+v", a)
	}
}

// CDI's clone example: "storage:" with nothing under it is the storage API
// with its defaults, and the clone takes its size from the source claim.
func TestBuild_emptyStorageClone(t *testing.T) {
	st := build(t, hostpathBase+`---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: source-datavolume, namespace: default}
spec:
  source: {blank: {}}
  storage: {resources: {requests: {storage: 3Gi}}}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata:
  name: cloned-datavolume
spec:
  source:
    pvc:
      namespace: default
      name: source-datavolume
  storage:
`)
	if len(st.Diags) > 0 {
		t.Fatal(st.Diags)
	}
	c, src := st.Claims["default/cloned-datavolume"], st.Claims["default/source-datavolume"]
	if c == nil || c.API != "storage" || c.Source.CloneOf != "default/source-datavolume" || c.Request != src.Request || c.Request != 3<<30 {
		t.Fatalf("clone %+v", c)
	}
}
