//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// kernelBootInit is the guest's /init: it says, again and again (the
// console may attach late), that it booted with the command line
// kernelArgs set.
const kernelBootInit = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
while true; do
  /bin/busybox echo "nodevirt-guest: kernel boot, cmdline $(/bin/busybox cat /proc/cmdline)" > /dev/console
  /bin/busybox sleep 1
done
`

// kernelBootLayout writes an OCI image layout holding the Debian guest
// kernel at /boot/vmlinuz and an initramfs with kernelBootInit at
// /boot/initrd, as a KubeVirt kernel boot image carries them.
func kernelBootLayout(t *testing.T, dir string) {
	t.Helper()
	in, err := findGuestInputs()
	if err != nil {
		if pe, ok := err.(preconditionError); ok {
			missingPrecondition(t, string(pe))
		}
		t.Fatal(err)
	}
	kernel, err := os.ReadFile(in.kernel)
	if err != nil {
		t.Fatal(err)
	}
	in.modules = nil // the guest needs none
	initrd, err := guestInitramfs(in, []byte(kernelBootInit))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range map[string][]byte{"boot/vmlinuz": kernel, "boot/initrd": initrd} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
}

// Direct kernel boot: the agent extracts the kernel and initrd from a local
// OCI layout and the guest boots them with the manifest's kernelArgs.
func TestFidelity_KernelBootFromOCILayout(t *testing.T) {
	w := newWorld(t)
	g := w.guestVirt()
	g.log(t)
	kernelBootLayout(t, filepath.Join(w.hostRoot, hostImageDir, "kernel"))
	vm := `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: kboot, namespace: ` + w.ns + `}
spec:
  runStrategy: Always
  template:
    spec:
      terminationGracePeriodSeconds: 0
      domain:
` + fidelityCPU + `        memory: {guest: 256Mi}
        devices: {}
        firmware:
          kernelBoot:
            container:
              image: oci:` + hostImageDir + `/kernel
              kernelPath: /boot/vmlinuz
              initrdPath: /boot/initrd
            kernelArgs: console=ttyS0 nodevirt.test=kernelboot
`
	w.commit("kernel boot VM", map[string]string{"vms/kboot.yaml": vm})
	w.startAgent()
	w.awaitAgentFirstBoot("kboot", 60*time.Second)
	con := attachConsole(t, w.dom("kboot"))
	took := con.await(t, "nodevirt.test=kernelboot", 1, 90*time.Second)
	t.Logf("the guest booted the extracted kernel with its kernelArgs %s after the console attached", took.Round(100*time.Millisecond))
	live := virsh(t, "dumpxml", w.dom("kboot"))
	if !strings.Contains(live, "<cmdline>console=ttyS0 nodevirt.test=kernelboot</cmdline>") {
		t.Errorf("live domain lacks the command line:\n%s", live)
	}
}
