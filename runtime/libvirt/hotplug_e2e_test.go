//go:build e2e

package virt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const hotplugDisk = `<disk type="file" device="disk">
  <driver name="qemu" type="raw"/>
  <source file="/var/lib/nodevirt/volumes/default/data/disk.img"/>
  <target dev="sdb" bus="scsi"/>
  <serial>data-serial</serial>
  <alias name="ua-data"/>
  <address type="drive" controller="0" bus="0" target="0" unit="1"/>
</disk>`

func TestE2E_hotplugDisk(t *testing.T) {
	ctx := t.Context()
	d := requireLibvirtd(t)
	typ := accel(t, d)
	name := uniqueName(t, d)
	dir := t.TempDir()
	// QEMU runs as its own user: it must traverse to the file.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// A SCSI controller and ACPI, as every converted domain has.
	dom := strings.Replace(tinyDomain(typ, name, 64), "<devices>", `<devices><controller type="scsi" index="0" model="virtio-non-transitional"/>`, 1)
	must(t, "define", func() error { return d.Define(ctx, dom) })
	must(t, "start", func() error { return d.Start(ctx, name) })
	disk := strings.Replace(hotplugDisk, "/var/lib/nodevirt/volumes/default/data/disk.img", img, 1)
	if err := d.AttachDevice(ctx, name, disk, false); err != nil {
		t.Fatalf("attach: %v", err)
	}
	live, err := d.LiveDomain(ctx, name)
	if err != nil || live == nil {
		t.Fatalf("live domain: %v, %v", live, err)
	}
	disks := live.Devices.Disks
	if len(disks) != 1 || disks[0].Alias == nil || disks[0].Alias.Name != "ua-data" || disks[0].Serial != "data-serial" {
		t.Fatalf("live disks after attach: %+v", disks)
	}
	if err := d.DetachDevice(ctx, name, "ua-data", false, 10*time.Second); err != nil {
		t.Fatalf("detach: %v", err)
	}
	if live, err = d.LiveDomain(ctx, name); err != nil || len(live.Devices.Disks) != 0 {
		t.Fatalf("live disks after detach: %+v, %v", live.Devices.Disks, err)
	}
	// A second detach finds nothing to remove and says so by succeeding.
	if err := d.DetachDevice(ctx, name, "ua-data", false, time.Second); err != nil {
		t.Fatalf("detach of a removed device: %v", err)
	}
}
