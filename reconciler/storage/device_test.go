package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
)

const devicePV = `---
apiVersion: v1
kind: PersistentVolume
metadata: {name: %[1]s}
spec:
  local: {path: %[2]s}
  capacity: {storage: 10Gi}
  volumeMode: Block
  storageClassName: local-disks
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [node01]}
`

const deviceDV = `---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: disk, namespace: default}
spec:
  source: {blank: {}}
  storage:
    storageClassName: local-disks
    resources: {requests: {storage: 8Gi}}
`

const wwn = "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"

var allowWWN = []string{"/dev/disk/by-id/wwn-*"}

// A Block PersistentVolume on a real disk is read only when the agent's
// --allowed-block-device names it (a path or a pattern, as written); any
// other device is refused naming the volume, the field and the flag. Loop
// devices need no flag.
func TestDevice_allowList(t *testing.T) {
	build := func(yaml string, allowed []string) *State {
		return Build(manifests.Parse("pv.yaml", []byte(yaml), manifests.Options{}), Options{Node: "node01", AllowedBlockDevices: allowed})
	}
	st := build(fmt.Sprintf(devicePV, "disk1", wwn)+deviceDV, allowWWN)
	if len(st.Diags) > 0 {
		t.Fatal(st.Diags)
	}
	if v := st.Volumes["disk1"]; v == nil || !v.Device || v.Loop {
		t.Fatalf("volume %+v", v)
	}
	if c := st.Claims["default/disk"]; c == nil || c.VolumeMode != Block {
		t.Fatalf("claim %+v", c)
	}

	for _, c := range []struct{ name, path string }{
		{"not listed", "/dev/sdb"},
		{"other by-id kind", "/dev/disk/by-id/ata-SAMSUNG_1"},
		{"dot-dot out of the pattern", "/dev/disk/by-id/../../sdb"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := build(fmt.Sprintf(devicePV, "disk1", c.path)+deviceDV, allowWWN)
			d := findDiag(st.Diags, ErrBlockLoop)
			if d == nil || d.Object != "PersistentVolume disk1" || d.Path != "spec.local.path" || d.Severity != diag.Error ||
				!strings.Contains(d.Message, "--allowed-block-device") || !strings.Contains(d.Message, c.path) {
				t.Fatalf("got %v", st.Diags)
			}
			if st.Invalid["PersistentVolume disk1"] == "" || st.Volumes["disk1"] != nil {
				t.Fatal("the refused volume is used")
			}
			// Its class is still named: the claim waits for the volume
			// instead of being refused as well.
			if len(st.Diags) != 1 || st.Claims["default/disk"] == nil {
				t.Fatalf("the claim is refused too: %v", st.Diags)
			}
		})
	}
	if st := build(fmt.Sprintf(devicePV, "loop", "/dev/loop7"), nil); len(st.Diags) > 0 || !st.Volumes["loop"].Loop {
		t.Fatalf("a loop device needs no flag: %v", st.Diags)
	}
	// One the operator attached and allowed is theirs, not nodevirt's.
	if st := build(fmt.Sprintf(devicePV, "loop", "/dev/loop7"), []string{"/dev/loop7"}); len(st.Diags) > 0 || st.Volumes["loop"].Loop || !st.Volumes["loop"].Device {
		t.Fatalf("an allowed loop device: %v %+v", st.Diags, st.Volumes["loop"])
	}

	for _, p := range []string{"/dev/disk/by-id/wwn-*", "/dev/sdb"} {
		if err := CheckDevicePattern(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []string{"sdb", "/srv/disk.img", "/dev/[", "/"} {
		if err := CheckDevicePattern(p); err == nil {
			t.Errorf("%s accepted", p)
		}
	}
}

// deviceRoot is a host root with /dev/sdb a block device node and by-id
// links to it, as udev makes them. Making a device node needs root; the
// node is never opened.
func deviceRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("making a block device node needs root, and CI runs the tests as root")
		}
		t.Skip("making a block device node needs root")
	}
	root := t.TempDir()
	for _, d := range []string{"dev/disk/by-id"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Major 7 minor 240: a loop device number nothing attaches here.
	if err := syscall.Mknod(filepath.Join(root, "dev/sdb"), syscall.S_IFBLK|0o600, int(7<<8|240)); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"wwn-0x5000c500a1b2c3d4": "../../sdb",
		"wwn-0x5000c500deadbeef": "../../sdb",
		// Absolute, as a hostile link would be: resolved inside the root.
		"wwn-0x5000c500escape00": "/dev/sda",
		"wwn-0x5000c500file0000": "../../notes.txt",
	} {
		if err := os.Symlink(target, filepath.Join(root, "dev/disk/by-id", name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "dev/notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// A DataVolume binds a volume on an allowed disk: the by-id path is
// resolved inside --root and must be a block device; the VM gets the path
// as written (stable across reboots), the import writes the device. A
// link that leads to a file or out of the root, or a second volume on the
// same disk, is a conflict reported on spec.local.path. A deleted claim's
// disk is released, never erased.
func TestDevice_bindAndRelease(t *testing.T) {
	root := deviceRoot(t)
	r := newRig(t)
	r.cfg.Root, r.cfg.AllowPruneAll = root, true
	r.restart()
	state := func(yaml string) *State {
		st := Build(manifests.Parse("pv.yaml", []byte(yaml), manifests.Options{}), Options{Node: "node01", AllowedBlockDevices: allowWWN})
		if st.Diags.HasErrors() {
			t.Fatal(st.Diags)
		}
		return st
	}
	st := state(fmt.Sprintf(devicePV, "disk1", wwn) + deviceDV + vm("db", "dv:disk"))
	p, rep := r.apply(st)
	dev := filepath.Join(root, wwn)
	if a := hasAction(p, ActBind, "DataVolume default/disk"); a == nil || a.Target != dev || rep.Err() != nil {
		t.Fatalf("plan %q, %v", actions(p), rep.Err())
	}
	if hasAction(p, ActProvision, "PersistentVolume disk1") != nil || hasAction(p, ActAttach, "PersistentVolume disk1") != nil {
		t.Fatalf("nodevirt creates a host device: %q", actions(p))
	}
	if req := r.imp.last(); !req.Block || req.Target != dev || req.Size != 0 {
		t.Fatalf("import %+v", req)
	}
	s, _ := r.m.Claim("default", "disk")
	if !s.Ready || !s.Block || s.Path != dev {
		t.Fatalf("claim %+v", s)
	}

	// Removing the claim keeps the data: Delete does not erase a disk.
	p, rep = r.apply(state(fmt.Sprintf(devicePV, "disk1", wwn)))
	if a := hasAction(p, ActRelease, "DataVolume default/disk"); a == nil || !strings.Contains(a.Reason, "never erases") || rep.Err() != nil {
		t.Fatalf("plan %q, %v", actions(p), rep.Err())
	}
	if hasAction(p, ActDeleteData, "DataVolume default/disk") != nil {
		t.Fatal("a host disk's data is deleted")
	}
	// And the volume leaving the source forgets it, touching nothing.
	p, _ = r.apply(state(""))
	if a := hasAction(p, ActForget, "PersistentVolume disk1"); a == nil || hasAction(p, ActDetach, "PersistentVolume disk1") != nil {
		t.Fatalf("plan %q", actions(p))
	}
	if fi, err := os.Stat(filepath.Join(root, "dev/sdb")); err != nil || fi.Mode()&os.ModeDevice == 0 {
		t.Fatalf("the device node changed: %v", err)
	}

	for _, c := range []struct{ name, yaml, pv, want string }{
		{"link to a file", fmt.Sprintf(devicePV, "disk2", "/dev/disk/by-id/wwn-0x5000c500file0000"), "disk2", "is a regular file"},
		{"link out of the root", fmt.Sprintf(devicePV, "disk2", "/dev/disk/by-id/wwn-0x5000c500escape00"), "disk2", "no such file"},
		{"missing", fmt.Sprintf(devicePV, "disk2", "/dev/disk/by-id/wwn-0x5000c500gone0000"), "disk2", "no such file"},
		{"same disk twice", fmt.Sprintf(devicePV, "disk1", wwn) + fmt.Sprintf(devicePV, "disk2", "/dev/disk/by-id/wwn-0x5000c500deadbeef"), "disk2", "also the device of PersistentVolume disk1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := r.plan(state(c.yaml))
			a := hasAction(p, ActConflict, "PersistentVolume "+c.pv)
			if a == nil || !strings.Contains(a.Reason, c.want) {
				t.Fatalf("plan %q", actions(p))
			}
			var d *diag.Diagnostic
			for i := range p.Diags {
				if errors.Is(p.Diags[i].Err, ErrNotBlockDevice) {
					d = &p.Diags[i]
				}
			}
			if d == nil || d.Object != "PersistentVolume "+c.pv || d.Path != "spec.local.path" || d.Severity != diag.Error {
				t.Fatalf("diagnostics %v", p.Diags)
			}
		})
	}
}

// A host disk's PersistentVolume moving to another node (a disk both see,
// or one carried over): once the new node runs the VM the old node
// forgets the volume; it never erases the disk.
func TestDevice_movedIsForgottenNotErased(t *testing.T) {
	root := deviceRoot(t)
	r := newRig(t)
	r.cfg.Root = root
	r.restart()
	state := func(yaml string) *State {
		st := Build(manifests.Parse("pv.yaml", []byte(yaml), manifests.Options{}), Options{Node: "node01", AllowedBlockDevices: allowWWN})
		if st.Diags.HasErrors() {
			t.Fatal(st.Diags)
		}
		return st
	}
	if _, rep := r.apply(state(fmt.Sprintf(devicePV, "disk1", wwn) + deviceDV + vm("db", "dv:disk"))); rep.Err() != nil {
		t.Fatal(rep.Outcomes)
	}
	r.m.cfg.Running = func(string) bool { return false }
	r.m.cfg.Released = func(string, []string) (bool, string) { return true, "" }
	moved := strings.Replace(fmt.Sprintf(devicePV, "disk1", wwn), "values: [node01]", "values: [node02]", 1) + deviceDV +
		strings.Replace(vm("db", "dv:disk"), "    spec:\n      domain:", "    spec:\n      nodeSelector: {kubernetes.io/hostname: node02}\n      domain:", 1)
	p, rep := r.apply(state(moved))
	a := hasAction(p, ActForget, "PersistentVolume disk1")
	if a == nil || !strings.Contains(a.Reason, "never erases") || a.Target != filepath.Join(root, wwn) || rep.Err() != nil {
		t.Fatalf("plan %q, %v", actions(p), rep.Err())
	}
	for _, act := range p.Actions {
		if act.Action == ActDeleteData {
			t.Fatalf("a host disk is deleted: %s %s", act.Object, act.Reason)
		}
	}
	r.m.mu.Lock()
	rec, claim := r.m.volumeRecs["disk1"], r.m.claimRecs["default/disk"]
	r.m.mu.Unlock()
	if rec != nil || claim != nil {
		t.Fatalf("records after the move: volume %+v, claim %+v", rec, claim)
	}
	if fi, err := os.Stat(filepath.Join(root, "dev/sdb")); err != nil || fi.Mode()&os.ModeDevice == 0 {
		t.Fatalf("the device node changed: %v", err)
	}
}
