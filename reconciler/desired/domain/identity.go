package domain

import (
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// configureIdentity owns <domain type>, <name>, <uuid> and the lifecycle
// actions <on_poweroff>, <on_reboot>, <on_crash>.
func configureIdentity(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	dom.Type = ctx.Type
	dom.Name = DomainName(in.Namespace, in.Name)
	// A plain host has no virt-launcher sysinfo trick: the firmware UUID is
	// the domain UUID, so a redefinition keeps it (libvirt refuses to redefine
	// a name with a different UUID) and the guest sees it in SMBIOS.
	dom.UUID = in.UUID

	// Every way the guest stops ends the QEMU process; the reconciler then
	// reads libvirt's shutoff reason (shutdown, destroyed, crashed) and applies
	// the runStrategy, as KubeVirt's VM controller does with VMI phases.
	dom.OnPoweroff = "destroy"
	dom.OnReboot = "restart"
	if rp := in.Spec.Domain.RebootPolicy; rp != nil && *rp == kubevirtv1.RebootPolicyTerminate {
		dom.OnReboot = "destroy"
	}
	dom.OnCrash = "destroy"
}
