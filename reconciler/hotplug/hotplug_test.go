package hotplug

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
	"sigs.k8s.io/yaml"

	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/runtime/statedb"
)

// fakeHV keeps running domains' live XML in memory and attaches and
// detaches as libvirt does (libvirt's test driver has no device hotplug);
// the real driver is exercised by the e2e tests.
type fakeHV struct {
	mu   sync.Mutex
	live map[string]*libvirtxml.Domain
	// hold keeps detached aliases in the live XML (a guest that does not
	// release them).
	hold map[string]bool
}

func newFakeHV() *fakeHV {
	return &fakeHV{live: map[string]*libvirtxml.Domain{}, hold: map[string]bool{}}
}

// boot starts (or restarts) domain with one cold disk and a new id.
func (f *fakeHV) boot(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := 1
	if d := f.live[name]; d != nil {
		id = *d.ID + 1
	}
	f.live[name] = &libvirtxml.Domain{Name: name, ID: &id, Devices: &libvirtxml.DomainDeviceList{Disks: []libvirtxml.DomainDisk{{
		Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: "/disks/root.qcow2"}},
		Target: &libvirtxml.DomainDiskTarget{Dev: "sda", Bus: "sata"}, Alias: &libvirtxml.DomainAlias{Name: "ua-root"},
	}}}}
}

func (f *fakeHV) stop(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live[name] = nil
}

func (f *fakeHV) AttachDevice(_ context.Context, name, x string, persist bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.live[name]
	if d == nil {
		return errors.New("not running")
	}
	var disk libvirtxml.DomainDisk
	if err := disk.Unmarshal(x); err != nil {
		return err
	}
	d.Devices.Disks = append(d.Devices.Disks, disk)
	return nil
}

func (f *fakeHV) DetachDevice(_ context.Context, name, alias string, persist bool, timeout time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hold[alias] {
		return fmt.Errorf("detach %s: guest did not release device within %s", alias, timeout)
	}
	d := f.live[name]
	var keep []libvirtxml.DomainDisk
	for _, disk := range d.Devices.Disks {
		if disk.Alias == nil || disk.Alias.Name != alias {
			keep = append(keep, disk)
		}
	}
	d.Devices.Disks = keep
	return nil
}

func (f *fakeHV) LiveDomain(_ context.Context, name string) (*libvirtxml.Domain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.live[name]
	if d == nil {
		return nil, nil
	}
	cp := *d
	devs := *d.Devices
	devs.Disks = append([]libvirtxml.DomainDisk(nil), d.Devices.Disks...)
	cp.Devices = &devs
	return &cp, nil
}

func (f *fakeHV) aliases(name string) []string {
	d, _ := f.LiveDomain(context.Background(), name)
	var out []string
	if d == nil {
		return nil
	}
	for _, disk := range d.Devices.Disks {
		out = append(out, disk.Alias.Name+"="+disk.Target.Dev)
	}
	return out
}

type claims map[string]ClaimDisk

func (c claims) ClaimDisk(ns, name string) (ClaimDisk, bool) {
	d, ok := c[ns+"/"+name]
	return d, ok
}

func setup(t *testing.T) (*Manager, *fakeHV, *desired.VM) {
	t.Helper()
	db, err := statedb.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := newFakeHV()
	h.boot("lab_vm")
	c := claims{
		"lab/data":    {Path: "/volumes/lab/data/disk.img", Ready: true, Phase: "Succeeded", DataVolume: true},
		"lab/pending": {Path: "/volumes/lab/pending/disk.img", Phase: "ImportInProgress", DataVolume: true},
		"lab/root":    {Path: "/disks/root.qcow2", Ready: true},
	}
	vm := &desired.VM{Object: "VirtualMachine lab/vm", Kind: "VirtualMachine", Namespace: "lab", Name: "vm", DomainName: "lab_vm",
		File: "vms/vm.yaml", Volumes: []string{"root", "extra"}, Hotpluggable: []string{"extra"}}
	return New(h, c, db), h, vm
}

func addOpts(name, dv string) kubevirtv1.AddVolumeOptions {
	return kubevirtv1.AddVolumeOptions{Name: name,
		Disk:         &kubevirtv1.Disk{Name: name, Serial: "SER-" + name, DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusSCSI}}},
		VolumeSource: &kubevirtv1.HotplugVolumeSource{DataVolume: &kubevirtv1.DataVolumeSource{Name: dv, Hotpluggable: true}}}
}

func TestAdd_attachesLiveAndForgetsAtRestart(t *testing.T) {
	m, h, vm := setup(t)
	ctx := t.Context()
	res, err := m.Add(ctx, vm, addOpts("data", "data"), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.aliases("lab_vm"), ","); got != "ua-root=sda,ua-data=sdb" {
		t.Fatalf("live disks: %s", got)
	}
	live, _ := h.LiveDomain(ctx, "lab_vm")
	if d := live.Devices.Disks[1]; d.Serial != "SER-data" || d.Target.Bus != "scsi" || d.Source.File.File != "/volumes/lab/data/disk.img" {
		t.Fatalf("attached disk: %+v", d)
	}
	if res.Patch != "" || !strings.Contains(res.Message, "gone at the VM's next restart") {
		t.Fatalf("result without persist: %+v", res)
	}
	hp, _ := m.HotPlugged()
	if len(hp["lab_vm"]) != 1 || hp["lab_vm"][0] != "data" {
		t.Fatalf("HotPlugged: %v", hp)
	}
	vs := m.VolumeStatus("lab_vm")
	if len(vs) != 1 || vs[0].Target != "sdb" || vs[0].Phase != kubevirtv1.VolumeReady || vs[0].HotplugVolume == nil {
		t.Fatalf("volume status: %+v", vs)
	}
	// A reconcile keeps it.
	vms := map[string]*desired.VM{"lab_vm": vm}
	if err := m.Sync(ctx, vms); err != nil {
		t.Fatal(err)
	}
	if hp, _ := m.HotPlugged(); len(hp["lab_vm"]) != 1 {
		t.Fatalf("a sync in the same boot dropped the record: %v", hp)
	}
	// A restart drops it: the next boot has no such disk.
	h.boot("lab_vm")
	if err := m.Sync(ctx, vms); err != nil {
		t.Fatal(err)
	}
	if hp, _ := m.HotPlugged(); len(hp) != 0 {
		t.Fatalf("after a restart: %v", hp)
	}
	if got := strings.Join(h.aliases("lab_vm"), ","); got != "ua-root=sda" {
		t.Fatalf("live disks after restart: %s", got)
	}
}

func TestAdd_persistAttachesAgainUntilCommitted(t *testing.T) {
	m, h, vm := setup(t)
	ctx := t.Context()
	res, err := m.Add(ctx, vm, addOpts("data", "data"), true)
	if err != nil {
		t.Fatal(err)
	}
	var patch struct {
		Spec struct {
			Template struct {
				Spec kubevirtv1.VirtualMachineInstanceSpec `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(res.Patch), &patch); err != nil {
		t.Fatalf("patch is not YAML: %v\n%s", err, res.Patch)
	}
	spec := patch.Spec.Template.Spec
	if len(spec.Volumes) != 1 || spec.Volumes[0].DataVolume == nil || !spec.Volumes[0].DataVolume.Hotpluggable ||
		len(spec.Domain.Devices.Disks) != 1 || spec.Domain.Devices.Disks[0].Serial != "SER-data" {
		t.Fatalf("patch:\n%s", res.Patch)
	}
	vms := map[string]*desired.VM{"lab_vm": vm}
	// Stopped, then booted again: attached again.
	h.stop("lab_vm")
	if err := m.Sync(ctx, vms); err != nil {
		t.Fatal(err)
	}
	h.boot("lab_vm")
	if err := m.Sync(ctx, vms); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.aliases("lab_vm"), ","); got != "ua-root=sda,ua-data=sdb" {
		t.Fatalf("live disks after a reboot: %s", got)
	}
	// The commit lands: the source owns the volume, the record goes.
	vm.Volumes = append(vm.Volumes, "data")
	if err := m.Sync(ctx, vms); err != nil {
		t.Fatal(err)
	}
	if hp, _ := m.HotPlugged(); len(hp) != 0 {
		t.Fatalf("after the commit: %v", hp)
	}
}

func TestAdd_refusals(t *testing.T) {
	m, h, vm := setup(t)
	ctx := t.Context()
	if _, err := m.Add(ctx, vm, addOpts("data", "data"), false); err != nil {
		t.Fatal(err)
	}
	noSource := addOpts("x", "data")
	noSource.VolumeSource = &kubevirtv1.HotplugVolumeSource{}
	virtio := addOpts("v", "data")
	virtio.Disk.Disk.Bus = kubevirtv1.DiskBusVirtio
	lun := addOpts("l", "data")
	lun.Disk.DiskDevice = kubevirtv1.DiskDevice{LUN: &kubevirtv1.LunTarget{Bus: kubevirtv1.DiskBusSCSI}}
	for _, tc := range []struct {
		name string
		opts kubevirtv1.AddVolumeOptions
		want error
		text string
	}{
		{"hot-plugged name", addOpts("data", "data"), ErrInvalid, "Unable to add volume [data] because volume with that name already exists"},
		{"declared name", addOpts("root", "data"), ErrInvalid, "Unable to add volume [root] because volume with that name already exists"},
		{"same source", addOpts("again", "root"), ErrInvalid, "Unable to add volume source [root] because it already exists"},
		{"unknown DataVolume", addOpts("n", "nope"), ErrUnknownClaim, "DataVolume lab/nope is not in the source"},
		{"not ready", addOpts("p", "pending"), ErrClaimNotReady, "phase ImportInProgress"},
		{"no source", noSource, ErrInvalid, "needs exactly one source"},
		{"virtio bus", virtio, ErrInvalid, "hot-plugged disks use scsi"},
		{"lun on a file", lun, ErrInvalid, "lun needs a Block volume"},
		{"no name", addOpts("", "data"), ErrInvalid, "a volume name is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Add(ctx, vm, tc.opts, false)
			if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.text) {
				t.Fatalf("got %v, want %v containing %q", err, tc.want, tc.text)
			}
		})
	}
	h.stop("lab_vm")
	if _, err := m.Add(ctx, vm, addOpts("late", "data"), false); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("add to a stopped VM: %v", err)
	}
}

func TestRemove(t *testing.T) {
	m, h, vm := setup(t)
	ctx := t.Context()
	if _, err := m.Add(ctx, vm, addOpts("data", "data"), false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, text string }{
		{"root", "Unable to remove volume [root] because it is not hotpluggable"},
		{"nope", "Unable to remove volume [nope] because it does not exist"},
	} {
		if _, err := m.Remove(ctx, vm, tc.name, false); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.text) {
			t.Fatalf("remove %s: %v", tc.name, err)
		}
	}
	// A guest that does not release the disk: the record stays.
	h.hold["ua-data"] = true
	if _, err := m.Remove(ctx, vm, "data", false); err == nil || !strings.Contains(err.Error(), "guest did not release device") {
		t.Fatalf("remove of a held disk: %v", err)
	}
	if hp, _ := m.HotPlugged(); len(hp["lab_vm"]) != 1 {
		t.Fatalf("a failed detach dropped the record: %v", hp)
	}
	delete(h.hold, "ua-data")
	if _, err := m.Remove(ctx, vm, "data", false); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.aliases("lab_vm"), ","); got != "ua-root=sda" {
		t.Fatalf("live disks after remove: %s", got)
	}
	if hp, _ := m.HotPlugged(); len(hp) != 0 {
		t.Fatalf("records after remove: %v", hp)
	}
}

// removevolume of a hotpluggable volume the source declares detaches it
// and keeps it detached, also after a reboot, until the source drops it.
func TestRemove_declaredKeptDetached(t *testing.T) {
	m, h, vm := setup(t)
	ctx := t.Context()
	h.mu.Lock()
	d := h.live["lab_vm"]
	d.Devices.Disks = append(d.Devices.Disks, libvirtxml.DomainDisk{Target: &libvirtxml.DomainDiskTarget{Dev: "sdb", Bus: "scsi"}, Alias: &libvirtxml.DomainAlias{Name: "ua-extra"}})
	h.mu.Unlock()
	res, err := m.Remove(ctx, vm, "extra", false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Patch, "name: extra") || !strings.Contains(res.Patch, "remove from VirtualMachine lab/vm") {
		t.Fatalf("patch:\n%s", res.Patch)
	}
	if got := m.Detached("lab_vm"); len(got) != 1 || got[0] != "extra" {
		t.Fatalf("Detached: %v", got)
	}
	// The definition brings it back at boot; the record detaches it again.
	h.boot("lab_vm")
	h.mu.Lock()
	d = h.live["lab_vm"]
	d.Devices.Disks = append(d.Devices.Disks, libvirtxml.DomainDisk{Target: &libvirtxml.DomainDiskTarget{Dev: "sdb", Bus: "scsi"}, Alias: &libvirtxml.DomainAlias{Name: "ua-extra"}})
	h.mu.Unlock()
	vms := map[string]*desired.VM{"lab_vm": vm}
	if err := m.Sync(ctx, vms); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.aliases("lab_vm"), ","); got != "ua-root=sda" {
		t.Fatalf("after a reboot: %s", got)
	}
	vm.Volumes, vm.Hotpluggable = []string{"root"}, nil
	if err := m.Sync(ctx, vms); err != nil {
		t.Fatal(err)
	}
	all, _ := m.rec.all()
	if len(all) != 0 {
		t.Fatalf("records after the commit: %v", all)
	}
}
