package domain

import (
	"encoding/base64"
	"testing"

	"github.com/google/go-cmp/cmp"
	k8sv1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureDisks(t *testing.T) {
	disk := func(name string, target kubevirtv1.DiskDevice) kubevirtv1.Disk {
		return kubevirtv1.Disk{Name: name, DiskDevice: target}
	}
	onBus := func(bus kubevirtv1.DiskBus) kubevirtv1.DiskDevice {
		return kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: bus}}
	}
	file := func(p string) *libvirtxml.DomainDiskSource {
		return &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: p}}
	}
	driver := func(format string) *libvirtxml.DomainDiskDriver {
		return &libvirtxml.DomainDiskDriver{Name: "qemu", Type: format, Cache: "none", ErrorPolicy: "stop", Discard: "unmap"}
	}
	const vmDir = "/var/lib/nodevirt/disks/lab/vm/"

	for _, tc := range []struct {
		name      string
		spec      kubevirtv1.VirtualMachineInstanceSpec
		want      *libvirtxml.DomainDeviceList
		artifacts []Artifact
		diags     []diagLine
	}{
		{
			name: "device names per prefix, scsi controller",
			spec: kubevirtv1.VirtualMachineInstanceSpec{
				Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{
					disk("a", onBus("virtio")), disk("b", onBus("sata")), disk("c", onBus("scsi")),
					disk("d", onBus("virtio")), disk("e", onBus("usb")),
				}}},
				Volumes: []kubevirtv1.Volume{
					{Name: "a", VolumeSource: kubevirtv1.VolumeSource{DataVolume: &kubevirtv1.DataVolumeSource{Name: "dv-a"}}},
					{Name: "b", VolumeSource: kubevirtv1.VolumeSource{EmptyDisk: &kubevirtv1.EmptyDiskSource{Capacity: *qty("1536Ki")}}},
					{Name: "c", VolumeSource: kubevirtv1.VolumeSource{HostDisk: &kubevirtv1.HostDisk{Path: "/srv/c.img", Type: kubevirtv1.HostDiskExists}}},
					{Name: "d", VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "reg/img:1"}}},
					{Name: "e", VolumeSource: kubevirtv1.VolumeSource{HostDisk: &kubevirtv1.HostDisk{Path: "/srv/e.img", Type: kubevirtv1.HostDiskExistsOrCreate, Capacity: *qty("1Gi")}}},
				},
			},
			want: &libvirtxml.DomainDeviceList{
				Disks: []libvirtxml.DomainDisk{
					{Device: "disk", Model: "virtio-non-transitional", Driver: driver("raw"), Source: file("/var/lib/nodevirt/volumes/lab/dv-a/disk.img"),
						Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"}, Alias: userAlias("a")},
					{Device: "disk", Driver: driver("qcow2"), Source: file(vmDir + "b.qcow2"),
						Target: &libvirtxml.DomainDiskTarget{Dev: "sda", Bus: "sata"}, Alias: userAlias("b")},
					{Device: "disk", Driver: driver("raw"), Source: file("/srv/c.img"),
						Target: &libvirtxml.DomainDiskTarget{Dev: "sdb", Bus: "scsi"}, Alias: userAlias("c")},
					{Device: "disk", Model: "virtio-non-transitional", Driver: driver("qcow2"), Source: file(vmDir + "d.qcow2"),
						Target: &libvirtxml.DomainDiskTarget{Dev: "vdb", Bus: "virtio"}, Alias: userAlias("d")},
					{Device: "disk", Driver: driver("raw"), Source: file("/srv/e.img"),
						Target: &libvirtxml.DomainDiskTarget{Dev: "sdc", Bus: "usb"}, Alias: userAlias("e")},
				},
				Controllers: []libvirtxml.DomainController{{Type: "scsi", Model: "virtio-non-transitional"}},
			},
			artifacts: []Artifact{
				{Kind: Claim, Volume: "a", Path: "/var/lib/nodevirt/volumes/lab/dv-a/disk.img", Claim: "dv-a"},
				// 1536Ki rounds down to 1Mi.
				{Kind: EmptyDisk, Volume: "b", Path: vmDir + "b.qcow2", Size: 1 << 20},
				{Kind: HostDisk, Volume: "c", Path: "/srv/c.img"},
				{Kind: ContainerDisk, Volume: "d", Path: vmDir + "d.qcow2", Image: "reg/img:1"},
				{Kind: HostDisk, Volume: "e", Path: "/srv/e.img", Create: true, Size: 1 << 30},
			},
		},
		{
			name: "cdrom, boot order, serial, cache, io, error policy, readonly, shareable",
			spec: kubevirtv1.VirtualMachineInstanceSpec{
				Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{
					{Name: "iso", DiskDevice: kubevirtv1.DiskDevice{CDRom: &kubevirtv1.CDRomTarget{Bus: "sata", Tray: kubevirtv1.TrayStateOpen}}, BootOrder: ptr(uint(1))},
					{Name: "root", DiskDevice: onBus("virtio"), BootOrder: ptr(uint(2)), Serial: "S1", Cache: kubevirtv1.CacheWriteBack,
						ErrorPolicy: ptr(kubevirtv1.DiskErrorPolicyEnospace)},
					{Name: "fast", DiskDevice: onBus("virtio"), IO: kubevirtv1.IONative},
					{Name: "ro", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: "virtio", ReadOnly: true}}},
					{Name: "shared", DiskDevice: onBus("virtio"), Shareable: ptr(true)},
				}}},
				Volumes: []kubevirtv1.Volume{
					{Name: "iso", VolumeSource: kubevirtv1.VolumeSource{PersistentVolumeClaim: &kubevirtv1.PersistentVolumeClaimVolumeSource{PersistentVolumeClaimVolumeSource: k8sv1.PersistentVolumeClaimVolumeSource{ClaimName: "iso"}}}},
					{Name: "root", VolumeSource: kubevirtv1.VolumeSource{HostDisk: &kubevirtv1.HostDisk{Path: "/srv/root.img"}}},
					{Name: "fast", VolumeSource: kubevirtv1.VolumeSource{HostDisk: &kubevirtv1.HostDisk{Path: "/srv/fast.img"}}},
					{Name: "ro", VolumeSource: kubevirtv1.VolumeSource{HostDisk: &kubevirtv1.HostDisk{Path: "/srv/ro.img"}}},
					{Name: "shared", VolumeSource: kubevirtv1.VolumeSource{HostDisk: &kubevirtv1.HostDisk{Path: "/srv/shared.img"}}},
				},
			},
			want: &libvirtxml.DomainDeviceList{Disks: []libvirtxml.DomainDisk{
				{Device: "cdrom", Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw", Cache: "none", ErrorPolicy: "stop"},
					Source: file("/var/lib/nodevirt/volumes/lab/iso/disk.img"), Target: &libvirtxml.DomainDiskTarget{Dev: "sda", Bus: "sata", Tray: "open"},
					ReadOnly: &libvirtxml.DomainDiskReadOnly{}, Boot: &libvirtxml.DomainDeviceBoot{Order: 1}, Alias: userAlias("iso")},
				{Device: "disk", Model: "virtio-non-transitional", Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw", Cache: "writeback", ErrorPolicy: "enospace", Discard: "unmap"},
					Source: file("/srv/root.img"), Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"},
					Serial: "S1", Boot: &libvirtxml.DomainDeviceBoot{Order: 2}, Alias: userAlias("root")},
				{Device: "disk", Model: "virtio-non-transitional", Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw", Cache: "none", IO: "native", ErrorPolicy: "stop", Discard: "unmap"},
					Source: file("/srv/fast.img"), Target: &libvirtxml.DomainDiskTarget{Dev: "vdb", Bus: "virtio"}, Alias: userAlias("fast")},
				{Device: "disk", Model: "virtio-non-transitional", Driver: driver("raw"), Source: file("/srv/ro.img"), Target: &libvirtxml.DomainDiskTarget{Dev: "vdc", Bus: "virtio"},
					ReadOnly: &libvirtxml.DomainDiskReadOnly{}, Alias: userAlias("ro")},
				{Device: "disk", Model: "virtio-non-transitional", Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw", Cache: "none", ErrorPolicy: "stop", Discard: "unmap"},
					Source: file("/srv/shared.img"), Target: &libvirtxml.DomainDiskTarget{Dev: "vdd", Bus: "virtio"},
					Shareable: &libvirtxml.DomainDiskShareable{}, Alias: userAlias("shared")},
			}},
			artifacts: []Artifact{
				{Kind: Claim, Volume: "iso", Path: "/var/lib/nodevirt/volumes/lab/iso/disk.img", Claim: "iso"},
				{Kind: HostDisk, Volume: "root", Path: "/srv/root.img"},
				{Kind: HostDisk, Volume: "fast", Path: "/srv/fast.img"},
				{Kind: HostDisk, Volume: "ro", Path: "/srv/ro.img"},
				{Kind: HostDisk, Volume: "shared", Path: "/srv/shared.img"},
			},
		},
		{
			name: "cloud-init: base64, hostname, network config",
			spec: kubevirtv1.VirtualMachineInstanceSpec{
				Hostname: "web-1",
				Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{
					{Name: "seed", DiskDevice: kubevirtv1.DiskDevice{CDRom: &kubevirtv1.CDRomTarget{Bus: "sata", ReadOnly: ptr(false)}}},
				}}},
				Volumes: []kubevirtv1.Volume{{Name: "seed", VolumeSource: kubevirtv1.VolumeSource{CloudInitNoCloud: &kubevirtv1.CloudInitNoCloudSource{
					UserDataBase64: base64.StdEncoding.EncodeToString([]byte("#cloud-config\n")),
					NetworkData:    "version: 2\n",
				}}}},
			},
			want: &libvirtxml.DomainDeviceList{Disks: []libvirtxml.DomainDisk{
				{Device: "cdrom", Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw", Cache: "none", ErrorPolicy: "stop"},
					Source: file(vmDir + "seed.iso"), Target: &libvirtxml.DomainDiskTarget{Dev: "sda", Bus: "sata"}, Alias: userAlias("seed")},
			}},
			artifacts: []Artifact{{Kind: NoCloudISO, Volume: "seed", Path: vmDir + "seed.iso", Label: "cidata", Files: map[string][]byte{
				"user-data":      []byte("#cloud-config\n"),
				"meta-data":      []byte("instance-id: 0d3a1b7e-6f2c-4c1d-9a55-3e2f1f0c7a10\nlocal-hostname: web-1\n"),
				"network-config": []byte("version: 2\n"),
			}}},
		},
		{
			// The ConfigDrive layout cloud-init's OpenStack reader expects,
			// on a SATA cdrom (readonly by default).
			name: "cloud-init ConfigDrive on a sata cdrom",
			spec: kubevirtv1.VirtualMachineInstanceSpec{
				Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{
					{Name: "config", DiskDevice: kubevirtv1.DiskDevice{CDRom: &kubevirtv1.CDRomTarget{Bus: "sata"}}},
				}}},
				Volumes: []kubevirtv1.Volume{{Name: "config", VolumeSource: kubevirtv1.VolumeSource{CloudInitConfigDrive: &kubevirtv1.CloudInitConfigDriveSource{
					UserData:          "#cloud-config\n",
					NetworkDataBase64: base64.StdEncoding.EncodeToString([]byte(`{"links": []}`)),
				}}}},
			},
			want: &libvirtxml.DomainDeviceList{Disks: []libvirtxml.DomainDisk{
				{Device: "cdrom", Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw", Cache: "none", ErrorPolicy: "stop"},
					Source: file(vmDir + "config.iso"), Target: &libvirtxml.DomainDiskTarget{Dev: "sda", Bus: "sata"},
					ReadOnly: &libvirtxml.DomainDiskReadOnly{}, Alias: userAlias("config")},
			}},
			artifacts: []Artifact{{Kind: ConfigDriveISO, Volume: "config", Path: vmDir + "config.iso", Label: "config-2", Files: map[string][]byte{
				"openstack/latest/user_data":         []byte("#cloud-config\n"),
				"openstack/latest/meta_data.json":    []byte(`{"uuid":"0d3a1b7e-6f2c-4c1d-9a55-3e2f1f0c7a10","name":"vm","hostname":"vm","instance_id":"vm.lab"}` + "\n"),
				"openstack/latest/network_data.json": []byte(`{"links": []}`),
			}}},
		},
		{
			name: "ConfigDrive without user data still has user_data",
			spec: kubevirtv1.VirtualMachineInstanceSpec{
				Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{
					{Name: "config", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: "virtio"}}},
				}}},
				Volumes: []kubevirtv1.Volume{{Name: "config", VolumeSource: kubevirtv1.VolumeSource{CloudInitConfigDrive: &kubevirtv1.CloudInitConfigDriveSource{
					NetworkData: `{"links": []}`,
				}}}},
			},
			want: &libvirtxml.DomainDeviceList{Disks: []libvirtxml.DomainDisk{
				{Device: "disk", Model: "virtio-non-transitional", Driver: driver("raw"), Source: file(vmDir + "config.iso"),
					Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"}, Alias: userAlias("config")},
			}},
			artifacts: []Artifact{{Kind: ConfigDriveISO, Volume: "config", Path: vmDir + "config.iso", Label: "config-2", Files: map[string][]byte{
				"openstack/latest/user_data":         {},
				"openstack/latest/meta_data.json":    []byte(`{"uuid":"0d3a1b7e-6f2c-4c1d-9a55-3e2f1f0c7a10","name":"vm","hostname":"vm","instance_id":"vm.lab"}` + "\n"),
				"openstack/latest/network_data.json": []byte(`{"links": []}`),
			}}},
		},
		{
			name: "problems skip the disk and keep the rest",
			spec: kubevirtv1.VirtualMachineInstanceSpec{
				Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{
					disk("orphan", onBus("virtio")),
					disk("seed", onBus("virtio")),
					disk("tiny", onBus("virtio")),
					disk("ide", onBus("ide")),
					{Name: "slow", DiskDevice: onBus("virtio"), IO: kubevirtv1.IONative, Cache: kubevirtv1.CacheWriteThrough},
					{Name: "lun", DiskDevice: kubevirtv1.DiskDevice{LUN: &kubevirtv1.LunTarget{Bus: "scsi"}}},
					disk("cm", onBus("virtio")),
					disk("ok", onBus("virtio")),
				}}},
				Volumes: []kubevirtv1.Volume{
					{Name: "seed", VolumeSource: kubevirtv1.VolumeSource{CloudInitNoCloud: &kubevirtv1.CloudInitNoCloudSource{UserDataBase64: "not base64!"}}},
					{Name: "tiny", VolumeSource: kubevirtv1.VolumeSource{EmptyDisk: &kubevirtv1.EmptyDiskSource{Capacity: *qty("1000Ki")}}},
					{Name: "ide", VolumeSource: kubevirtv1.VolumeSource{HostDisk: &kubevirtv1.HostDisk{Path: "/srv/ide.img"}}},
					{Name: "slow", VolumeSource: kubevirtv1.VolumeSource{HostDisk: &kubevirtv1.HostDisk{Path: "/srv/slow.img"}}},
					{Name: "lun", VolumeSource: kubevirtv1.VolumeSource{HostDisk: &kubevirtv1.HostDisk{Path: "/srv/lun.img"}}},
					{Name: "cm", VolumeSource: kubevirtv1.VolumeSource{ConfigMap: &kubevirtv1.ConfigMapVolumeSource{LocalObjectReference: k8sv1.LocalObjectReference{Name: "absent"}}}},
					{Name: "ok", VolumeSource: kubevirtv1.VolumeSource{HostDisk: &kubevirtv1.HostDisk{Path: "/srv/ok.img"}}},
				},
			},
			want: &libvirtxml.DomainDeviceList{Disks: []libvirtxml.DomainDisk{
				{Device: "disk", Model: "virtio-non-transitional", Driver: driver("raw"), Source: file("/srv/ok.img"),
					Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"}, Alias: userAlias("ok")},
			}},
			artifacts: []Artifact{{Kind: HostDisk, Volume: "ok", Path: "/srv/ok.img"}},
			// The configMap names a ConfigMap the input lacks.
			diags: []diagLine{
				{"error", "spec.template.spec.domain.devices.disks[0].name", `invalid: no volume named "orphan"`},
				{"error", "spec.template.spec.volumes[0].cloudInitNoCloud.userDataBase64", "invalid: not valid base64: illegal base64 data at input byte 3"},
				{"error", "spec.template.spec.volumes[1].emptyDisk.capacity", "invalid: capacity 1000Ki is less than 1Mi"},
				{"error", "spec.template.spec.domain.devices.disks[3]", `invalid: bus "ide" is not one of virtio, sata, scsi, usb`},
				{"error", "spec.template.spec.domain.devices.disks[4].io", "invalid: io native needs cache none, not writethrough"},
				{"error", "spec.template.spec.domain.devices.disks[5].lun", "invalid: a lun disk needs a persistentVolumeClaim or dataVolume volume"},
				{"error", "spec.template.spec.volumes[5].configMap", "ConfigMap lab/absent: not found; the VM waits for it"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dom, out := run(configureDisks, testInput(tc.spec))
			if diff := cmp.Diff(&libvirtxml.Domain{Devices: tc.want}, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.artifacts, out.artifacts); diff != "" {
				t.Errorf("artifacts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.diags, diagLines(out)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDiskDevice_lun pins the lun mapping that waits for block volumes: the
// support table refuses luns while every volume is a file.
func TestDiskDevice_lun(t *testing.T) {
	d := kubevirtv1.Disk{Name: "l", DiskDevice: kubevirtv1.DiskDevice{LUN: &kubevirtv1.LunTarget{Bus: "scsi", ReadOnly: true}}}
	got, bus, ok := diskDevice(d, "domain.devices.disks[0]", &output{})
	want := libvirtxml.DomainDisk{
		Device:   "lun",
		Driver:   &libvirtxml.DomainDiskDriver{Name: "qemu", ErrorPolicy: "stop", Discard: "unmap"},
		Target:   &libvirtxml.DomainDiskTarget{Bus: "scsi"},
		ReadOnly: &libvirtxml.DomainDiskReadOnly{},
	}
	if diff := cmp.Diff(want, got); diff != "" || bus != "scsi" || !ok {
		t.Errorf("diskDevice(lun) = %v, %v (-want +got):\n%s", bus, ok, diff)
	}
}

func TestDeviceSuffix(t *testing.T) {
	for n, want := range map[int]string{0: "a", 1: "b", 25: "z", 26: "aa", 27: "ab", 51: "az", 52: "ba", 701: "zz", 702: "aaa"} {
		if got := deviceSuffix(n); got != want {
			t.Errorf("deviceSuffix(%d) = %q, want %q", n, got, want)
		}
	}
}

// Claim disks bound before conversion are where storage keeps them: a
// Filesystem claim's disk.img as a file, a Block claim's device as
// <disk type='block'>; the artifact follows. Unbound claims keep the default.
func TestConfigureDisks_boundClaims(t *testing.T) {
	onBus := func(bus kubevirtv1.DiskBus) kubevirtv1.DiskDevice {
		return kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: bus}}
	}
	file := func(p string) *libvirtxml.DomainDiskSource {
		return &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: p}}
	}
	spec := kubevirtv1.VirtualMachineInstanceSpec{
		Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{
			{Name: "root", DiskDevice: onBus("virtio")}, {Name: "data", DiskDevice: onBus("virtio")}, {Name: "other", DiskDevice: onBus("virtio")},
		}}},
		Volumes: []kubevirtv1.Volume{
			{Name: "root", VolumeSource: kubevirtv1.VolumeSource{DataVolume: &kubevirtv1.DataVolumeSource{Name: "db-root"}}},
			{Name: "data", VolumeSource: kubevirtv1.VolumeSource{PersistentVolumeClaim: &kubevirtv1.PersistentVolumeClaimVolumeSource{PersistentVolumeClaimVolumeSource: k8sv1.PersistentVolumeClaimVolumeSource{ClaimName: "db-data"}}}},
			{Name: "other", VolumeSource: kubevirtv1.VolumeSource{PersistentVolumeClaim: &kubevirtv1.PersistentVolumeClaimVolumeSource{PersistentVolumeClaimVolumeSource: k8sv1.PersistentVolumeClaimVolumeSource{ClaimName: "unbound"}}}},
		},
	}
	in := testInput(spec)
	in.Resources.Claims = map[string]ClaimDisk{"db-root": {Path: "/var/hpvolumes/pvc-1/disk.img"}, "db-data": {Path: "/dev/loop7", Block: true}}
	dom, out := run(configureDisks, in)
	if len(out.diags) > 0 {
		t.Fatalf("diagnostics: %v", diagLines(out))
	}
	var got []*libvirtxml.DomainDiskSource
	for _, d := range dom.Devices.Disks {
		got = append(got, d.Source)
	}
	want := []*libvirtxml.DomainDiskSource{
		file("/var/hpvolumes/pvc-1/disk.img"),
		{Block: &libvirtxml.DomainDiskSourceBlock{Dev: "/dev/loop7"}},
		file("/var/lib/nodevirt/volumes/lab/unbound/disk.img"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
	if out.artifacts[1].Path != "/dev/loop7" || out.artifacts[0].Path != "/var/hpvolumes/pvc-1/disk.img" {
		t.Errorf("artifacts: %+v", out.artifacts)
	}
}

// KubeVirt's cache and io choice: none where O_DIRECT works, writethrough
// where it does not (tmpfs), native io on block devices with cache none.
func TestConfigureDisks_cacheByDirectIO(t *testing.T) {
	onVirtio := kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: "virtio"}}
	claim := func(name string) kubevirtv1.VolumeSource {
		return kubevirtv1.VolumeSource{PersistentVolumeClaim: &kubevirtv1.PersistentVolumeClaimVolumeSource{
			PersistentVolumeClaimVolumeSource: k8sv1.PersistentVolumeClaimVolumeSource{ClaimName: name}}}
	}
	var spec kubevirtv1.VirtualMachineInstanceSpec
	spec.Domain.Devices.Disks = []kubevirtv1.Disk{
		{Name: "file", DiskDevice: onVirtio},
		{Name: "block", DiskDevice: onVirtio},
		{Name: "tmp", DiskDevice: onVirtio},
		{Name: "forced", DiskDevice: onVirtio, Cache: kubevirtv1.CacheNone},
		{Name: "empty", DiskDevice: kubevirtv1.DiskDevice{CDRom: &kubevirtv1.CDRomTarget{Bus: "sata"}}},
	}
	spec.Volumes = []kubevirtv1.Volume{
		{Name: "file", VolumeSource: claim("file")},
		{Name: "block", VolumeSource: claim("block")},
		{Name: "tmp", VolumeSource: kubevirtv1.VolumeSource{EmptyDisk: &kubevirtv1.EmptyDiskSource{Capacity: *qty("1Gi")}}},
		{Name: "forced", VolumeSource: kubevirtv1.VolumeSource{EmptyDisk: &kubevirtv1.EmptyDiskSource{Capacity: *qty("1Gi")}}},
	}
	in := testInput(spec)
	in.Resources.Claims = map[string]ClaimDisk{"block": {Path: "/dev/vg0/block", Block: true}}
	ctx := testContext
	// The per-VM disks are on tmpfs; the claims are not.
	ctx.NoDirectIO = []string{"/var/lib/nodevirt/disks"}
	dom := &libvirtxml.Domain{}
	out := &output{object: in.Object, prefix: in.PathPrefix}
	configureDisks(in, ctx, dom, out)

	type got struct{ Alias, Cache, IO string }
	var disks []got
	for _, d := range dom.Devices.Disks {
		disks = append(disks, got{d.Alias.Name, d.Driver.Cache, d.Driver.IO})
	}
	want := []got{
		{"ua-file", "none", ""},
		{"ua-block", "none", "native"},
		{"ua-tmp", "writethrough", ""},
		// An empty drive has nothing to open: no cache mode.
		{"ua-empty", "", ""},
	}
	if diff := cmp.Diff(want, disks); diff != "" {
		t.Errorf("disks (-want +got):\n%s", diff)
	}
	if dom.Devices.Disks[3].Source != nil {
		t.Errorf("the empty CD-ROM has a source: %+v", dom.Devices.Disks[3].Source)
	}
	wantDiags := []diagLine{{"error", "spec.template.spec.domain.devices.disks[3].cache",
		"invalid: cache none needs O_DIRECT, which the filesystem holding /var/lib/nodevirt/disks/lab/vm/forced.qcow2 does not support"}}
	if diff := cmp.Diff(wantDiags, diagLines(out)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
}

func TestContext_DirectIO(t *testing.T) {
	ctx := Context{NoDirectIO: []string{"/run/nodevirt", "/tmp"}}
	for path, want := range map[string]bool{
		"/run/nodevirt/disks/a.qcow2": false,
		"/run/nodevirt":               false,
		"/tmp/x":                      false,
		"/run/nodevirt-other/a":       true,
		"/var/lib/nodevirt/a":         true,
		"/tmpfile":                    true,
	} {
		if got := ctx.DirectIO(path); got != want {
			t.Errorf("DirectIO(%q) = %v, want %v", path, got, want)
		}
	}
}
