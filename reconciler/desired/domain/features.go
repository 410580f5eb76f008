package domain

import (
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// Limits libvirt puts on Hyper-V values (qemu_validate.c); checked here so a
// bad value is named with its field instead of failing at define.
const (
	minSpinlockRetries = 4095
	maxVendorIDLength  = 12
)

// configureFeatures owns <features>: acpi, apic, smm, the Hyper-V
// enlightenments (<hyperv>), <kvm> (hidden, hint-dedicated) and
// <pvspinlock>, mapped as KubeVirt's hypervisor-features configurator maps
// them. Defaulting has already enabled the Hyper-V features others depend on
// (vpindex for synic, ipi and tlbflush; synic for synictimer; vapic for
// evmcs).
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
	if f != nil {
		switch {
		case f.Hyperv != nil:
			fl.HyperV = hyperv(f.Hyperv, ctx, out)
		case f.HypervPassthrough != nil && isTrue(f.HypervPassthrough.Enabled):
			// QEMU hands the guest every enlightenment the host supports.
			fl.HyperV = &libvirtxml.DomainFeatureHyperV{Mode: "passthrough"}
			if ctx.Type != "kvm" {
				out.add(diag.Warning, ErrIgnored, "domain.features.hypervPassthrough", "ignored: %s", withoutKVM(ctx, "the guest sees no Hyper-V enlightenments"))
			}
		}
		if f.KVM != nil {
			// Hides the KVM signature from CPUID, for guest drivers (GPU
			// drivers mostly) that refuse to run in a VM.
			fl.KVM = &libvirtxml.DomainFeatureKVM{Hidden: onOff(f.KVM.Hidden)}
		}
		switch {
		case f.Pvspinlock == nil:
		case enabled(f.Pvspinlock.Enabled) && ctx.Type != "kvm":
			// libvirt refuses to start the domain ("host doesn't support
			// paravirtual spinlocks").
			out.add(diag.Warning, ErrIgnored, "domain.features.pvspinlock", "ignored: %s", withoutKVM(ctx, "the guest has no paravirtual spinlocks"))
		default:
			fl.PVSpinlock = onOff(enabled(f.Pvspinlock.Enabled))
		}
	}
	// With dedicated CPUs KubeVirt tells the guest kernel its vCPUs never
	// share a host CPU, so it can skip paravirtual spinlock yielding.
	if c := in.Spec.Domain.CPU; c != nil && c.DedicatedCPUPlacement && ctx.Type == "kvm" {
		if fl.KVM == nil {
			fl.KVM = &libvirtxml.DomainFeatureKVM{}
		}
		fl.KVM.HintDedicated = onOff(true)
	}
	if fl == (libvirtxml.DomainFeatureList{}) {
		return
	}
	dom.Features = &fl
}

// hyperv maps domain.features.hyperv to <hyperv>: every enlightenment given
// is written with its state, on unless disabled, as KubeVirt writes it.
func hyperv(h *kubevirtv1.FeatureHyperv, ctx Context, out *output) *libvirtxml.DomainFeatureHyperV {
	const at = "domain.features.hyperv"
	hv := &libvirtxml.DomainFeatureHyperV{
		Relaxed:         featureState(h.Relaxed),
		VAPIC:           featureState(h.VAPIC),
		VPIndex:         featureState(h.VPIndex),
		Runtime:         featureState(h.Runtime),
		Synic:           featureState(h.SyNIC),
		Reset:           featureState(h.Reset),
		Frequencies:     featureState(h.Frequencies),
		ReEnlightenment: featureState(h.Reenlightenment),
		IPI:             featureState(h.IPI),
		EVMCS:           featureState(h.EVMCS),
	}
	if s := h.Spinlocks; s != nil {
		hv.Spinlocks = &libvirtxml.DomainFeatureHyperVSpinlocks{DomainFeatureState: *onOff(enabled(s.Enabled))}
		if enabled(s.Enabled) {
			retries := uint32(4096) // the API's default, for specs that skipped defaulting
			if s.Retries != nil {
				retries = *s.Retries
			}
			if retries < minSpinlockRetries {
				out.invalid(at+".spinlocks.spinlocks", "%d spinlock retries: Hyper-V needs at least %d", retries, minSpinlockRetries)
				retries = minSpinlockRetries
			}
			hv.Spinlocks.Retries = uint(retries)
		}
	}
	if v := h.VendorID; v != nil {
		hv.VendorId = &libvirtxml.DomainFeatureHyperVVendorId{DomainFeatureState: *onOff(enabled(v.Enabled))}
		if enabled(v.Enabled) {
			switch n := len(v.VendorID); {
			case n == 0:
				out.invalid(at+".vendorid", "vendorid is enabled without a vendorid value")
			case n > maxVendorIDLength:
				out.invalid(at+".vendorid.vendorid", "%q is %d characters long; a Hyper-V vendor ID has at most %d", v.VendorID, n, maxVendorIDLength)
			default:
				hv.VendorId.Value = v.VendorID
			}
		}
	}
	if t := h.SyNICTimer; t != nil {
		hv.STimer = &libvirtxml.DomainFeatureHyperVSTimer{DomainFeatureState: *onOff(enabled(t.Enabled)), Direct: featureState(t.Direct)}
	}
	if t := h.TLBFlush; t != nil {
		hv.TLBFlush = &libvirtxml.DomainFeatureHyperVTLBFlush{DomainFeatureState: *onOff(enabled(t.Enabled))}
		// libvirt 9.0 (Debian 12) knows only the plain flag: its schema
		// refuses <direct> and <extended> inside <tlbflush>.
		for _, sub := range []struct {
			name  string
			state *kubevirtv1.FeatureState
		}{{"direct", t.Direct}, {"extended", t.Extended}} {
			if sub.state != nil && enabled(sub.state.Enabled) {
				out.add(diag.Warning, ErrIgnored, at+".tlbflush."+sub.name,
					"ignored: libvirt 9.0 has no Hyper-V tlbflush %s setting; the guest gets plain tlbflush", sub.name)
			}
		}
	}
	if ctx.Type != "kvm" && anyOn(hv) {
		// QEMU fills the Hyper-V CPUID leaves through KVM only: under TCG
		// it starts with the enlightenments (still written, as KubeVirt
		// writes them) but the guest sees none. The VP index it refuses
		// outright ("kernel doesn't allow setting HyperV VP_INDEX").
		hv.VPIndex = nil
		out.add(diag.Warning, ErrIgnored, at, "ignored: %s", withoutKVM(ctx, "the guest sees no Hyper-V enlightenments (and vpindex is left out: QEMU refuses to start with it)"))
	}
	return hv
}

// anyOn reports an enlightenment in state on.
func anyOn(hv *libvirtxml.DomainFeatureHyperV) bool {
	for _, s := range []*libvirtxml.DomainFeatureState{
		hv.Relaxed, hv.VAPIC, hv.VPIndex, hv.Runtime, hv.Synic, hv.Reset, hv.Frequencies, hv.ReEnlightenment, hv.IPI, hv.EVMCS,
	} {
		if s != nil && s.State == "on" {
			return true
		}
	}
	return (hv.Spinlocks != nil && hv.Spinlocks.State == "on") || (hv.VendorId != nil && hv.VendorId.State == "on") ||
		(hv.STimer != nil && hv.STimer.State == "on") || (hv.TLBFlush != nil && hv.TLBFlush.State == "on")
}

// withoutKVM says why a KVM-only setting does not reach the guest on a host
// whose domains run under TCG.
func withoutKVM(ctx Context, what string) string {
	return "domain type " + ctx.Type + " (no KVM on this host): QEMU gives guests Hyper-V and KVM paravirtual features only through KVM, so " + what
}

// featureState is KubeVirt's FeatureState as libvirt's: on unless disabled.
func featureState(s *kubevirtv1.FeatureState) *libvirtxml.DomainFeatureState {
	if s == nil {
		return nil
	}
	return onOff(enabled(s.Enabled))
}

func onOff(b bool) *libvirtxml.DomainFeatureState {
	if b {
		return &libvirtxml.DomainFeatureState{State: "on"}
	}
	return &libvirtxml.DomainFeatureState{State: "off"}
}
