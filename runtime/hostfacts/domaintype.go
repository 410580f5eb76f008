package hostfacts

import (
	"fmt"
	"slices"
)

// The libvirt domain types nodevirt defines.
const (
	DomainKVM = "kvm"
	// DomainTCG is QEMU's software emulation: slow, but it runs anywhere.
	DomainTCG = "qemu"
)

// DomainType is the domain type chosen for this host.
type DomainType struct {
	// Type is DomainKVM or DomainTCG.
	Type string
	// Fallback says why auto chose TCG; empty for KVM and for a forced type.
	Fallback string
}

// Warning is the one message an operator gets about a fallback to TCG, or
// "" when there was none.
func (d DomainType) Warning() string {
	if d.Fallback == "" {
		return ""
	}
	return "KVM cannot run guests on this host (" + d.Fallback + "): VMs run under TCG emulation (slow)"
}

// ChooseDomainType decides the domain type for choice, the --domain-type
// flag. "kvm" and "qemu" are taken as they are. "auto" (or "") picks KVM
// only when the host's KVM can run guests: the CPU has hardware
// virtualization (on x86, a vmx or svm flag in <root>/proc/cpuinfo; a host
// can offer a /dev/kvm without it, a software KVM on which guest firmware
// fails), and probe, the connected hypervisor's answer, says "kvm". A probe
// that fails counts as no KVM. Without a hypervisor (render, validate)
// probe is nil and <root>/dev/kvm stands in for its answer.
func ChooseDomainType(choice string, f Facts, probe func() (string, error)) (DomainType, error) {
	switch choice {
	case DomainKVM, DomainTCG:
		return DomainType{Type: choice}, nil
	case "auto", "":
	default:
		return DomainType{}, fmt.Errorf("--domain-type %q: want auto, kvm or qemu", choice)
	}
	tcg := func(why string) (DomainType, error) { return DomainType{Type: DomainTCG, Fallback: why}, nil }
	if probe == nil && !f.KVM {
		return tcg("no /dev/kvm")
	}
	if (f.Arch == "x86_64" || f.Arch == "i686") && f.CPUFlags != nil &&
		!slices.Contains(f.CPUFlags, "vmx") && !slices.Contains(f.CPUFlags, "svm") {
		return tcg("/proc/cpuinfo has no vmx or svm flag: the CPU offers no hardware virtualization")
	}
	if probe != nil {
		typ, err := probe()
		switch {
		case err != nil:
			return tcg("the KVM probe failed: " + err.Error())
		case typ != DomainKVM:
			return tcg("the hypervisor offers no KVM domains")
		}
	}
	return DomainType{Type: DomainKVM}, nil
}
