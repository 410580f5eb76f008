package domain

import (
	"fmt"

	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// configurePanicDevices owns <devices><panic>: one per
// domain.devices.panicDevices entry, as KubeVirt maps them. A panic device
// lets the guest tell the host it crashed (model hyperv through the Hyper-V
// crash MSRs Windows writes, isa through QEMU's pvpanic port); libvirt then
// applies <on_crash>. Without a model libvirt picks the architecture's
// default (isa on x86_64).
func configurePanicDevices(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	for i, p := range in.Spec.Domain.Devices.PanicDevices {
		pd := libvirtxml.DomainPanic{}
		if p.Model != nil {
			pd.Model = string(*p.Model)
		}
		// libvirt 9.0 (Debian 12) knows no PCI pvpanic model yet; its isa
		// model is the same QEMU pvpanic device on the ISA bus, which the
		// guests' pvpanic drivers serve as well.
		if p.Model != nil && *p.Model == kubevirtv1.Pvpanic {
			pd.Model = string(kubevirtv1.Isa)
			out.add(diag.Warning, ErrIgnored, fmt.Sprintf("domain.devices.panicDevices[%d].model", i),
				"ignored: libvirt 9.0 has no PCI pvpanic device; the guest gets the ISA pvpanic device (model isa) instead")
		}
		devs := devices(dom)
		devs.Panics = append(devs.Panics, pd)
	}
}
