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
	panics := in.Spec.Domain.Devices.PanicDevices
	for i, p := range panics {
		pd := libvirtxml.DomainPanic{}
		if p.Model != nil {
			pd.Model = string(*p.Model)
		}
		// libvirt 9.0 (Debian 12) knows no PCI pvpanic model yet; its isa
		// model is the same QEMU pvpanic device on the ISA bus, which the
		// guests' pvpanic drivers serve as well. libvirt takes one device
		// per model, so a VM that has an isa one already keeps only that.
		if p.Model != nil && *p.Model == kubevirtv1.Pvpanic {
			at := fmt.Sprintf("domain.devices.panicDevices[%d].model", i)
			if hasISAPanic(panics) {
				out.add(diag.Warning, ErrIgnored, at,
					"ignored: libvirt 9.0 has no PCI pvpanic device, and the guest has the ISA pvpanic device already")
				continue
			}
			pd.Model = string(kubevirtv1.Isa)
			out.add(diag.Warning, ErrIgnored, at,
				"ignored: libvirt 9.0 has no PCI pvpanic device; the guest gets the ISA pvpanic device (model isa) instead")
		}
		devs := devices(dom)
		devs.Panics = append(devs.Panics, pd)
	}
}

// hasISAPanic reports a panic device that is the ISA pvpanic device: model
// isa, or no model (libvirt's default on x86_64).
func hasISAPanic(panics []kubevirtv1.PanicDevice) bool {
	for _, p := range panics {
		if p.Model == nil || *p.Model == kubevirtv1.Isa {
			return true
		}
	}
	return false
}
