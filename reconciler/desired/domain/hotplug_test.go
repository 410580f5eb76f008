package domain

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// hotplugSpec is a q35 VM with n virtio disks on a claim each and guest
// memory mem.
func hotplugSpec(machine string, n int, mem string) kubevirtv1.VirtualMachineInstanceSpec {
	spec := kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{
		Machine: &kubevirtv1.Machine{Type: machine},
		Memory:  &kubevirtv1.Memory{Guest: qty(mem)},
	}}
	for i := range n {
		name := "d" + strconv.Itoa(i)
		spec.Domain.Devices.Disks = append(spec.Domain.Devices.Disks, kubevirtv1.Disk{Name: name,
			DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}})
		spec.Volumes = append(spec.Volumes, kubevirtv1.Volume{Name: name, VolumeSource: kubevirtv1.VolumeSource{
			PersistentVolumeClaim: &kubevirtv1.PersistentVolumeClaimVolumeSource{}}})
		spec.Volumes[i].PersistentVolumeClaim.ClaimName = name
	}
	return spec
}

// ports returns the hotplug root ports' indexes and the SCSI controllers.
func ports(t *testing.T, dom *libvirtxml.Domain) (idx []uint, scsi []libvirtxml.DomainController) {
	t.Helper()
	for _, c := range dom.Devices.Controllers {
		switch {
		case c.Type == "scsi":
			scsi = append(scsi, c)
		case c.Model == "pcie-root-port":
			if !IsHotplugController(c) {
				t.Errorf("root port %d lacks the hotplug alias", *c.Index)
			}
			idx = append(idx, *c.Index)
		}
	}
	return idx, scsi
}

func TestConvert_hotplugControllers(t *testing.T) {
	// Devices on root ports besides the disks: balloon, the virtio-serial
	// for the guest agent channel, the SCSI controller. The USB controller
	// is model none: no device of the spec needs USB.
	const fixed = 3
	for _, tc := range []struct {
		name      string
		spec      kubevirtv1.VirtualMachineInstanceSpec
		wantPorts int
	}{
		{"small guest: 8 in total", hotplugSpec("q35", 1, "1Gi"), 8},
		{"small guest, many devices: 3 free", hotplugSpec("q35", 7, "1Gi"), 7 + fixed + 3},
		{"large guest: 16 in total", hotplugSpec("q35", 1, "4Gi"), 16},
		{"large guest, many devices: 6 free", hotplugSpec("q35", 12, "4Gi"), 12 + fixed + 6},
		{"capped at bus index 31", hotplugSpec("q35", 28, "4Gi"), 31},
		{"i440fx needs no ports", hotplugSpec("pc", 1, "1Gi"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Convert(testInput(tc.spec), testContext)
			if res.Diags.HasErrors() {
				t.Fatalf("diagnostics: %v", res.Diags)
			}
			idx, scsi := ports(t, res.Domain)
			if len(idx) != tc.wantPorts {
				t.Fatalf("got %d root ports, want %d", len(idx), tc.wantPorts)
			}
			for i, n := range idx {
				if n != uint(i+1) {
					t.Fatalf("root port %d has index %d: indexes must be 1..n in order", i, n)
				}
			}
			if len(scsi) != 1 || scsi[0].Index == nil || *scsi[0].Index != 0 || scsi[0].Alias == nil || scsi[0].Alias.Name != HotplugSCSIAlias {
				t.Fatalf("want one hotplug SCSI controller with index 0, got %+v", scsi)
			}
			xml, err := res.Domain.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "domain.xml")
			if err := os.WriteFile(file, []byte(xml), 0o600); err != nil {
				t.Fatal(err)
			}
			assertSchemaValid(t, file)
			assertLibvirtAccepts(t, xml)
		})
	}
}

func TestConvert_hotplugStableAcrossRenders(t *testing.T) {
	spec := hotplugSpec("q35", 2, "1Gi")
	a, err := Convert(testInput(spec), testContext).Domain.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Convert(testInput(spec), testContext).Domain.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("two renders of one spec differ: a redefine would renumber controllers")
	}
}

func TestConvert_disableHotplug(t *testing.T) {
	spec := hotplugSpec("q35", 1, "1Gi")
	spec.Domain.Devices.DisableHotplug = true
	res := Convert(testInput(spec), testContext)
	idx, scsi := ports(t, res.Domain)
	if len(idx) != 0 || len(scsi) != 0 {
		t.Fatalf("disableHotplug: want no ports and no SCSI controller, got %d ports, %d SCSI", len(idx), len(scsi))
	}
}

func TestConvert_scsiDiskKeepsItsController(t *testing.T) {
	spec := hotplugSpec("q35", 1, "1Gi")
	spec.Domain.Devices.Disks[0].Disk.Bus = kubevirtv1.DiskBusSCSI
	res := Convert(testInput(spec), testContext)
	_, scsi := ports(t, res.Domain)
	if len(scsi) != 1 || IsHotplugController(scsi[0]) {
		t.Fatalf("a SCSI disk's controller must stay the disks' own (hashed), got %+v", scsi)
	}
}

// A hotpluggable DataVolume on the SCSI bus is a live disk: named after
// every other disk (so adding or removing it renames none), and listed in
// Result.Hotplug with the element to attach.
func TestConvert_liveHotplugDisk(t *testing.T) {
	spec := hotplugSpec("q35", 2, "1Gi")
	spec.Domain.Devices.Disks[0].Disk.Bus = kubevirtv1.DiskBusSATA
	spec.Domain.Devices.Disks = append([]kubevirtv1.Disk{{Name: "hot", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusSCSI}}, Serial: "HS"}},
		spec.Domain.Devices.Disks...)
	spec.Volumes = append(spec.Volumes, kubevirtv1.Volume{Name: "hot", VolumeSource: kubevirtv1.VolumeSource{
		DataVolume: &kubevirtv1.DataVolumeSource{Name: "hot", Hotpluggable: true}}})
	res := Convert(testInput(spec), testContext)
	if res.Diags.HasErrors() {
		t.Fatal(res.Diags)
	}
	targets := map[string]string{}
	for _, d := range res.Domain.Devices.Disks {
		targets[d.Alias.Name] = d.Target.Dev
	}
	if want := map[string]string{"ua-d0": "sda", "ua-d1": "vda", "ua-hot": "sdb"}; !reflect.DeepEqual(targets, want) {
		t.Fatalf("targets %v, want %v", targets, want)
	}
	if len(res.Hotplug) != 1 || res.Hotplug[0].Alias != "ua-hot" || !strings.Contains(res.Hotplug[0].XML, "<serial>HS</serial>") ||
		!strings.Contains(res.Hotplug[0].XML, `bus="scsi"`) {
		t.Fatalf("hotplug: %+v", res.Hotplug)
	}
	if _, scsi := ports(t, res.Domain); len(scsi) != 1 || !IsHotplugController(scsi[0]) {
		t.Fatalf("a live disk must use the hotplug SCSI controller (not hashed), got %+v", scsi)
	}
	// A lun on a Block claim (virtctl addvolume --disk-type lun) is live too.
	lunSpec := *spec.DeepCopy()
	lunSpec.Domain.Devices.Disks[0].DiskDevice = kubevirtv1.DiskDevice{LUN: &kubevirtv1.LunTarget{Bus: kubevirtv1.DiskBusSCSI}}
	in := testInput(lunSpec)
	in.Resources.Claims = map[string]ClaimDisk{"hot": {Path: "/dev/loop12", Block: true, VolumeMode: "Block"}}
	if res := Convert(in, testContext); res.Diags.HasErrors() || len(res.Hotplug) != 1 || !strings.Contains(res.Hotplug[0].XML, `device="lun"`) ||
		!strings.Contains(res.Hotplug[0].XML, `dev="/dev/loop12"`) {
		t.Fatalf("live lun: %v %+v", res.Diags, res.Hotplug)
	}
	// Not hotpluggable, or on virtio: a cold disk.
	spec.Volumes[len(spec.Volumes)-1].DataVolume.Hotpluggable = false
	if res := Convert(testInput(spec), testContext); len(res.Hotplug) != 0 {
		t.Fatalf("a cold volume is listed as live: %+v", res.Hotplug)
	}
}
