package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
)

// hostpathStorage is a hostpath provisioner at dir (a host path under
// --root) and the default StorageClass that uses it.
func hostpathStorage(dir string) string {
	return `apiVersion: hostpathprovisioner.kubevirt.io/v1beta1
kind: HostPathProvisioner
metadata: {name: hostpath-provisioner}
spec:
  pathConfig: {path: ` + dir + `}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: hostpath
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubevirt.io/hostpath-provisioner
reclaimPolicy: Delete
volumeBindingMode: Immediate
`
}

const waitDV = `apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: slowdisk, namespace: default}
spec:
  source:
    http: {url: "%URL%"}
  storage:
    resources: {requests: {storage: 16Mi}}
---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: slowvm, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          disks: [{name: root, disk: {bus: virtio}}]
      volumes:
        - {name: root, dataVolume: {name: slowdisk}}
`

// slowImage serves img in 256 KiB pieces with a pause between them, so an
// import takes a while.
func slowImage(img []byte, pause time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(len(img)))
		for off := 0; off < len(img); off += 256 << 10 {
			if _, err := w.Write(img[off:min(off+256<<10, len(img))]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(pause):
			case <-r.Context().Done():
				return
			}
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func testRaw(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/4096)
	}
	return b
}

// apply returns only once the import it started finished, the disk is
// complete, and the VM waiting for it was started.
func TestApply_waitsForImports(t *testing.T) {
	img := testRaw(4 << 20)
	srv := httptest.NewServer(slowImage(img, 100*time.Millisecond))
	defer srv.Close()
	d, err := virt.Open(t.Context(), "test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	root, src := t.TempDir(), t.TempDir()
	write(t, src, "classes.yaml", hostpathStorage("/var/hpvolumes"))
	write(t, src, "dv.yaml", strings.ReplaceAll(waitDV, "%URL%", srv.URL+"/disk.raw"))
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"--state", t.TempDir(), "--root", root, "--log-level", "error", "--libvirt", "test:///default",
		"--source", src, "apply"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("apply: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	disks, _ := filepath.Glob(filepath.Join(root, "var/hpvolumes/*/disk.img"))
	if len(disks) != 1 {
		t.Fatalf("apply returned before the import finished: disks %v\n%s\n%s", disks, out.String(), errOut.String())
	}
	got, err := os.ReadFile(disks[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 16<<20 || !bytes.Equal(got[:len(img)], img) {
		t.Fatalf("disk is not the image grown to 16Mi (%d bytes)", len(got))
	}
	if x := domainXML(t, d, "default_slowvm"); !strings.Contains(x, disks[0]) {
		t.Fatalf("the VM waiting for the import must be defined on its disk:\n%s", x)
	}
	if !strings.Contains(errOut.String(), "import default/slowdisk: 100%") {
		t.Fatalf("no progress on stderr:\n%s", errOut.String())
	}
}

// A failed import makes apply exit non-zero with the reason; one still
// running at --timeout is named in the error.
func TestApply_importFailureAndTimeout(t *testing.T) {
	d, err := virt.Open(t.Context(), "test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	defer gone.Close()
	src := t.TempDir()
	write(t, src, "classes.yaml", hostpathStorage("/var/hpvolumes"))
	write(t, src, "dv.yaml", strings.ReplaceAll(waitDV, "%URL%", gone.URL+"/missing.raw"))
	out, errOut, code := run(t, "--libvirt", "test:///default", "--source", src, "apply")
	if code == 0 || !strings.Contains(errOut, "import default/slowdisk failed") || !strings.Contains(errOut, "not found on the server") {
		t.Fatalf("a failed import must fail apply with its reason (exit %d):\n%s\n%s", code, out, errOut)
	}

	slow := httptest.NewServer(slowImage(testRaw(4<<20), time.Second))
	defer slow.Close()
	src = t.TempDir()
	write(t, src, "classes.yaml", hostpathStorage("/var/hpvolumes"))
	write(t, src, "dv.yaml", strings.ReplaceAll(waitDV, "%URL%", slow.URL+"/disk.raw"))
	start := time.Now()
	out, errOut, code = run(t, "--libvirt", "test:///default", "--source", src, "apply", "--timeout", "1500ms")
	if code == 0 || !strings.Contains(errOut, "--timeout 1.5s") || !strings.Contains(errOut, "import default/slowdisk at") {
		t.Fatalf("apply past --timeout must fail naming the running import (exit %d):\n%s\n%s", code, out, errOut)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("apply took %s with --timeout 1.5s", took)
	}
}
