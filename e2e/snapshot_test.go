//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	snapshotv1beta1 "kubevirt.io/api/snapshot/v1beta1"

	"github.com/nodevirt/nodevirt/runtime/loop"
)

// snapshotClaim is a static local volume (mode Filesystem or Block, at
// path) in a class the seed's matrix lets snapshot, and a blank DataVolume
// of size bound to it.
func snapshotClaim(ns, path, mode, size string) string {
	return fmt.Sprintf(`apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: %[1]s-snap-pv}
spec:
  hostPath: {path: %[2]s}
  capacity: {storage: 16Mi}
  volumeMode: %[3]s
  storageClassName: local
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: data, namespace: %[1]s}
spec:
  source: {blank: {}}
  pvc: {storageClassName: local, volumeMode: %[3]s, accessModes: [ReadWriteOnce], resources: {requests: {storage: %[4]s}}}
`, ns, path, mode, size)
}

func haltedVMWithDV(ns string) string {
	return fmt.Sprintf(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: app, namespace: %s}
spec:
  runStrategy: Halted
  template:
    spec:
      terminationGracePeriodSeconds: 0
      domain:
        cpu:
          features: [{name: arch-capabilities, policy: disable}]
        memory: {guest: 64Mi}
        devices:
          disks: [{name: data, disk: {bus: virtio}}]
      volumes:
        - {name: data, dataVolume: {name: data}}
`, ns)
}

func snapshotYAML(ns, name, vm string) string {
	return fmt.Sprintf(`apiVersion: snapshot.kubevirt.io/v1alpha1
kind: VirtualMachineSnapshot
metadata: {name: %s, namespace: %s}
spec:
  source: {apiGroup: kubevirt.io, kind: VirtualMachine, name: %s}
`, name, ns, vm)
}

func (w *world) getSnapshot(name string) (snapshotv1beta1.VirtualMachineSnapshot, bool) {
	var s snapshotv1beta1.VirtualMachineSnapshot
	out, _, err := w.nodevirt("get", "vmsnapshot", name, "-o", "json")
	if err != nil || json.Unmarshal([]byte(out), &s) != nil || s.Status == nil {
		return s, false
	}
	return s, true
}

// A stopped VM's DataVolume is snapshotted, its bytes changed on the host,
// and the restore puts the snapshot's bytes back; a running VM's snapshot
// waits, reported.
func TestSnapshot_offlineSnapshotAndRestore(t *testing.T) {
	w := newWorld(t)
	pvDir := "/pv/snap"
	if err := os.MkdirAll(filepath.Join(w.hostRoot, pvDir), 0o755); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(w.hostRoot, pvDir, "disk.img")
	w.commit("a stopped VM with a DataVolume", map[string]string{
		"storage.yaml": snapshotClaim(w.ns, pvDir, "Filesystem", "8Mi"),
		"vm.yaml":      haltedVMWithDV(w.ns),
	})
	a := w.startAgent("--allowed-root", "/pv")
	await(t, "the blank DataVolume", 3*time.Minute, func() bool {
		out, _, err := w.nodevirt("get", "dv", "data", "-o", "json")
		return err == nil && strings.Contains(out, `"phase": "Succeeded"`)
	})
	if _, err := os.Stat(disk); err != nil {
		t.Fatalf("the DataVolume's disk is not where its volume says: %v\n%s", err, a.logs())
	}
	// Data the snapshot must keep, at a known offset.
	const off = 3 << 20
	original := bytes.Repeat([]byte("nodevirt snapshot e2e "), 1000)
	writeAt(t, disk, off, original)
	want, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}

	w.commit("snapshot the stopped VM", map[string]string{"snap.yaml": snapshotYAML(w.ns, "before", "app")})
	var snap snapshotv1beta1.VirtualMachineSnapshot
	took := await(t, "the snapshot ready to use", 2*time.Minute, func() bool {
		s, ok := w.getSnapshot("before")
		snap = s
		return ok && s.Status.ReadyToUse != nil && *s.Status.ReadyToUse
	})
	t.Logf("snapshot ready after %s", took.Round(time.Millisecond))
	if snap.Status.Phase != snapshotv1beta1.Succeeded || snap.Status.CreationTime == nil || snap.Status.VirtualMachineSnapshotContentName == nil {
		t.Fatalf("snapshot status %+v", snap.Status)
	}
	content := filepath.Join(w.state, "snapshots", w.ns, "before", "data.img")
	if got, err := os.ReadFile(content); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the content's copy differs from the disk (%v)", err)
	}
	out := w.mustNodevirt("get", "vmsnapshot")
	if !strings.Contains(out, "SOURCEKIND") || !strings.Contains(out, "before") || !strings.Contains(out, "Succeeded") {
		t.Errorf("get vmsnapshot:\n%s", out)
	}

	// Change the disk on the host, then restore.
	writeAt(t, disk, off+100, []byte("GARBAGE GARBAGE GARBAGE"))
	if got, _ := os.ReadFile(disk); bytes.Equal(got, want) {
		t.Fatal("the disk did not change")
	}
	w.commit("restore the VM", map[string]string{"restore.yaml": fmt.Sprintf(`apiVersion: snapshot.kubevirt.io/v1beta1
kind: VirtualMachineRestore
metadata: {name: back, namespace: %s}
spec:
  target: {apiGroup: kubevirt.io, kind: VirtualMachine, name: app}
  virtualMachineSnapshotName: before
`, w.ns)})
	await(t, "the restore complete", 2*time.Minute, func() bool {
		out, _, err := w.nodevirt("get", "vmrestore", "back", "-o", "json")
		var r snapshotv1beta1.VirtualMachineRestore
		return err == nil && json.Unmarshal([]byte(out), &r) == nil && r.Status != nil && r.Status.Complete != nil && *r.Status.Complete && r.Status.RestoreTime != nil
	})
	if got, err := os.ReadFile(disk); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the restore did not bring the snapshot's bytes back (%v)", err)
	}
	// It ran once: bytes written afterwards stay through more reconciles.
	writeAt(t, disk, 0, []byte("after the restore"))
	w.commit("an unrelated change", map[string]string{"note.txt": "x\n"})
	time.Sleep(4 * time.Second)
	if got, _ := os.ReadFile(disk); !bytes.HasPrefix(got, []byte("after the restore")) {
		t.Fatal("a completed restore ran again")
	}

	// A running VM's snapshot waits, and says why.
	w.commit("a running VM", map[string]string{"live.yaml": vmYAML(w.ns, "live", "64Mi", "Always")})
	w.awaitState("live", "running", 3*time.Minute)
	w.commit("a snapshot of the running VM", map[string]string{"live-snap.yaml": snapshotYAML(w.ns, "live-snap", "live")})
	await(t, "the running VM's snapshot reported waiting", 2*time.Minute, func() bool {
		s, ok := w.getSnapshot("live-snap")
		if !ok || s.Status.Phase != snapshotv1beta1.InProgress || (s.Status.ReadyToUse != nil && *s.Status.ReadyToUse) {
			return false
		}
		for _, c := range s.Status.Conditions {
			if strings.Contains(c.Message, "the VM is running; an offline snapshot waits until it is stopped") {
				return true
			}
		}
		return false
	})
	if _, err := os.Stat(filepath.Join(w.state, "snapshots", w.ns, "live-snap")); !os.IsNotExist(err) {
		t.Errorf("a running VM's snapshot made a content: %v", err)
	}
	// The plan and drift say it too.
	out, _, _ = w.nodevirt("plan")
	if !strings.Contains(out, "Snapshot plan") || !strings.Contains(out, "VirtualMachineSnapshot "+w.ns+"/live-snap") ||
		!strings.Contains(out, "an offline snapshot waits until it is stopped") {
		t.Errorf("plan does not show the waiting snapshot:\n%s", out)
	}
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// A Block DataVolume on a loop-backed PersistentVolume: the snapshot reads
// the device, the restore writes it back.
func TestSnapshot_blockVolume(t *testing.T) {
	w := newWorld(t)
	dev := "/dev/loop" + strconv.Itoa(200+rand.IntN(50))
	l := loop.New()
	t.Cleanup(func() {
		_ = l.Detach(dev)
		_ = l.Remove(dev)
	})
	w.commit("a stopped VM with a Block DataVolume", map[string]string{
		"storage.yaml": snapshotClaim(w.ns, dev, "Block", "16Mi"),
		"vm.yaml":      haltedVMWithDV(w.ns),
	})
	w.startAgent()
	await(t, "the Block DataVolume", 3*time.Minute, func() bool {
		out, _, err := w.nodevirt("get", "dv", "data", "-o", "json")
		return err == nil && strings.Contains(out, `"phase": "Succeeded"`)
	})
	const off = 5 << 20
	original := bytes.Repeat([]byte("block snapshot "), 500)
	writeAt(t, dev, off, original)
	want := readDev(t, dev)

	w.commit("snapshot", map[string]string{"snap.yaml": snapshotYAML(w.ns, "blk", "app")})
	await(t, "the snapshot ready to use", 2*time.Minute, func() bool {
		s, ok := w.getSnapshot("blk")
		return ok && s.Status.ReadyToUse != nil && *s.Status.ReadyToUse
	})
	writeAt(t, dev, off, []byte("GARBAGE"))
	w.commit("restore", map[string]string{"restore.yaml": fmt.Sprintf(`apiVersion: snapshot.kubevirt.io/v1beta1
kind: VirtualMachineRestore
metadata: {name: blk-back, namespace: %s}
spec:
  target: {apiGroup: kubevirt.io, kind: VirtualMachine, name: app}
  virtualMachineSnapshotName: blk
`, w.ns)})
	await(t, "the restore complete", 2*time.Minute, func() bool {
		out, _, err := w.nodevirt("get", "vmrestore", "blk-back", "-o", "json")
		return err == nil && strings.Contains(out, `"complete": true`)
	})
	if !bytes.Equal(readDev(t, dev), want) {
		t.Fatal("the restore did not bring the device's bytes back")
	}
}

func readDev(t *testing.T, dev string) []byte {
	t.Helper()
	b, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
