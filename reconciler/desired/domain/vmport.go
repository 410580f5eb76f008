package domain

import "libvirt.org/go/libvirtxml"

// configureVMPort owns <features><vmport>: off on x86, as KubeVirt sets it.
// The VMware I/O port is a backdoor VMware tools use; QEMU enables it by
// default on i440fx and q35, and a guest moved from KubeVirt must not find
// it. It runs after configureFeatures, which owns the rest of <features>.
func configureVMPort(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	if ctx.Arch != "" && ctx.Arch != "x86_64" && ctx.Arch != "i686" {
		return
	}
	if dom.Features == nil {
		dom.Features = &libvirtxml.DomainFeatureList{}
	}
	dom.Features.VMPort = &libvirtxml.DomainFeatureState{State: "off"}
}
