package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	k8sv1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// Disks on Block claims: a lun passes SCSI commands to the claim's device
// (scsi bus only; a Filesystem claim is refused naming why), reservation
// lets libvirt run qemu-pr-helper, and a shareable disk gets <shareable/>
// with cache none, as KubeVirt maps them.
func TestConfigureDisks_blockClaims(t *testing.T) {
	const dev = "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
	pvc := func(name, claim string) kubevirtv1.Volume {
		return kubevirtv1.Volume{Name: name, VolumeSource: kubevirtv1.VolumeSource{PersistentVolumeClaim: &kubevirtv1.PersistentVolumeClaimVolumeSource{
			PersistentVolumeClaimVolumeSource: k8sv1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}
	}
	dv := func(name, claim string) kubevirtv1.Volume {
		return kubevirtv1.Volume{Name: name, VolumeSource: kubevirtv1.VolumeSource{DataVolume: &kubevirtv1.DataVolumeSource{Name: claim}}}
	}
	lun := func(name string, bus kubevirtv1.DiskBus, reservation, readonly bool) kubevirtv1.Disk {
		return kubevirtv1.Disk{Name: name, DiskDevice: kubevirtv1.DiskDevice{LUN: &kubevirtv1.LunTarget{Bus: bus, Reservation: reservation, ReadOnly: readonly}}}
	}
	block := func(p string) *libvirtxml.DomainDiskSource {
		return &libvirtxml.DomainDiskSource{Block: &libvirtxml.DomainDiskSourceBlock{Dev: p}}
	}
	claims := map[string]ClaimDisk{
		"db":      {Path: dev, Block: true, VolumeMode: "Block"},
		"files":   {Path: "/var/lib/nodevirt/volumes/lab/files/disk.img", VolumeMode: "Filesystem"},
		"pending": {VolumeMode: "Filesystem"},
		"shared":  {Path: "/dev/loop10", Block: true, VolumeMode: "Block"},
	}
	scsi := []libvirtxml.DomainController{{Type: "scsi", Model: "virtio-non-transitional"}}
	for _, tc := range []struct {
		name  string
		disks []kubevirtv1.Disk
		vols  []kubevirtv1.Volume
		want  *libvirtxml.DomainDeviceList
		diags []diagLine
	}{
		{
			name:  "lun on a bound Block claim, with reservation",
			disks: []kubevirtv1.Disk{lun("db", "scsi", true, true)},
			vols:  []kubevirtv1.Volume{pvc("db", "db")},
			// A block device takes O_DIRECT: cache none and io native, as
			// KubeVirt picks them.
			want: &libvirtxml.DomainDeviceList{Disks: []libvirtxml.DomainDisk{{
				Device: "lun", Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw", ErrorPolicy: "stop", Discard: "unmap", Cache: "none", IO: "native"},
				Source: &libvirtxml.DomainDiskSource{Block: &libvirtxml.DomainDiskSourceBlock{Dev: dev},
					Reservations: &libvirtxml.DomainDiskReservations{Managed: "yes"}},
				Target: &libvirtxml.DomainDiskTarget{Dev: "sda", Bus: "scsi"}, ReadOnly: &libvirtxml.DomainDiskReadOnly{}, Alias: userAlias("db"),
			}}, Controllers: scsi},
		},
		{
			name:  "lun on a claim storage has not planned is taken for Block; the VM waits for it",
			disks: []kubevirtv1.Disk{lun("later", "scsi", false, false)},
			vols:  []kubevirtv1.Volume{dv("later", "later")},
			want: &libvirtxml.DomainDeviceList{Disks: []libvirtxml.DomainDisk{{
				Device: "lun", Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw", ErrorPolicy: "stop", Discard: "unmap", Cache: "none", IO: "native"},
				Source: block("/var/lib/nodevirt/volumes/lab/later/disk.img"),
				Target: &libvirtxml.DomainDiskTarget{Dev: "sda", Bus: "scsi"}, Alias: userAlias("later"),
			}}, Controllers: scsi},
		},
		{
			name:  "lun on a Filesystem claim, bound or not, is refused; a wrong bus too, at once",
			disks: []kubevirtv1.Disk{lun("files", "scsi", false, false), lun("pending", "sata", false, false)},
			vols:  []kubevirtv1.Volume{pvc("files", "files"), dv("pending", "pending")},
			diags: []diagLine{
				{"error", "spec.template.spec.domain.devices.disks[0].lun", `unsupported: claim "files" is a Filesystem volume (a disk.img file); a lun passes SCSI commands to a block device, so the claim needs volumeMode: Block (or use disk instead of lun)`},
				{"error", "spec.template.spec.domain.devices.disks[1].lun", `unsupported: claim "pending" is a Filesystem volume (a disk.img file); a lun passes SCSI commands to a block device, so the claim needs volumeMode: Block (or use disk instead of lun)`},
				{"error", "spec.template.spec.domain.devices.disks[1].lun.bus", `unsupported: bus "sata": QEMU passes SCSI commands through only on the scsi bus; set lun.bus: scsi`},
			},
		},
		{
			name:  "lun on sata is refused naming the bus",
			disks: []kubevirtv1.Disk{lun("db", "sata", false, false)},
			vols:  []kubevirtv1.Volume{pvc("db", "db")},
			diags: []diagLine{
				{"error", "spec.template.spec.domain.devices.disks[0].lun.bus", `unsupported: bus "sata": QEMU passes SCSI commands through only on the scsi bus; set lun.bus: scsi`},
			},
		},
		{
			name: "shareable disk on a Block claim: cache none",
			disks: []kubevirtv1.Disk{{Name: "shared", Shareable: ptr(true),
				DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: "virtio"}}}},
			vols: []kubevirtv1.Volume{dv("shared", "shared")},
			want: &libvirtxml.DomainDeviceList{Disks: []libvirtxml.DomainDisk{{
				Device: "disk", Model: "virtio-non-transitional",
				Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw", ErrorPolicy: "stop", Discard: "unmap", Cache: "none", IO: "native"},
				Source: block("/dev/loop10"), Shareable: &libvirtxml.DomainDiskShareable{},
				Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"}, Alias: userAlias("shared"),
			}}},
		},
		{
			name: "shareable disk with the host page cache is refused",
			disks: []kubevirtv1.Disk{{Name: "shared", Shareable: ptr(true), Cache: kubevirtv1.CacheWriteBack,
				DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: "virtio"}}}},
			vols: []kubevirtv1.Volume{dv("shared", "shared")},
			diags: []diagLine{
				{"error", "spec.template.spec.domain.devices.disks[0].cache", "invalid: a shareable disk needs cache none, not writeback: the host page cache would hide the other writers' data"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput(kubevirtv1.VirtualMachineInstanceSpec{
				Domain:  kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{Disks: tc.disks}},
				Volumes: tc.vols,
			})
			in.Resources.Claims = claims
			dom, out := run(configureDisks, in)
			want := &libvirtxml.Domain{Devices: tc.want}
			if tc.want == nil {
				want = &libvirtxml.Domain{}
			}
			if diff := cmp.Diff(want, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.diags, diagLines(out)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			if tc.want != nil {
				full := *dom
				full.Type, full.Name = "qemu", "t"
				full.Memory = &libvirtxml.DomainMemory{Value: 65536}
				full.OS = &libvirtxml.DomainOS{Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "q35", Type: "hvm"}}
				x, err := full.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				assertLibvirtAccepts(t, x)
			}
		})
	}
}
