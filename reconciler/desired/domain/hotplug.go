package domain

import (
	"slices"
	"strconv"
	"strings"

	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// Hotplug capacity, KubeVirt's calculateHotplugPortCount: a domain gets
// enough empty PCIe root ports for a few devices added while it runs, more
// for larger guests, and never a bus index above maxPortIndex.
const (
	portsTotal      = 8
	portsTotalLarge = 16
	portsFree       = 3
	portsFreeLarge  = 6
	largeGuest      = 2 << 30
	maxPortIndex    = 31
)

// hotplugAliasPrefix marks the controllers added only so devices can be
// hot-plugged. "_" never occurs in a KubeVirt name (DNS labels), so the
// aliases cannot collide with a user alias "ua-<name>".
const hotplugAliasPrefix = "ua-nodevirt_hotplug"

// HotplugSCSIAlias is the alias of the SCSI controller hot-plugged disks go to
// when no disk of the spec needs one.
const HotplugSCSIAlias = hotplugAliasPrefix + "-scsi"

// IsHotplugController reports a controller the converter added for hotplug
// capacity only. They are left out of the spec hash, so a domain defined
// before they existed is not "changed in the source" (and restarted) for them.
func IsHotplugController(c libvirtxml.DomainController) bool {
	return c.Alias != nil && strings.HasPrefix(c.Alias.Name, hotplugAliasPrefix)
}

// configureHotplug owns the controllers hot-plugged devices need: a
// virtio-scsi controller (index 0, where disks attach by drive address) and,
// on q35, empty pcie-root-ports. It runs after every other device, since the
// ports it adds depend on how many the others take.
func configureHotplug(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	devs := devices(dom)
	zero := uint(0)
	hasSCSI := false
	for _, c := range devs.Controllers {
		hasSCSI = hasSCSI || c.Type == "scsi"
	}
	if in.Spec.Domain.Devices.DisableHotplug {
		return
	}
	if !hasSCSI {
		devs.Controllers = append(devs.Controllers, libvirtxml.DomainController{
			Type: "scsi", Index: &zero, Model: virtioModel(in.Spec), Driver: scsiControllerDriver(in.Spec),
			Alias: &libvirtxml.DomainAlias{Name: HotplugSCSIAlias},
		})
	}
	if dom.OS == nil || dom.OS.Type == nil || !strings.Contains(dom.OS.Type.Machine, "q35") {
		// i440fx has hotplug-capable slots on its root bus; only PCIe needs ports.
		return
	}
	// The ports added are not counted by rootPorts, so it is read once;
	// the controllers are large, so the list grows once.
	ports := rootPorts(in, dom)
	devs.Controllers = slices.Grow(devs.Controllers, ports)
	for i := 1; i <= ports; i++ {
		idx := uint(i)
		// Explicit indexes keep every port's bus number, and with it the
		// addresses libvirt gives devices, the same across redefines.
		devs.Controllers = append(devs.Controllers, libvirtxml.DomainController{
			Type: "pci", Index: &idx, Model: "pcie-root-port",
			Alias: &libvirtxml.DomainAlias{Name: hotplugAliasPrefix + "-port" + strconv.Itoa(i)},
		})
	}
}

// rootPorts is how many pcie-root-ports the domain declares: the ones its
// devices take plus the free ones KubeVirt's formula asks for. libvirt places
// devices on declared empty ports before it adds ports of its own, so the
// declared ones the devices do not take stay free for hotplug.
func rootPorts(in Input, dom *libvirtxml.Domain) int {
	total, free := portsTotal, portsFree
	if guestMemory(in.Spec) > largeGuest {
		total, free = portsTotalLarge, portsFreeLarge
	}
	used := pcieDevices(dom)
	n := max(total-used, free) + used
	return min(n, maxPortIndex)
}

// pcieDevices counts the devices libvirt puts on a root port of a q35
// machine: one each for virtio disks, NICs, host devices, RNGs, virtiofs
// filesystems (vhost-user-fs-pci), the balloon,
// the controllers for channels (virtio-serial), USB (qemu-xhci) and SCSI,
// and the PCI bridge a watchdog needs. VGA, SATA and sound sit on the root
// complex. Counting high only leaves more ports free.
func pcieDevices(dom *libvirtxml.Domain) int {
	d := dom.Devices
	if d == nil {
		return 0
	}
	n := len(d.Interfaces) + len(d.Hostdevs) + len(d.RNGs) + len(d.Filesystems)
	for _, disk := range d.Disks {
		if disk.Target != nil && disk.Target.Bus == "virtio" {
			n++
		}
	}
	if d.MemBalloon != nil && d.MemBalloon.Model != "none" {
		n++
	}
	if len(d.Watchdogs) > 0 {
		n++
	}
	// libvirt adds a USB controller unless one with model none is declared,
	// and a virtio-serial controller for channels.
	usb, serial := true, len(d.Channels) > 0
	for _, c := range d.Controllers {
		switch c.Type {
		case "scsi":
			n++
		case "usb":
			usb = c.Model != "none"
		case "virtio-serial":
			serial = true
		}
	}
	if usb {
		n++
	}
	if serial {
		n++
	}
	return n
}

// HotplugDisk is a disk of the spec a running domain takes or gives up live:
// a hotpluggable DataVolume or PVC on the SCSI bus.
type HotplugDisk struct {
	Volume string `json:"volume"`
	Alias  string `json:"alias"`
	// Path is the claim's disk; XML the <disk> element to attach.
	Path string `json:"path"`
	XML  string `json:"xml"`
}

// liveHotpluggable reports a disk whose volume is a hotpluggable DataVolume
// or PVC and whose bus is SCSI (a disk or a lun), which a guest releases at once (virtio-blk
// waits for the guest). Any other disk changes with a restart.
func liveHotpluggable(in Input, d kubevirtv1.Disk) bool {
	scsiDisk := d.Disk != nil && d.Disk.Bus == kubevirtv1.DiskBusSCSI
	scsiLUN := d.LUN != nil && d.LUN.Bus == kubevirtv1.DiskBusSCSI
	if !scsiDisk && !scsiLUN {
		return false
	}
	for _, v := range in.Spec.Volumes {
		if v.Name == d.Name {
			return (v.DataVolume != nil && v.DataVolume.Hotpluggable) ||
				(v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.Hotpluggable)
		}
	}
	return false
}
