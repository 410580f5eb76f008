//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/nodevirt/nodevirt/runtime/loop"
)

// A disk the operator attached and named with --allowed-block-device, the
// way the seed's 8.18.10 procedure attaches its loop device by hand: the
// PersistentVolume's class "local-disks" has no StorageClass (static PVs
// bind by class name), its by-id path leads, under --root, to the disk;
// the DataVolume is imported into it and a domain runs on it. Without the
// flag the volume is refused naming it; the claim's deletion leaves the
// disk's data and the operator's device alone.
func TestStorage_allowedBlockDevice(t *testing.T) {
	sw := newStorageWorld(t)
	h := newImageHost(t)
	raw := testImage(8 << 20)

	// The operator's disk: a loop device on a file of the test's own.
	backing := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(backing, make([]byte, 32<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	dev := "/dev/loop" + strconv.Itoa(250+rand.IntN(50))
	l := loop.New()
	if err := l.AttachAt(dev, backing, loop.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = l.Detach(dev)
		_ = l.Remove(dev)
	})
	// Under --root, as udev would name it: a node of the same device and
	// a by-id link to it. The host's own /dev is not touched.
	var st syscall.Stat_t
	if err := syscall.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	byID := filepath.Join(sw.hostRoot, "dev", "disk", "by-id")
	if err := os.MkdirAll(byID, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(filepath.Join(sw.hostRoot, "dev", "sdz"), syscall.S_IFBLK|0o600, int(st.Rdev)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../sdz", filepath.Join(byID, "wwn-0x5000e2e000000001")); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(byID, "wwn-0x5000e2e000000001")

	sw.write("classes.yaml", storageClasses+sw.caConfigMap(h)+fmt.Sprintf(`---
apiVersion: v1
kind: PersistentVolume
metadata: {name: wwn-disk}
spec:
  local: {path: /dev/disk/by-id/wwn-0x5000e2e000000001}
  capacity: {storage: 32Mi}
  volumeMode: Block
  storageClassName: local-disks
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [%s]}
`, storageNode))
	dv := fmt.Sprintf(`apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: diskdv}
spec:
  source:
    http: {url: %q, secretRef: images, certConfigMap: images-ca}
  storage:
    storageClassName: local-disks
    resources: {requests: {storage: 32Mi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: keep}
spec:
  storageClassName: hostpath-retain
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
`, h.put("d.raw.xz", xzOf(t, raw)))
	sw.write("dv.yaml", dv)

	cmd := exec.Command(nodevirtBin, sw.args("plan")...)
	both, _ := cmd.CombinedOutput()
	if !strings.Contains(string(both), "PersistentVolume wwn-disk: spec.local.path") || !strings.Contains(string(both), "--allowed-block-device") ||
		strings.Contains(string(both), "DataVolume "+sw.ns+"/diskdv: spec") {
		t.Fatalf("without the flag:\n%s", both)
	}

	allow := "--allowed-block-device=/dev/disk/by-id/wwn-*"
	sw.mustStorage(allow, "apply", "--wait")
	c := sw.describe().claim(t, sw.ns+"/diskdv")
	if !c.Status.Ready || !c.Status.Block || c.Status.Path != disk {
		t.Fatalf("claim %+v", c)
	}
	got := make([]byte, len(raw))
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadFull(f, got)
	f.Close()
	if !bytes.Equal(got, raw) {
		t.Fatal("the disk does not hold the image")
	}
	sw.runDomain("wwn", blockDisk(disk))

	// The claim goes: Delete does not erase a host disk.
	sw.write("dv.yaml", dv[strings.Index(dv, "---\napiVersion: v1\nkind: PersistentVolumeClaim"):])
	if out := sw.mustStorage(allow, "apply"); !strings.Contains(out, "never erases") {
		t.Fatalf("apply after the claim went:\n%s", out)
	}
	f, _ = os.Open(dev)
	_, _ = io.ReadFull(f, got)
	f.Close()
	if !bytes.Equal(got, raw) {
		t.Fatal("the disk was erased")
	}
	if cur, ok, _ := l.Backing(dev); !ok || cur != backing {
		t.Fatalf("the operator's loop device changed: %q %v", cur, ok)
	}
}

// The converter's domains with disks on Block claims (lun with
// reservations, a shareable disk) are what qemu:///system defines with
// validation; the lun on sata that KubeVirt's default bus would give is
// what it refuses, which is why the converter refuses it first.
func TestBlockClaimDomains_defineOnQemuSystem(t *testing.T) {
	require(t, Root, Libvirtd)
	golden, err := os.ReadFile("../reconciler/desired/domain/testdata/vm-block-lun.golden.xml")
	if err != nil {
		t.Fatal(err)
	}
	name := "e2e-block-lun-" + strconv.Itoa(rand.IntN(1e6))
	xml := strings.Replace(string(golden), "<name>lab_db</name>", "<name>"+name+"</name>", 1)
	xml = strings.Replace(xml, `<domain type="kvm">`, `<domain type="`+domainType()+`">`, 1)
	define := func(xml string) (string, error) {
		f := filepath.Join(t.TempDir(), "domain.xml")
		if err := os.WriteFile(f, []byte(xml), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := virshOK("define", "--validate", f)
		if err == nil {
			_, _ = virshOK("undefine", name)
		}
		return out, err
	}
	if out, err := define(xml); err != nil {
		t.Fatalf("define --validate: %v\n%s", err, out)
	}
	sata := strings.Replace(xml, `<target dev="sda" bus="scsi"></target>`, `<target dev="sda" bus="sata"></target>`, 1)
	if out, err := define(sata); err == nil || !strings.Contains(out, "disk device='lun' is not supported for bus='sata'") {
		t.Fatalf("a lun on sata: %v\n%s", err, out)
	}
}
