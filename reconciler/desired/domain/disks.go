package domain

import (
	"fmt"

	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/internal/pathelem"
	"github.com/nodevirt/nodevirt/manifests/diag"
)

const mib = 1 << 20

// configureDisks owns the <disk> elements, the SCSI <controller> they need,
// and the artifacts behind each disk's volume.
func configureDisks(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	spec := in.Spec
	volumes := make(map[string]int, len(spec.Volumes))
	for i, v := range spec.Volumes {
		volumes[v.Name] = i
	}
	// Target names are allocated per prefix in disk order, as KubeVirt's
	// makeDeviceName does: virtio disks are vda, vdb…; sata, scsi and usb
	// share the sd prefix and one counter.
	next := map[string]int{}
	scsi := false
	threads := diskIOThreads(spec)

	// Live-hotpluggable disks are named after every other disk, so adding
	// or removing one never renames the others.
	for pass := range 2 {
		for i, d := range spec.Domain.Devices.Disks {
			if liveHotpluggable(in, d) != (pass == 1) {
				continue
			}
			configureDisk(in, ctx, dom, out, i, d, volumes, next, &scsi, threads)
		}
	}
	if scsi {
		// The disks' own controller; configureHotplug adds one otherwise.
		devices(dom).Controllers = append(devices(dom).Controllers, libvirtxml.DomainController{
			Type: "scsi", Model: virtioModel(spec), Driver: scsiControllerDriver(spec),
		})
	}
}

// configureDisk maps disk i of the spec.
func configureDisk(in Input, ctx Context, dom *libvirtxml.Domain, out *output, i int, d kubevirtv1.Disk, volumes map[string]int, next map[string]int, scsi *bool, threads map[int]uint) {
	rel := fmt.Sprintf("domain.devices.disks[%d]", i)
	vi, found := volumes[d.Name]
	if !found && d.CDRom == nil {
		out.invalid(rel+".name", "no volume named %q", d.Name)
		return
	}
	var src source
	ok := true
	if found {
		if src, ok = volumeSource(in, ctx, vi, out); !ok {
			return
		}
	}
	disk, bus, ok := diskDevice(d, rel, out)
	if !ok {
		return
	}
	if found {
		if d.LUN != nil {
			if !lunSource(in, d, vi, src, rel, out) {
				return
			}
			// A claim storage has not planned yet is taken for the
			// Block claim a lun needs; the VM waits for it to be bound.
			src.block = true
		}
		if src.block {
			disk.Source = &libvirtxml.DomainDiskSource{Block: &libvirtxml.DomainDiskSourceBlock{Dev: src.path}}
			if d.LUN != nil && d.LUN.Reservation {
				// KubeVirt points QEMU at its pr-helper daemon's socket;
				// on a plain host libvirt starts qemu-pr-helper for the VM.
				disk.Source.Reservations = &libvirtxml.DomainDiskReservations{Managed: "yes"}
			}
		} else {
			disk.Source = &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: src.path}}
		}
		disk.Driver.Type = src.format
	}
	// A CD-ROM without a volume is an empty drive, as in KubeVirt: the
	// guest sees the drive with no medium, and ejects or inserts later.
	if src.readOnly {
		disk.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
	}
	if src.shared || isTrue(d.Shareable) {
		disk.Shareable = &libvirtxml.DomainDiskShareable{}
	}
	if bus == kubevirtv1.DiskBusVirtio {
		disk.Model = virtioModel(in.Spec)
	}
	if t, ok := threads[i]; ok {
		disk.Driver.IOThread = &t
	}
	if disk.Source != nil && !driverCache(&disk, d, src, ctx, rel, out) {
		return
	}
	// Names go only to disks that are emitted.
	prefix := "sd"
	if bus == kubevirtv1.DiskBusVirtio {
		prefix = "vd"
	}
	disk.Target.Dev = prefix + deviceSuffix(next[prefix])
	next[prefix]++
	// A live disk uses the hotplug controller (configureHotplug), which
	// the hash leaves out: adding one changes nothing else.
	*scsi = *scsi || (bus == kubevirtv1.DiskBusSCSI && !liveHotpluggable(in, d))
	if d.BootOrder != nil {
		disk.Boot = &libvirtxml.DomainDeviceBoot{Order: *d.BootOrder}
	}
	disk.Serial = d.Serial
	disk.Alias = userAlias(d.Name)

	devices(dom).Disks = append(devices(dom).Disks, disk)
	if src.artifact != nil {
		out.artifacts = append(out.artifacts, *src.artifact)
	}
	if liveHotpluggable(in, d) {
		x, err := disk.Marshal()
		if err != nil {
			out.invalid(rel, "rendering the disk: %v", err)
			return
		}
		h := HotplugDisk{Volume: d.Name, Alias: disk.Alias.Name, XML: x}
		if src.artifact != nil {
			h.Path = src.artifact.Path
		}
		out.hotplug = append(out.hotplug, h)
	}
}

// diskDevice maps disk/cdrom/lun and the bus; it leaves source, target dev
// and driver format to the caller.
func diskDevice(d kubevirtv1.Disk, rel string, out *output) (libvirtxml.DomainDisk, kubevirtv1.DiskBus, bool) {
	disk := libvirtxml.DomainDisk{
		// error_policy stop pauses the guest on a host I/O error (a full
		// host disk) instead of handing the error to the guest, whose
		// filesystem would go read-only or lose writes.
		Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", ErrorPolicy: string(kubevirtv1.DiskErrorPolicyStop)},
		Target: &libvirtxml.DomainDiskTarget{},
	}
	if d.ErrorPolicy != nil {
		disk.Driver.ErrorPolicy = string(*d.ErrorPolicy)
	}
	var bus kubevirtv1.DiskBus
	switch {
	case d.CDRom != nil:
		disk.Device = "cdrom"
		bus = d.CDRom.Bus
		if enabled(d.CDRom.ReadOnly) {
			disk.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
		}
		if d.CDRom.Tray == kubevirtv1.TrayStateOpen {
			disk.Target.Tray = "open"
		}
	case d.LUN != nil:
		// SCSI commands from the guest reach the device; sgio stays
		// unset as KubeVirt leaves it, so libvirt's "filtered" keeps
		// the kernel's list of commands an unprivileged QEMU may send.
		disk.Device = "lun"
		bus = d.LUN.Bus
		disk.Driver.Discard = "unmap"
		if d.LUN.ReadOnly {
			disk.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
		}
	default:
		disk.Device = "disk"
		if d.Disk != nil {
			bus = d.Disk.Bus
			if d.Disk.ReadOnly {
				disk.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
			}
		}
		// Guest TRIM frees space in sparse and qcow2 files.
		disk.Driver.Discard = "unmap"
	}
	switch bus {
	case kubevirtv1.DiskBusVirtio, kubevirtv1.DiskBusSATA, kubevirtv1.DiskBusSCSI, kubevirtv1.DiskBusUSB:
	case "":
		// KubeVirt's amd64 default; manifests.Default normally sets it.
		bus = kubevirtv1.DiskBusSATA
	default:
		out.invalid(rel, "bus %q is not one of virtio, sata, scsi, usb", bus)
		return disk, bus, false
	}
	disk.Target.Bus = string(bus)
	return disk, bus, true
}

// lunSource checks that a lun disk can pass SCSI commands to its volume
// and sets what the disk needs for it; false means it was refused.
func lunSource(in Input, d kubevirtv1.Disk, vi int, src source, rel string, out *output) bool {
	v := in.Spec.Volumes[vi]
	claim := ""
	switch {
	case v.PersistentVolumeClaim != nil:
		claim = v.PersistentVolumeClaim.ClaimName
	case v.DataVolume != nil:
		claim = v.DataVolume.Name
	default:
		// KubeVirt's admission says the same.
		out.invalid(rel+".lun", "a lun disk needs a persistentVolumeClaim or dataVolume volume")
		return false
	}
	ok := true
	if !src.block && src.modeKnown {
		out.add(diag.Error, ErrUnsupported, rel+".lun",
			"unsupported: claim %q is a Filesystem volume (a disk.img file); a lun passes SCSI commands to a block device, so the claim needs volumeMode: Block (or use disk instead of lun)", claim)
		ok = false
	}
	if d.LUN.Bus != kubevirtv1.DiskBusSCSI {
		// Written out: defaulting gives a lun scsi (KubeVirt's sata
		// would not start); libvirt refuses any other bus at start, so
		// saying so here is the same refusal, earlier.
		out.add(diag.Error, ErrUnsupported, rel+".lun.bus",
			"unsupported: bus %q: QEMU passes SCSI commands through only on the scsi bus; set lun.bus: scsi", d.LUN.Bus)
		ok = false
	}
	return ok
}

// driverCache sets cache and io as KubeVirt does when the VM starts. An
// unset cache is none (O_DIRECT, bypassing the host page cache) where the
// disk's filesystem supports O_DIRECT, writethrough where it does not
// (tmpfs); none on such a filesystem is refused, as QEMU could not open the
// disk. An unset io is native with cache none on a block device. KubeVirt
// also picks native for preallocated files, which a converter that does not
// read the disk cannot know; QEMU's default (threads) stays for files.
// Explicit values pass through.
func driverCache(disk *libvirtxml.DomainDisk, d kubevirtv1.Disk, src source, ctx Context, rel string, out *output) bool {
	disk.Driver.Cache = string(d.Cache)
	disk.Driver.IO = string(d.IO)
	direct := ctx.DirectIO(src.path)
	switch {
	case disk.Shareable != nil && disk.Driver.Cache == "":
		// A disk other VMs write too (maybe from other hosts, over shared
		// storage) must bypass the host page cache or they read stale
		// data; KubeVirt forces none as well.
		disk.Driver.Cache = string(kubevirtv1.CacheNone)
	case disk.Shareable != nil && disk.Driver.Cache != string(kubevirtv1.CacheNone):
		// KubeVirt's converter refuses it as well, at VM start.
		out.invalid(rel+".cache", "a shareable disk needs cache none, not %s: the host page cache would hide the other writers' data", d.Cache)
		return false
	case disk.Driver.Cache == "" && direct:
		disk.Driver.Cache = string(kubevirtv1.CacheNone)
	case disk.Driver.Cache == "":
		disk.Driver.Cache = string(kubevirtv1.CacheWriteThrough)
	}
	if disk.Driver.Cache == string(kubevirtv1.CacheNone) && !direct {
		out.invalid(rel+".cache", "cache none needs O_DIRECT, which the filesystem holding %s does not support", src.path)
		return false
	}
	switch {
	case d.IO == kubevirtv1.IONative && disk.Driver.Cache != string(kubevirtv1.CacheNone):
		// QEMU refuses aio=native without O_DIRECT, i.e. cache=none.
		out.invalid(rel+".io", "io native needs cache none, not %s", disk.Driver.Cache)
		return false
	case d.IO == "" && src.block && disk.Driver.Cache == string(kubevirtv1.CacheNone):
		disk.Driver.IO = string(kubevirtv1.IONative)
	}
	return true
}

// deviceSuffix is the letter part of a target name: 0→a, 25→z, 26→aa.
func deviceSuffix(n int) string {
	s := ""
	for n++; n > 0; n = (n - 1) / 26 {
		s = string(rune('a'+(n-1)%26)) + s
	}
	return s
}

// source is what a volume contributes to its disk.
type source struct {
	path     string
	block    bool   // path is a block device: <disk type='block'>
	format   string // driver type: raw or qcow2
	readOnly bool
	shared   bool
	artifact *Artifact
	// modeKnown: storage said whether a claim is Block; a claim it has
	// not planned yet may be either.
	modeKnown bool
}

// volumeSource maps spec.volumes[vi] to a host file. Sources the support
// table refuses return false without a diagnostic of their own.
func volumeSource(in Input, ctx Context, vi int, out *output) (source, bool) {
	v := in.Spec.Volumes[vi]
	rel := fmt.Sprintf("volumes[%d]", vi)
	// Names become host path elements only through pathelem: a name that
	// validation should have refused still cannot leave its directory.
	perVM := func(ext string) (string, bool) {
		p, err := pathelem.Join(ctx.DiskDir, in.Namespace, in.Name, v.Name+ext)
		if err != nil {
			out.invalid(rel+".name", "the VM's namespace, name or this volume's name cannot be a directory on the host: %v", err)
			return "", false
		}
		return p, true
	}
	// A claim's disk is where storage keeps it (bound before conversion),
	// else the default place under VolumeDir, which the VM waits for.
	claim := func(at, name string) (source, bool) {
		cd, known := in.Resources.Claims[name]
		if known && cd.Path != "" {
			return source{path: cd.Path, block: cd.Block, modeKnown: true}, true
		}
		p, err := pathelem.Join(ctx.VolumeDir, in.Namespace, name, "disk.img")
		if err != nil {
			out.invalid(rel+"."+at, "the claim's namespace or name cannot be a directory on the host: %v", err)
			return source{}, false
		}
		// Not bound yet: a Block claim's device is not known, and the
		// VM waits for the path to exist either way.
		return source{path: p, block: cd.VolumeMode == "Block", modeKnown: cd.VolumeMode != ""}, true
	}
	switch {
	case v.ContainerDisk != nil:
		// A fresh qcow2 overlay whose backing file is the image's disk. The
		// runtime records the backing format in the overlay, so libvirt
		// finds the chain at start and no <backingStore> is written here.
		image, err := localImage(ctx, v.ContainerDisk.Image)
		if err != nil {
			out.add(diag.Error, ErrHostFileNotAllowed, rel+".containerDisk.image", "%v", err)
			return source{}, false
		}
		p, ok := perVM(".qcow2")
		if !ok {
			return source{}, false
		}
		return source{path: p, format: "qcow2", artifact: &Artifact{
			Kind: ContainerDisk, Volume: v.Name, Path: p,
			Image: image, ImagePath: v.ContainerDisk.Path,
			PullPolicy: string(v.ContainerDisk.ImagePullPolicy),
		}}, true

	case v.EmptyDisk != nil:
		// Rounded down to MiB as KubeVirt's emptydisk creator does.
		size := v.EmptyDisk.Capacity.Value() / mib * mib
		if size <= 0 {
			out.invalid(rel+".emptyDisk.capacity", "capacity %s is less than 1Mi", v.EmptyDisk.Capacity.String())
			return source{}, false
		}
		p, ok := perVM(".qcow2")
		if !ok {
			return source{}, false
		}
		return source{path: p, format: "qcow2", artifact: &Artifact{Kind: EmptyDisk, Volume: v.Name, Path: p, Size: size}}, true

	case v.CloudInitNoCloud != nil:
		files, secret, ok := noCloudFiles(in, v.CloudInitNoCloud, rel+".cloudInitNoCloud", out)
		if !ok {
			return source{}, false
		}
		p, ok := perVM(".iso")
		if !ok {
			return source{}, false
		}
		return source{path: p, format: "raw", artifact: seedArtifact(Artifact{
			Kind: NoCloudISO, Volume: v.Name, Path: p, Label: "cidata",
		}, files, secret)}, true

	case v.CloudInitConfigDrive != nil:
		files, secret, ok := configDriveFiles(in, v.CloudInitConfigDrive, rel+".cloudInitConfigDrive", out)
		if !ok {
			return source{}, false
		}
		p, ok := perVM(".iso")
		if !ok {
			return source{}, false
		}
		return source{path: p, format: "raw", artifact: seedArtifact(Artifact{
			Kind: ConfigDriveISO, Volume: v.Name, Path: p, Label: "config-2",
		}, files, secret)}, true

	case v.ConfigMap != nil, v.Secret != nil, v.DownwardAPI != nil, v.Sysprep != nil:
		files, label, secret, ok := configFiles(in, vi, out)
		if !ok {
			return source{}, false
		}
		p, ok := perVM(".iso")
		if !ok {
			return source{}, false
		}
		a := &Artifact{Kind: ConfigISO, Volume: v.Name, Path: p, Label: label, Files: files}
		if secret {
			a.Files, a.SecretFiles, a.Digest = nil, files, secretDigest(files)
		}
		return source{path: p, format: "raw", artifact: a}, true

	case v.PersistentVolumeClaim != nil:
		src, ok := claim("persistentVolumeClaim.claimName", v.PersistentVolumeClaim.ClaimName)
		if !ok {
			return source{}, false
		}
		src.format, src.readOnly = "raw", v.PersistentVolumeClaim.ReadOnly
		src.artifact = &Artifact{Kind: Claim, Volume: v.Name, Path: src.path, Claim: v.PersistentVolumeClaim.ClaimName}
		return src, true

	case v.DataVolume != nil:
		// CDI writes a DataVolume into the claim of the same name.
		src, ok := claim("dataVolume.name", v.DataVolume.Name)
		if !ok {
			return source{}, false
		}
		src.format = "raw"
		src.artifact = &Artifact{Kind: Claim, Volume: v.Name, Path: src.path, Claim: v.DataVolume.Name}
		return src, true

	case v.HostDisk != nil:
		hd := v.HostDisk
		p, err := hostFile(ctx, hd.Path)
		if err != nil {
			out.add(diag.Error, ErrHostFileNotAllowed, rel+".hostDisk.path", "%v", err)
			return source{}, false
		}
		return source{path: p, format: "raw", shared: isTrue(hd.Shared), artifact: &Artifact{
			Kind: HostDisk, Volume: v.Name, Path: p,
			Create: hd.Type == kubevirtv1.HostDiskExistsOrCreate, Size: hd.Capacity.Value(),
		}}, true
	}
	// Every other source is refused by the support table (reportUnmapped).
	return source{}, false
}
