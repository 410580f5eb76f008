package agent_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/internal/testenv"
	"github.com/nodevirt/nodevirt/runtime/hv"
	"github.com/nodevirt/nodevirt/runtime/loop"
)

const uploadDV = `apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: up, namespace: default}
spec:
  source: {upload: {}}
  pvc: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 8Mi}}}
---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: web, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          disks:
          - {name: root, disk: {bus: virtio}}
      volumes:
      - {name: root, dataVolume: {name: up}}
`

func dataVolume(st status.Node, name string) (cdiv1.DataVolume, bool) {
	for _, dv := range st.DataVolumes {
		if dv.Name == name {
			return dv, true
		}
	}
	return cdiv1.DataVolume{}, false
}

func domainOf(t *testing.T, rt *agent.Runtime, name string) (hv.Domain, bool) {
	t.Helper()
	doms, err := rt.HV.Domains(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range doms {
		if d.Name == name {
			return d, true
		}
	}
	return hv.Domain{}, false
}

func podReady(st status.Node, name string) string {
	for _, c := range st.PersistentVolumeClaims {
		if c.Name == name {
			return c.Annotations["cdi.kubevirt.io/storage.pod.ready"]
		}
	}
	return ""
}

// Through the agent's Service: an upload DataVolume shows UploadReady (and
// CDI's upload-server-ready annotation on its claim) while its VM waits; a
// refused upload gets its API answer; the upload makes it Succeeded and
// the VM waiting on it is defined and started.
func TestService_upload(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "up.yaml"), []byte(storageManifests+"---\n"+uploadDV), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt, err := agent.Open(ctx, openConfig(dir, src, testNode(t, filepath.Join(dir, "node.xml")), agent.AllStages))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	svc := rt.Service()
	if err := svc.UploadReady(ctx, "default", "up"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("before the agent planned: %v", err)
	}

	rt.Agent.IterateForTest(ctx, true)
	st := svc.Status()
	dv, ok := dataVolume(st, "up")
	if !ok || dv.Status.Phase != cdiv1.UploadReady {
		t.Fatalf("DataVolume after the first reconcile: %+v (%v)", dv.Status, ok)
	}
	if got := podReady(st, "up"); got != "true" {
		t.Fatalf("claim annotation %s = %q", "cdi.kubevirt.io/storage.pod.ready", got)
	}
	if _, ok := domainOf(t, rt, "default_web"); ok {
		t.Fatal("the VM was defined before its disk was uploaded")
	}
	if err := svc.UploadReady(ctx, "", "up"); err != nil {
		t.Fatalf("UploadReady: %v", err)
	}
	if err := svc.UploadReady(ctx, "default", "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("an unknown DataVolume: %v", err)
	}
	big := make([]byte, 16<<20)
	big[0] = 1
	if err := svc.Upload(ctx, "default", "up", bytes.NewReader(big), int64(len(big)), false); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("too large an image: %v", err)
	}
	rt.Agent.IterateForTest(ctx, false)
	if dv, _ := dataVolume(svc.Status(), "up"); dv.Status.Phase != cdiv1.Failed {
		t.Fatalf("after a failed upload: %+v", dv.Status)
	}

	img := make([]byte, 4<<20)
	copy(img, "the uploaded disk")
	if err := svc.Upload(ctx, "default", "up", bytes.NewReader(img), int64(len(img)), true); err != nil {
		t.Fatalf("upload: %v", err)
	}
	if err := rt.Storage.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.Upload(ctx, "default", "up", bytes.NewReader(img), int64(len(img)), false); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("upload after success: %v", err)
	}
	rt.Agent.IterateForTest(ctx, false)
	st = svc.Status()
	if dv, _ := dataVolume(st, "up"); dv.Status.Phase != cdiv1.Succeeded || dv.Status.Progress != "100.00%" {
		t.Fatalf("after the upload: %+v", dv.Status)
	}
	if got := podReady(st, "up"); got != "" {
		t.Fatalf("the upload server still shows ready: %q", got)
	}
	d, ok := domainOf(t, rt, "default_web")
	if !ok {
		t.Fatal("the VM waiting on the upload was not defined")
	}
	if d.State != hv.Running {
		t.Fatalf("the VM is %s", d.State)
	}
	c, _ := rt.Storage.Claim("default", "up")
	f, err := os.Open(c.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(img))
	if _, err := io.ReadFull(f, got); err != nil || !bytes.Equal(got, img) {
		t.Fatalf("the disk differs from the upload: %v", err)
	}
}

// A Block DataVolume on a loop-backed local PersistentVolume takes an
// upload into its device (seed 8.18.10): a gzip-compressed raw image is
// decompressed in-stream and written in place.
func TestService_uploadBlock(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "loop devices need root")
	}
	dev := "/dev/loop" + strconv.Itoa(170+rand.IntN(30))
	l := loop.New()
	t.Cleanup(func() {
		_ = l.Detach(dev)
		_ = l.Remove(dev)
	})
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	manifests := fmt.Sprintf(`apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: block-pv}
spec:
  local: {path: %s}
  capacity: {storage: 16Mi}
  volumeMode: Block
  storageClassName: local
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [n1]}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: blockup, namespace: default}
spec:
  source: {upload: {}}
  pvc:
    accessModes: [ReadWriteOnce]
    volumeMode: Block
    storageClassName: local
    resources: {requests: {storage: 16Mi}}
`, dev)
	if err := os.WriteFile(filepath.Join(src, "block.yaml"), []byte(manifests), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt, err := agent.Open(ctx, openConfig(dir, src, testNode(t, filepath.Join(dir, "node.xml")), agent.Stages{Storage: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	rt.Agent.IterateForTest(ctx, true)
	if dv, _ := dataVolume(rt.Service().Status(), "blockup"); dv.Status.Phase != cdiv1.UploadReady {
		t.Fatalf("after the first reconcile: %+v", dv.Status)
	}
	// Old data on the device must not show through the image's zeros.
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteAt(bytes.Repeat([]byte{0xAB}, 1<<20), 2<<20)
	f.Close()
	img := make([]byte, 8<<20)
	copy(img, "block upload start")
	copy(img[6<<20:], "block upload end")
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(img)
	zw.Close()
	if err := rt.Service().Upload(ctx, "default", "blockup", bytes.NewReader(zb.Bytes()), int64(zb.Len()), false); err != nil {
		t.Fatalf("upload: %v", err)
	}
	c, _ := rt.Storage.Claim("default", "blockup")
	if c.Phase != "Succeeded" || !c.Block || c.Path != dev {
		t.Fatalf("claim %+v", c)
	}
	f, err = os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(img))
	if _, err := io.ReadFull(f, got); err != nil || !bytes.Equal(got, img) {
		t.Fatalf("the device differs from the upload: %v", err)
	}
}
