package domain

import (
	"libvirt.org/go/libvirtxml"
)

// configureFeatures owns <features> (acpi, apic, smm). Hyper-V, KVM and
// pvspinlock settings are in the support table as not mapped yet.
func configureFeatures(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	f := in.Spec.Domain.Features
	fl := libvirtxml.DomainFeatureList{}
	// ACPI is on unless switched off: KubeVirt always defaults features, and
	// without ACPI neither graceful shutdown nor PCI hotplug works.
	if f == nil || enabled(f.ACPI.Enabled) {
		fl.ACPI = &libvirtxml.DomainFeature{}
	}
	if f != nil && f.APIC != nil && enabled(f.APIC.Enabled) {
		fl.APIC = &libvirtxml.DomainFeatureAPIC{}
		if f.APIC.EndOfInterrupt {
			fl.APIC.EOI = "on"
		}
	}
	if f != nil && f.SMM != nil && enabled(f.SMM.Enabled) {
		// state="on" is how libvirt writes it back.
		fl.SMM = &libvirtxml.DomainFeatureSMM{State: "on"}
	}
	// With dedicated CPUs KubeVirt tells the guest kernel its vCPUs never
	// share a host CPU, so it can skip paravirtual spinlock yielding.
	if c := in.Spec.Domain.CPU; c != nil && c.DedicatedCPUPlacement && ctx.Type == "kvm" {
		fl.KVM = &libvirtxml.DomainFeatureKVM{HintDedicated: &libvirtxml.DomainFeatureState{State: "on"}}
	}
	if fl.ACPI == nil && fl.APIC == nil && fl.SMM == nil && fl.KVM == nil {
		return
	}
	dom.Features = &fl
}
