//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/runtime/loop"
)

// Uploads as users make them, against the real agent on qemu:///system:
// `nodevirt image-upload` through the socket and over HTTPS with a token,
// CDI's protocol on the wire, the real storage manager and importer
// behind it; the DataVolumes' disks are compared byte for byte with the
// images, on the host side.

func uploadDVYAML(name, size, extra string) string {
	return fmt.Sprintf(`---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: %s}
spec:
  source: {upload: {}}
  pvc:
    accessModes: [ReadWriteOnce]
    resources: {requests: {storage: %s}}%s
`, name, size, extra)
}

// uploadImage is a raw disk of size bytes: random blocks between runs of
// zeros, so a conversion that lost or moved data, or a sparse write that
// left old bytes, shows.
func uploadImage(size int) []byte {
	b := make([]byte, size)
	for off := 0; off < size; off += 4 << 20 {
		rand.Read(b[off:min(off+(1<<20), size)])
	}
	copy(b[size-16:], "the image's end")
	return b
}

type dvView struct {
	Status struct {
		Phase      string `json:"phase"`
		Conditions []struct {
			Type, Message string
		} `json:"conditions"`
	} `json:"status"`
}

// dv is the DataVolume as `nodevirt get dv NAME -o json` shows it.
func (w *world) dv(name string) (dvView, bool) {
	var v dvView
	out, _, err := w.nodevirt("get", "dv", name, "-o", "json")
	if err != nil {
		return v, false
	}
	return v, json.Unmarshal([]byte(out), &v) == nil
}

func (w *world) awaitDVPhase(t *testing.T, name, phase string, timeout time.Duration) dvView {
	t.Helper()
	var v dvView
	await(t, "DataVolume "+name+" "+phase, timeout, func() bool {
		var ok bool
		v, ok = w.dv(name)
		return ok && v.Status.Phase == phase
	})
	return v
}

// dvDisk is the file of an upload DataVolume on the hostpath provisioner:
// its volume is the one the agent shows bound to its claim.
func (w *world) dvDisk(t *testing.T, name string) string {
	t.Helper()
	var pvs struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct {
				ClaimRef *struct{ Namespace, Name string } `json:"claimRef"`
			}
		}
	}
	out := w.mustNodevirt("get", "pv", "-o", "json")
	if err := json.Unmarshal([]byte(out), &pvs); err != nil {
		t.Fatalf("get pv: %v\n%s", err, out)
	}
	for _, pv := range pvs.Items {
		if c := pv.Spec.ClaimRef; c != nil && c.Namespace == w.ns && c.Name == name {
			return filepath.Join(w.hostRoot, "var/hpvolumes", pv.Metadata.Name, "disk.img")
		}
	}
	t.Fatalf("no volume is bound to %s/%s:\n%s", w.ns, name, out)
	return ""
}

// sameStart fails unless the file at path begins with want.
func sameStart(t *testing.T, path string, want []byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(f, got); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s differs from the image at byte %d", path, i)
			}
		}
	}
}

func imageAt(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A qcow2 image through the socket and an xz one over HTTPS with a token
// land byte for byte in their DataVolumes, and the VM waiting on the
// qcow2's starts; a dropped upload fails with its reason, leaves no disk
// and is sent again; a DataVolume not in git is printed, not made.
func TestUpload_qcow2AndXzDroppedAndNotInGit(t *testing.T) {
	w := newWorld(t)
	raw := uploadImage(20 << 20)
	files := t.TempDir()
	qcow := imageAt(t, files, "disk.qcow2", qcow2Of(t, raw))
	xzImg := imageAt(t, files, "disk.raw.xz", xzOf(t, raw))
	rawImg := imageAt(t, files, "disk.raw", raw)
	// The qcow2 really is one, and converts back to the image.
	if out, err := exec.Command("qemu-img", "info", "--output", "json", qcow).Output(); err != nil || !strings.Contains(string(out), `"format": "qcow2"`) {
		t.Fatalf("qemu-img info: %v %s", err, out)
	}
	back := filepath.Join(files, "back.raw")
	if out, err := exec.Command("qemu-img", "convert", "-O", "raw", qcow, back).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v %s", err, out)
	}
	sameStart(t, back, raw)

	vm := strings.Replace(vmYAML(w.ns, "web", "64Mi", "Always"), "emptyDisk:\n            capacity: 16Mi", "dataVolume:\n            name: qcow", 1)
	w.commit("upload DataVolumes", map[string]string{
		"classes.yaml": storageClasses,
		"dvs.yaml":     uploadDVYAML("qcow", "32Mi", "") + uploadDVYAML("xz", "32Mi", "") + uploadDVYAML("dropped", "32Mi", ""),
		"vm.yaml":      vm,
	})
	s := w.startService(t)
	for _, name := range []string{"qcow", "xz", "dropped"} {
		w.awaitDVPhase(t, name, "UploadReady", 2*time.Minute)
	}
	if doms := w.domains(); len(doms) != 0 {
		t.Fatalf("the VM was defined before its disk was uploaded: %v", doms)
	}

	// qcow2 through the socket, as root on the host.
	out := w.mustNodevirt("image-upload", "dv", "qcow", "--image-path", qcow, "--no-create")
	for _, line := range []string{"Uploading data completed successfully", "Processing completed successfully"} {
		if !strings.Contains(out, line) {
			t.Errorf("image-upload printed no %q:\n%s", line, out)
		}
	}
	w.awaitDVPhase(t, "qcow", "Succeeded", time.Minute)
	sameStart(t, w.dvDisk(t, "qcow"), raw)
	w.awaitState("web", "running", 3*time.Minute)

	// xz over HTTPS, with a token file and the agent's CA.
	tokenFile := imageAt(t, files, "token", []byte(s.token))
	ca := filepath.Join(w.state, "pki", "ca.crt")
	out, errOut, err := w.nodevirt("--server", s.url, "image-upload", "dv/xz", "--image-path", xzImg, "--no-create",
		"--token-file", tokenFile, "--certificate-authority", ca)
	if err != nil {
		t.Fatalf("remote image-upload: %v\n%s\n%s", err, out, errOut)
	}
	w.awaitDVPhase(t, "xz", "Succeeded", time.Minute)
	sameStart(t, w.dvDisk(t, "xz"), raw)
	// A finished upload takes no other.
	if _, errOut, err := w.nodevirt("image-upload", "dv", "xz", "--image-path", xzImg, "--no-create"); err == nil || !strings.Contains(errOut, "already finished uploading") {
		t.Errorf("a second upload into a Succeeded DataVolume: %v %s", err, errOut)
	}

	// Too big an image for the DataVolume: refused with the reason, not
	// sent again, nothing left to use.
	big := imageAt(t, files, "big.raw", uploadImage(48<<20))
	out, errOut, err = w.nodevirt("image-upload", "dv", "dropped", "--image-path", big, "--no-create")
	if err == nil || strings.Contains(out, "sending again") {
		t.Fatalf("an image bigger than its DataVolume: %v\n%s\n%s", err, out, errOut)
	}
	t.Logf("too big an image: %s", strings.TrimSpace(errOut))
	w.awaitDVPhase(t, "dropped", "Failed", time.Minute)

	// A client that sends half the image and goes away.
	ctx := context.Background()
	c, err := api.Local(ctx, filepath.Join(w.state, api.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.UploadToken(ctx, w.ns, "dropped")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(ca); err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("the agent's CA %s: %v", ca, err)
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(s.url, "https://"), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1beta1/upload HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", tok, len(raw))
	if _, err := conn.Write(raw[:len(raw)/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	conn.Close()
	failed := w.awaitDVPhase(t, "dropped", "Failed", time.Minute)
	reason := ""
	for _, cd := range failed.Status.Conditions {
		reason += cd.Message
	}
	if reason == "" {
		t.Errorf("the dropped upload failed with no reason: %+v", failed)
	}
	t.Logf("dropped upload: %s", reason)
	disk := w.dvDisk(t, "dropped")
	if _, err := os.Stat(disk); err == nil {
		t.Fatalf("the half-sent upload left %s to be used", disk)
	}
	out = w.mustNodevirt("image-upload", "dv", "dropped", "--image-path", rawImg, "--no-create")
	if !strings.Contains(out, "Processing completed successfully") {
		t.Fatalf("retry:\n%s", out)
	}
	sameStart(t, disk, raw)

	// The bytes received, failed uploads included, are in the metrics.
	req, _ := http.NewRequest("GET", s.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var uploaded float64
	for _, line := range strings.Split(string(metrics), "\n") {
		if v, ok := strings.CutPrefix(line, "nodevirt_upload_bytes_total "); ok {
			uploaded, _ = strconv.ParseFloat(v, 64)
		}
	}
	if want := float64(len(raw) + len(raw)/2); uploaded < want {
		t.Errorf("nodevirt_upload_bytes_total = %v, want at least %v", uploaded, want)
	}

	// Not in git: the manifest to commit, a failing exit, nothing made.
	out, errOut, err = w.nodevirt("image-upload", "dv", "ghost", "--image-path", rawImg, "--size", "64Mi")
	if err == nil || !strings.Contains(out, "kind: DataVolume") || !strings.Contains(out, "upload: {}") || !strings.Contains(errOut, "commit") {
		t.Fatalf("a DataVolume not in git: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	if _, ok := w.dv("ghost"); ok {
		t.Fatal("a DataVolume not in git exists after image-upload")
	}
}

// A Block DataVolume on a loop-backed local PersistentVolume (seed
// 8.18.10) takes an upload into its device.
func TestUpload_blockDataVolumeOnLoopPV(t *testing.T) {
	w := newWorld(t)
	dev := "/dev/loop" + strconv.Itoa(150+int(time.Now().UnixNano()%20))
	l := loop.New()
	t.Cleanup(func() {
		_ = l.Detach(dev)
		_ = l.Remove(dev)
	})
	host, _ := os.Hostname()
	raw := uploadImage(12 << 20)
	img := imageAt(t, t.TempDir(), "disk.raw.xz", xzOf(t, raw))
	w.commit("a Block upload DataVolume on a loop PV", map[string]string{
		"classes.yaml": storageClasses + fmt.Sprintf(`---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: block-pv-%s}
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
            - {key: kubernetes.io/hostname, operator: In, values: [%s]}
`, w.ns, dev, host),
		"dv.yaml": uploadDVYAML("blockup", "16Mi", "\n    volumeMode: Block\n    storageClassName: local"),
	})
	w.startService(t)
	w.awaitDVPhase(t, "blockup", "UploadReady", 2*time.Minute)
	out := w.mustNodevirt("image-upload", "dv", "blockup", "--image-path", img, "--no-create")
	if !strings.Contains(out, "Processing completed successfully") {
		t.Fatalf("image-upload:\n%s", out)
	}
	sameStart(t, dev, raw)
}
