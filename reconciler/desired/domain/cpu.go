package domain

import (
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// configureCPU owns <vcpu> and <cpu> (mode, model, topology, features).
func configureCPU(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	// A zero count means 1, as KubeVirt's GetCPUTopology reads it; the model
	// falls back to KubeVirt's default, host-model. manifests.Default
	// normally fills both.
	sockets, cores, threads := topology(in.Spec)
	model := kubevirtv1.DefaultCPUModel
	var features []kubevirtv1.CPUFeature
	if c := in.Spec.Domain.CPU; c != nil {
		if c.Model != "" {
			model = c.Model
		}
		features = c.Features
	}

	dom.VCPU = &libvirtxml.DomainVCPU{Placement: "static", Value: uint(VCPUs(in.Spec))}
	cpu := &libvirtxml.DomainCPU{
		Topology: &libvirtxml.DomainCPUTopology{Sockets: sockets, Cores: cores, Threads: threads},
	}
	custom := false
	switch model {
	case kubevirtv1.CPUModeHostModel, kubevirtv1.CPUModeHostPassthrough:
		cpu.Mode = model
	default:
		// A named model; no match/fallback attributes, so libvirt's
		// defaults (exact, allow) apply as in KubeVirt.
		custom = true
		cpu.Mode = "custom"
		cpu.Model = &libvirtxml.DomainCPUModel{Value: model}
	}
	hasMPX := false
	for _, f := range features {
		// KubeVirt's empty policy means require; libvirt's schema wants the
		// attribute spelled out in a domain.
		policy := f.Policy
		if policy == "" {
			policy = "require"
		}
		cpu.Features = append(cpu.Features, libvirtxml.DomainCPUFeature{Name: f.Name, Policy: policy})
		hasMPX = hasMPX || f.Name == "mpx"
	}
	if custom && ctx.Arch == "x86_64" && !hasMPX {
		// KubeVirt disables MPX on named x86 models: recent hosts and QEMU
		// dropped it, and a model that still lists it would not start there.
		cpu.Features = append(cpu.Features, libvirtxml.DomainCPUFeature{Name: "mpx", Policy: "disable"})
	}
	if cells, _ := guestNUMA(in, ctx); len(cells) > 0 {
		// Problems are configureNUMATune's to report.
		cpu.Numa = numaCells(cells)
	}
	dom.CPU = cpu
}

// VCPUs is the guest's vCPU count (sockets × cores × threads): what
// <vcpu> says, and how many host CPUs a dedicatedCpuPlacement VM pins.
func VCPUs(spec *kubevirtv1.VirtualMachineInstanceSpec) int {
	s, c, t := topology(spec)
	return s * c * t
}

func topology(spec *kubevirtv1.VirtualMachineInstanceSpec) (sockets, cores, threads int) {
	if c := spec.Domain.CPU; c != nil {
		return orOne(c.Sockets), orOne(c.Cores), orOne(c.Threads)
	}
	return 1, 1, 1
}

func orOne(n uint32) int {
	if n == 0 {
		return 1
	}
	return int(n)
}
