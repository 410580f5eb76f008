package domain

import (
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// configureControllers owns the USB and virtio-serial <controller>s, which
// KubeVirt declares instead of leaving them to libvirt: USB model none when
// no device needs USB (libvirt would otherwise add a controller the guest
// sees on its PCI bus), qemu-xhci when one does; the virtio-serial
// controller behind the guest agent channel with the virtio model of the
// other devices, so useVirtioTransitional reaches it too.
func configureControllers(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	devs := devices(dom)
	zero := uint(0)
	usb := "none"
	if usbNeeded(in.Spec) {
		usb = "qemu-xhci"
	}
	devs.Controllers = append(devs.Controllers, libvirtxml.DomainController{Type: "usb", Index: &zero, Model: usb})
	// KubeVirt declares it with the serial console only; otherwise libvirt
	// adds one for the guest agent channel (configureDevices) by itself.
	if !isFalse(in.Spec.Domain.Devices.AutoattachSerialConsole) {
		devs.Controllers = append(devs.Controllers, libvirtxml.DomainController{Type: "virtio-serial", Index: &zero, Model: virtioModel(in.Spec)})
	}
}

// usbNeeded says whether a device of the spec sits on USB: an input on the
// usb bus (the default bus, and the tablet autoattachInputDevice adds), or
// a disk or CD-ROM on the usb bus. KubeVirt also counts USB host devices
// and client passthrough, which nodevirt does not map.
func usbNeeded(spec *kubevirtv1.VirtualMachineInstanceSpec) bool {
	devs := spec.Domain.Devices
	for _, in := range devs.Inputs {
		if in.Bus == "" || in.Bus == kubevirtv1.InputBusUSB {
			return true
		}
	}
	if len(devs.Inputs) == 0 && isTrue(devs.AutoattachInputDevice) {
		return true
	}
	for _, d := range devs.Disks {
		switch {
		case d.Disk != nil && d.Disk.Bus == kubevirtv1.DiskBusUSB,
			d.CDRom != nil && d.CDRom.Bus == kubevirtv1.DiskBusUSB:
			return true
		}
	}
	return false
}
