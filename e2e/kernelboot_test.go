//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"slices"
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
// kernel at /boot/vmlinuz and an initramfs with the init script and the
// kernel modules (with their dependencies, in load order) at /boot/initrd,
// as a KubeVirt kernel boot image carries them.
func kernelBootLayout(t *testing.T, dir, init string, modules ...string) {
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
	in.modules = nil
	for _, m := range modules {
		paths, err := moduleWithDeps(in.release, m)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			if !slices.Contains(in.modules, p) {
				in.modules = append(in.modules, p)
			}
		}
	}
	initrd, err := guestInitramfs(in, []byte(init))
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
	kernelBootLayout(t, filepath.Join(w.hostRoot, hostImageDir, "kernel"), kernelBootInit)
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

// virtiofsInit loads the virtio and virtiofs modules, mounts the share
// tagged "data" and writes a file into it, then says so again and again.
const virtiofsInit = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
for m in /lib/modules/*.ko; do /bin/busybox insmod "$m"; done
/bin/busybox mkdir -p /mnt
if /bin/busybox mount -t virtiofs data /mnt && /bin/busybox echo "written by the guest" > /mnt/from-guest && /bin/busybox sync; then
  msg="nodevirt-guest: virtiofs share written"
else
  msg="nodevirt-guest: virtiofs FAILED"
fi
while true; do /bin/busybox echo "$msg" > /dev/console; /bin/busybox sleep 1; done
`

// virtiofs: the guest mounts its DataVolume's directory by the filesystem's
// name and what it writes there is in the claim's directory on the host.
func TestFidelity_VirtiofsSharesTheClaimDirectory(t *testing.T) {
	sw := newStorageWorld(t)
	kernelBootLayout(t, filepath.Join(sw.hostRoot, hostImageDir, "kernel"), virtiofsInit, "virtio_pci", "virtiofs")
	// The agent looks for virtiofsd under --root; libvirt starts the host's.
	daemon := ""
	for _, p := range []string{"/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"} {
		if _, err := os.Stat(p); err == nil {
			daemon = p
			break
		}
	}
	if daemon == "" {
		missingPrecondition(t, "virtiofsd is not installed (Debian 12: qemu-system-common's /usr/lib/qemu/virtiofsd)")
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Join(sw.hostRoot, daemon)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(daemon, filepath.Join(sw.hostRoot, daemon)); err != nil {
		t.Fatal(err)
	}
	sw.write("classes.yaml", storageClasses)
	sw.write("dv.yaml", `apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: shared, namespace: `+sw.ns+`}
spec:
  source: {blank: {}}
  pvc: {storageClassName: hostpath, accessModes: [ReadWriteOnce], resources: {requests: {storage: 8Mi}}}
`)
	sw.write("vm.yaml", `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: fs, namespace: `+sw.ns+`}
spec:
  runStrategy: Always
  template:
    spec:
      terminationGracePeriodSeconds: 0
      domain:
`+fidelityCPU+`        memory: {guest: 256Mi}
        devices:
          filesystems: [{name: data, virtiofs: {}}]
        firmware:
          kernelBoot:
            container: {image: "oci:`+hostImageDir+`/kernel", kernelPath: /boot/vmlinuz, initrdPath: /boot/initrd}
            kernelArgs: console=ttyS0
      volumes:
        - {name: data, dataVolume: {name: shared}}
`)
	if out, errOut, err := sw.nodevirtAt(sw.repo, "--node", storageNode, "--secrets-dir", sw.secrets,
		"--domain-type", "qemu", "apply", "--timeout", "3m"); err != nil {
		t.Fatalf("apply: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	dom := sw.dom("fs")
	if st := domState(dom); st != "running" {
		t.Fatalf("domain %s is %q, want running", dom, st)
	}
	con := attachConsole(t, dom)
	took := con.await(t, "nodevirt-guest: virtiofs", 1, 90*time.Second)
	if strings.Contains(con.text(), "virtiofs FAILED") {
		t.Fatalf("the guest could not use the share:\n%s", con.text())
	}
	disk := sw.describe().claim(t, sw.ns+"/shared").Status.Path
	got, err := os.ReadFile(filepath.Join(filepath.Dir(disk), "from-guest"))
	if err != nil || string(got) != "written by the guest\n" {
		t.Fatalf("the claim's directory lacks the guest's file: %q, %v", got, err)
	}
	t.Logf("the guest wrote into the claim's directory %s over virtiofs (%s after the console attached)", filepath.Dir(disk), took.Round(100*time.Millisecond))
}

// smbiosInit prints what the guest's firmware tables say about the system.
const smbiosInit = `#!/bin/busybox sh
/bin/busybox mount -t sysfs sysfs /sys
d=/sys/class/dmi/id
while true; do
  /bin/busybox echo "nodevirt-guest: dmi sys_vendor=$(/bin/busybox cat $d/sys_vendor) product_name=$(/bin/busybox cat $d/product_name) product_serial=$(/bin/busybox cat $d/product_serial) board_vendor=$(/bin/busybox cat $d/board_vendor) chassis_vendor=$(/bin/busybox cat $d/chassis_vendor) product_uuid=$(/bin/busybox cat $d/product_uuid) end" > /dev/console
  /bin/busybox sleep 1
done
`

// SMBIOS: the guest sees KubeVirt's system defaults, the firmware serial
// and UUID, the chassis and the base board manufacturer annotation of the
// template.
func TestFidelity_SMBIOS(t *testing.T) {
	w := newWorld(t)
	w.guestVirt()
	kernelBootLayout(t, filepath.Join(w.hostRoot, hostImageDir, "kernel"), smbiosInit)
	vm := `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: dmi, namespace: ` + w.ns + `}
spec:
  runStrategy: Always
  template:
    metadata:
      annotations:
        smbios.vm.kubevirt.io/baseBoardManufacturer: Radical Edward
    spec:
      terminationGracePeriodSeconds: 0
      domain:
` + fidelityCPU + `        memory: {guest: 256Mi}
        chassis: {manufacturer: Acme}
        devices: {}
        firmware:
          serial: SN-0042
          uuid: 5d307ca9-b3ef-428c-8861-06e72d69f223
          kernelBoot:
            container: {image: "oci:` + hostImageDir + `/kernel", kernelPath: /boot/vmlinuz, initrdPath: /boot/initrd}
            kernelArgs: console=ttyS0
`
	w.commit("SMBIOS VM", map[string]string{"vms/dmi.yaml": vm})
	w.startAgent()
	w.awaitAgentFirstBoot("dmi", 60*time.Second)
	con := attachConsole(t, w.dom("dmi"))
	want := "nodevirt-guest: dmi sys_vendor=KubeVirt product_name=None product_serial=SN-0042 board_vendor=Radical Edward chassis_vendor=Acme product_uuid=5d307ca9-b3ef-428c-8861-06e72d69f223 end"
	con.await(t, "chassis_vendor=", 1, 90*time.Second)
	if !strings.Contains(con.text(), want) {
		t.Fatalf("the guest's DMI tables differ; want %q in:\n%s", want, con.text())
	}
}
