//go:build e2e

package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdomanski/iso9660"
	"github.com/ulikunitz/xz"

	"github.com/nodevirt/nodevirt/runtime/loop"
)

// These tests drive `nodevirt storage` (describe, plan, apply --wait) as a
// real process against real files, loop devices and a test-owned HTTPS
// server on loopback, then start real domains on the disks with virsh: the
// agent does not call the storage subsystem yet, so the domains are made by
// the test, not by a VirtualMachine manifest.

const storageNode = "e2e-node"

// imageHost serves files over https with its own CA and basic auth,
// optionally throttled.
type imageHost struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	rate  int // bytes per second; 0 = unlimited
}

func newImageHost(t *testing.T) *imageHost {
	t.Helper()
	h := &imageHost{files: map[string][]byte{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "e2e" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="images"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.mu.Lock()
		data, ok := h.files[strings.TrimPrefix(r.URL.Path, "/")]
		rate := h.rate
		h.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		chunk := len(data)
		if rate > 0 {
			chunk = max(rate/10, 1)
		}
		for off := 0; off < len(data); off += chunk {
			if _, err := w.Write(data[off:min(off+chunk, len(data))]); err != nil {
				return
			}
			if rate > 0 {
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h.Server = srv
	return h
}

func (h *imageHost) put(name string, data []byte) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.files[name] = data
	return h.URL + "/" + name
}

func (h *imageHost) caPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.Certificate().Raw}))
}

// testImage is a raw disk with markers and zeros between them.
func testImage(size int) []byte {
	b := make([]byte, size)
	copy(b, "nodevirt e2e image")
	copy(b[size/2:], "middle marker")
	return b
}

func gzipOf(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	_, _ = w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func xzOf(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	w, err := xz.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func qcow2Of(t *testing.T, raw []byte) []byte {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.raw"), filepath.Join(dir, "out.qcow2")
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", in, out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, msg)
	}
	b, _ := os.ReadFile(out)
	return b
}

func isoOf(t *testing.T) []byte {
	w, err := iso9660.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cleanup()
	_ = w.AddFile(strings.NewReader("nodevirt e2e iso\n"), "README.TXT")
	var b bytes.Buffer
	if err := w.WriteTo(&b, "E2E"); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// storageWorld is a world with a local manifest directory and a secrets
// directory for the storage commands.
type storageWorld struct {
	*world
	repo    string
	secrets string
}

func newStorageWorld(t *testing.T) *storageWorld {
	w := newWorld(t)
	sw := &storageWorld{world: w, repo: filepath.Join(filepath.Dir(w.state), "manifests"), secrets: filepath.Join(filepath.Dir(w.state), "secrets")}
	for _, d := range []string{sw.repo, filepath.Join(sw.secrets, w.ns, "images")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.WriteFile(filepath.Join(sw.secrets, w.ns, "images", "accessKeyId"), []byte("e2e"), 0o600)
	_ = os.WriteFile(filepath.Join(sw.secrets, w.ns, "images", "secretKey"), []byte("s3cret"), 0o600)
	return sw
}

func (sw *storageWorld) write(name, content string) {
	sw.t.Helper()
	p := filepath.Join(sw.repo, name)
	if content == "" {
		_ = os.Remove(p)
		return
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		sw.t.Fatal(err)
	}
}

func (sw *storageWorld) args(extra ...string) []string {
	return append([]string{"--source", sw.repo, "--state", sw.state, "--root", sw.hostRoot, "--namespace", sw.ns,
		"--node", storageNode, "--log-level", "warn", "storage", "--secrets-dir", sw.secrets}, extra...)
}

// storage runs `nodevirt storage ...` and returns stdout; err is the exit.
func (sw *storageWorld) storage(extra ...string) (string, error) {
	sw.t.Helper()
	cmd := exec.Command(nodevirtBin, sw.args(extra...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		sw.t.Logf("nodevirt storage %v: %v\nstdout:\n%s\nstderr:\n%s", extra, err, out.String(), errOut.String())
	}
	return out.String(), err
}

func (sw *storageWorld) mustStorage(extra ...string) string {
	sw.t.Helper()
	out, err := sw.storage(extra...)
	if err != nil {
		sw.t.Fatalf("nodevirt storage %v failed", extra)
	}
	return out
}

type claimView struct {
	Key    string `json:"claim"`
	Status struct {
		Ready    bool    `json:"ready"`
		Phase    string  `json:"phase"`
		Progress float64 `json:"progress"`
		Path     string  `json:"path"`
		Block    bool    `json:"block"`
		Message  string  `json:"message"`
	} `json:"status"`
	Restarts int `json:"restarts"`
}

type volumeView struct {
	Name   string `json:"name"`
	Phase  string `json:"phase"`
	Path   string `json:"path"`
	Device string `json:"device"`
	Claim  string `json:"claim"`
}

type description struct {
	Claims  []claimView  `json:"claims"`
	Volumes []volumeView `json:"persistentVolumes"`
}

func (sw *storageWorld) describe() description {
	sw.t.Helper()
	var d description
	out := sw.mustStorage("describe", "-o", "json")
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		sw.t.Fatalf("describe -o json: %v\n%s", err, out)
	}
	return d
}

func (d description) claim(t *testing.T, key string) claimView {
	for _, c := range d.Claims {
		if c.Key == key {
			return c
		}
	}
	t.Fatalf("no claim %s in %+v", key, d.Claims)
	return claimView{}
}

func domainType() string {
	if _, err := virshOK("domcapabilities", "--virttype", "kvm"); err == nil {
		return "kvm"
	}
	return "qemu"
}

// runDomain starts a transient domain with one disk and checks it runs.
func (sw *storageWorld) runDomain(name, disk string) {
	sw.t.Helper()
	full := "handmade-" + sw.ns + "-" + name
	xml := fmt.Sprintf(`<domain type='%s'>
  <name>%s</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    %s
    <memballoon model='none'/>
  </devices>
</domain>`, domainType(), full, disk)
	f := filepath.Join(sw.t.TempDir(), name+".xml")
	if err := os.WriteFile(f, []byte(xml), 0o644); err != nil {
		sw.t.Fatal(err)
	}
	virsh(sw.t, "create", f)
	sw.t.Cleanup(func() { _, _ = virshOK("destroy", full) })
	if st := domState(full); st != "running" {
		sw.t.Fatalf("domain %s is %s", full, st)
	}
	virsh(sw.t, "destroy", full)
}

func fileDisk(path string) string {
	return fmt.Sprintf(`<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%s'/><target dev='vda' bus='virtio'/></disk>`, path)
}

func cdromDisk(path string) string {
	return fmt.Sprintf(`<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='%s'/><target dev='hdc' bus='ide'/><readonly/></disk>`, path)
}

func blockDisk(dev string) string {
	return fmt.Sprintf(`<disk type='block' device='disk'><driver name='qemu' type='raw' cache='none' io='native'/><source dev='%s'/><target dev='vda' bus='virtio'/></disk>`, dev)
}

const storageClasses = `apiVersion: hostpathprovisioner.kubevirt.io/v1beta1
kind: HostPathProvisioner
metadata: {name: hostpath-provisioner}
spec:
  pathConfig: {path: /var/hpvolumes}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: hostpath
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubevirt.io/hostpath-provisioner
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: hostpath-retain}
provisioner: kubevirt.io/hostpath-provisioner
reclaimPolicy: Retain
volumeBindingMode: Immediate
`

func httpDV(name, url, size string) string {
	return fmt.Sprintf(`---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: %s}
spec:
  source:
    http: {url: %q, secretRef: images, certConfigMap: images-ca}
  storage:
    resources: {requests: {storage: %s}}
`, name, url, size)
}

func (sw *storageWorld) caConfigMap(h *imageHost) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(h.caPEM()), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: images-ca}\ndata:\n  ca.pem: |\n" + b.String()
}

// qcow2, raw.gz, raw.xz and an ISO over https with basic auth (secrets
// directory) and a custom CA (ConfigMap in git): each imports, and a real
// domain starts on each disk.
func TestStorage_importsStartDomains(t *testing.T) {
	sw := newStorageWorld(t)
	h := newImageHost(t)
	raw := testImage(24 << 20)
	iso := isoOf(t)
	sw.write("classes.yaml", storageClasses+sw.caConfigMap(h))
	sw.write("dvs.yaml", httpDV("qcow", h.put("d.qcow2", qcow2Of(t, raw)), "64Mi")+
		httpDV("gz", h.put("d.raw.gz", gzipOf(t, raw)), "64Mi")+
		httpDV("xz", h.put("d.raw.xz", xzOf(t, raw)), "64Mi")+
		httpDV("iso", h.put("d.iso", iso), "16Mi"))
	start := time.Now()
	sw.mustStorage("apply", "--wait")
	t.Logf("four imports took %s", time.Since(start).Round(time.Millisecond))
	d := sw.describe()
	for _, name := range []string{"qcow", "gz", "xz", "iso"} {
		c := d.claim(t, sw.ns+"/"+name)
		if !c.Status.Ready || c.Status.Phase != "Succeeded" {
			t.Fatalf("%s: %+v", name, c)
		}
		f, err := os.Open(c.Status.Path)
		if err != nil {
			t.Fatal(err)
		}
		want := raw
		if name == "iso" {
			want = iso
		}
		got := make([]byte, len(want))
		_, err = io.ReadFull(f, got)
		f.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: disk content differs (%v)", name, err)
		}
		if name == "iso" {
			sw.runDomain(name, cdromDisk(c.Status.Path))
		} else {
			sw.runDomain(name, fileDisk(c.Status.Path))
		}
	}
	// Nothing left to do; a second apply changes nothing.
	out := sw.mustStorage("plan")
	if strings.Contains(out, "import ") || strings.Contains(out, "provision ") {
		t.Fatalf("second plan:\n%s", out)
	}
}

// Wrong credentials fail the DataVolume with a clear reason; it is retried
// later (back-off), and never ready.
func TestStorage_wrongCredentialsFail(t *testing.T) {
	sw := newStorageWorld(t)
	h := newImageHost(t)
	_ = os.WriteFile(filepath.Join(sw.secrets, sw.ns, "images", "secretKey"), []byte("wrong"), 0o600)
	sw.write("classes.yaml", storageClasses+sw.caConfigMap(h))
	sw.write("dvs.yaml", httpDV("bad", h.put("d.raw.gz", gzipOf(t, testImage(4<<20))), "16Mi"))
	if _, err := sw.storage("apply", "--wait"); err == nil {
		t.Fatal("apply --wait succeeded with wrong credentials")
	}
	c := sw.describe().claim(t, sw.ns+"/bad")
	if c.Status.Ready || c.Status.Phase != "Failed" || !strings.Contains(c.Status.Message, "401 Unauthorized") {
		t.Fatalf("claim %+v", c)
	}
	if _, err := os.Stat(c.Status.Path); err == nil {
		t.Fatal("a failed import left a disk under its final name")
	}
	out := sw.mustStorage("plan")
	if !strings.Contains(out, "retry in") {
		t.Fatalf("plan after failure:\n%s", out)
	}
}

// The agent killed (SIGKILL) in the middle of an import: nothing is visible
// under the disk's name and the claim is not ready; the next run restarts
// the import cleanly and a domain starts on the complete disk.
func TestStorage_killDuringImport(t *testing.T) {
	sw := newStorageWorld(t)
	h := newImageHost(t)
	data := make([]byte, 48<<20)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	sum := sha256.Sum256(data)
	h.rate = 8 << 20
	sw.write("classes.yaml", storageClasses+sw.caConfigMap(h))
	sw.write("dvs.yaml", httpDV("big", h.put("big.raw", data), "64Mi"))
	a := sw.start(append([]string{}, sw.args("apply", "--wait")...)...)
	hp := filepath.Join(sw.hostRoot, "var", "hpvolumes")
	var partial string
	await(t, "a half-written import", 30*time.Second, func() bool {
		// An HTTP import downloads beside the disk (kept for a resume) and
		// writes the partial disk only once the download is whole.
		m, _ := filepath.Glob(filepath.Join(hp, "*", ".disk.img.download"))
		if len(m) == 0 {
			m, _ = filepath.Glob(filepath.Join(hp, "*", ".disk.img.partial"))
		}
		if len(m) == 1 {
			if st, err := os.Stat(m[0]); err == nil && st.Size() > 4<<20 {
				partial = m[0]
				return true
			}
		}
		return false
	})
	a.kill9()
	disk := filepath.Join(filepath.Dir(partial), "disk.img")
	if _, err := os.Stat(disk); err == nil {
		t.Fatal("disk.img exists while the import was half done")
	}
	c := sw.describe().claim(t, sw.ns+"/big")
	if c.Status.Ready || c.Status.Phase == "Succeeded" {
		t.Fatalf("after kill: %+v", c)
	}
	h.mu.Lock()
	h.rate = 0
	h.mu.Unlock()
	sw.mustStorage("apply", "--wait")
	c = sw.describe().claim(t, sw.ns+"/big")
	if !c.Status.Ready || c.Restarts != 1 {
		t.Fatalf("after restart: %+v", c)
	}
	if _, err := os.Stat(partial); err == nil {
		t.Fatal("the partial file is still there")
	}
	f, _ := os.Open(disk)
	got := make([]byte, len(data))
	_, err := io.ReadFull(f, got)
	f.Close()
	if err != nil || sha256.Sum256(got) != sum {
		t.Fatalf("disk differs from the image (%v)", err)
	}
	sw.runDomain("big", fileDisk(disk))
}

// A loop-device PV used by a running domain (seed 8.18.10): nodevirt creates
// the backing file and attaches the device; a "reboot" (the device detached)
// is drift that apply heals, and the domain starts again.
func TestStorage_loopPV(t *testing.T) {
	sw := newStorageWorld(t)
	h := newImageHost(t)
	raw := testImage(8 << 20)
	dev := "/dev/loop" + strconv.Itoa(200+rand.IntN(50))
	l := loop.New()
	t.Cleanup(func() {
		_ = l.Detach(dev)
		_ = l.Remove(dev)
	})
	sw.write("classes.yaml", storageClasses+sw.caConfigMap(h)+fmt.Sprintf(`---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: block-pv}
spec:
  local: {path: %s}
  capacity: {storage: 32Mi}
  volumeMode: Block
  storageClassName: local
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [%s]}
`, dev, storageNode))
	sw.write("dv.yaml", fmt.Sprintf(`apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: blockdv}
spec:
  source:
    http: {url: %q, secretRef: images, certConfigMap: images-ca}
  pvc:
    accessModes: [ReadWriteOnce]
    volumeMode: Block
    storageClassName: local
    resources: {requests: {storage: 32Mi}}
---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: db}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          disks: [{name: root, disk: {bus: virtio}}]
      volumes: [{name: root, dataVolume: {name: blockdv}}]
`, h.put("b.raw.xz", xzOf(t, raw))))
	sw.mustStorage("apply", "--wait")
	c := sw.describe().claim(t, sw.ns+"/blockdv")
	if !c.Status.Ready || !c.Status.Block || c.Status.Path != dev {
		t.Fatalf("claim %+v", c)
	}
	backing, ok, _ := l.Backing(dev)
	if !ok || !strings.HasSuffix(backing, "/blockpv/block-pv.img") {
		t.Fatalf("%s -> %q", dev, backing)
	}
	got := make([]byte, len(raw))
	f, _ := os.Open(dev)
	_, _ = io.ReadFull(f, got)
	f.Close()
	if !bytes.Equal(got, raw) {
		t.Fatal("device content differs from the image")
	}
	sw.runDomain("block", blockDisk(dev))

	// An agent restart keeps the device: nothing to attach.
	if out := sw.mustStorage("plan"); strings.Contains(out, "attach-loop") {
		t.Fatalf("plan after restart:\n%s", out)
	}
	// A reboot loses it: drift, healed by apply, data intact.
	if err := l.Detach(dev); err != nil {
		t.Fatal(err)
	}
	if out := sw.mustStorage("plan"); !strings.Contains(out, "attach-loop") || !strings.Contains(out, "[drift]") {
		t.Fatalf("plan after the device went:\n%s", out)
	}
	sw.mustStorage("apply")
	f, _ = os.Open(dev)
	_, _ = io.ReadFull(f, got)
	f.Close()
	if !bytes.Equal(got, raw) {
		t.Fatal("data lost across the re-attach")
	}
	sw.runDomain("block-again", blockDisk(dev))
}

// Retain keeps a deleted claim's data and marks its volume Released; Delete
// removes it. A third claim stays, so the prune guard does not hold.
func TestStorage_retainVersusDelete(t *testing.T) {
	sw := newStorageWorld(t)
	dv := func(name, class string) string {
		return fmt.Sprintf(`---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: %s}
spec:
  source: {blank: {}}
  pvc: {storageClassName: %s, accessModes: [ReadWriteOnce], resources: {requests: {storage: 8Mi}}}
`, name, class)
	}
	sw.write("classes.yaml", storageClasses)
	sw.write("dvs.yaml", dv("gone", "hostpath")+dv("kept", "hostpath-retain")+dv("stays", "hostpath"))
	sw.mustStorage("apply", "--wait")
	d := sw.describe()
	gone, kept := d.claim(t, sw.ns+"/gone").Status.Path, d.claim(t, sw.ns+"/kept").Status.Path
	for _, p := range []string{gone, kept} {
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
	sw.write("dvs.yaml", dv("stays", "hostpath"))
	out := sw.mustStorage("apply")
	if !strings.Contains(out, "delete-data") || !strings.Contains(out, "release") {
		t.Fatalf("apply:\n%s", out)
	}
	if _, err := os.Stat(filepath.Dir(gone)); err == nil {
		t.Fatal("Delete: the data is still there")
	}
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("Retain: data removed: %v", err)
	}
	released := false
	for _, v := range sw.describe().Volumes {
		if v.Claim == sw.ns+"/kept" && v.Phase == "Released" {
			released = true
		}
	}
	if !released {
		t.Fatalf("volumes: %+v", sw.describe().Volumes)
	}
}
