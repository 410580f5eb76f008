package domain

import (
	k8sv1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// configureMemoryTune owns <memtune>. A memory limit (SPEC VM-2, seed
// 8.14.1) caps the whole QEMU process, so the hard limit is the limit plus
// MemoryOverhead, as KubeVirt adds the overhead to the virt-launcher pod's
// limit; without the overhead QEMU would be OOM-killed as soon as the guest
// used all of its memory.
//
// With hugepages the guest memory comes from the hugetlb pool, which the
// memory cgroup does not charge, so only what the limit exceeds the guest
// memory by counts (KubeVirt's WithHugePages does the same).
//
// overcommitGuestOverhead (seed 8.14.7.2) changes nothing here: KubeVirt
// leaves the overhead out of the pod's *request* only, and nodevirt maps no
// memory request; the seed notes the overhead still goes on the limit.
// Requests are not mapped: a cgroup v2 soft limit (memory.high) throttles
// above it, which a Kubernetes request never does.
func configureMemoryTune(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	limit, ok := in.Spec.Domain.Resources.Limits[k8sv1.ResourceMemory]
	if !ok || limit.Sign() <= 0 {
		return
	}
	charged := limit.Value()
	if _, _, huge := HugepagesNeeded(in.Spec); huge {
		charged = max(charged-guestMemory(in.Spec), 0)
	}
	total := charged + MemoryOverhead(in.Spec, ctx.Arch)
	dom.MemoryTune = &libvirtxml.DomainMemoryTune{
		// KiB, rounded up so the limit never ends below what was asked.
		HardLimit: &libvirtxml.DomainMemoryTuneLimit{Value: uint64((total + 1023) / 1024), Unit: "KiB"},
	}
}

// Fixed costs of MemoryOverhead, from KubeVirt's GetMemoryOverhead
// (pkg/hypervisor/kvm/hypervisorbackend.go, v1.9).
const (
	// overheadFixed is KubeVirt's fixed per-VM cost: virt-launcher-monitor
	// 25Mi, virt-launcher 100Mi, virtlogd 25Mi, virtqemud 40Mi, QEMU 50Mi.
	overheadFixed    = 240 * mib
	overheadPerVCPU  = 8 * mib
	overheadIOThread = 8 * mib
	overheadGraphics = 32 * mib
	overheadAArch64  = 128 * mib
	overheadVFIO     = 1024 * mib
	overheadTPM      = 53 * mib
	overheadDownward = 1 * mib
	overheadPinned   = 100 * mib
)

// MemoryOverhead estimates, in bytes, the memory a VM's QEMU process uses
// beyond its guest memory. It is KubeVirt's virt-launcher overhead estimate
// (GetMemoryOverhead), so a limit gives the VM the same envelope as under
// KubeVirt:
//
//	overhead = max(requests.memory, memory.guest) / 512   page tables
//	         + 240Mi                                       fixed per VM (KubeVirt's launcher, monitor,
//	                                                       virtlogd, virtqemud and QEMU costs; on a plain
//	                                                       host only QEMU is in the cgroup, the rest is
//	                                                       headroom for QEMU's own allocations)
//	         + 8Mi × vCPUs (sockets × cores × threads)     per-vCPU state
//	         + 8Mi                                         one I/O thread
//	         + 32Mi   if a graphics device is attached      video RAM (autoattachGraphicsDevice not false)
//	         + 128Mi  on aarch64                            the two 64Mi UEFI pflash devices
//	         + 1Gi    with VFIO (gpus, hostDevices, sriov)  all guest RAM is locked, plus MMIO space
//	         + 1Mi    with downward metrics                 its memory-backed disk
//	         + 53Mi   with a TPM                            the swtpm process
//	         + 100Mi  with dedicatedCpuPlacement or a guaranteed request (requests = limits for CPU and memory)
//	         + memory.reservedOverhead.addedOverhead        what the user reserves on top
//
// Differences from KubeVirt: page tables are sized from the larger of the
// request and the guest memory (KubeVirt uses the request alone, which is 0
// when only memory.guest is set, and an overcommitted guest touches more
// than its request); probe overheads (110Mi for virt-probe) are left out
// because nodevirt runs no probes; SEV (256Mi) is left out because launch
// security is refused.
func MemoryOverhead(spec *kubevirtv1.VirtualMachineInstanceSpec, arch string) int64 {
	d := spec.Domain
	overhead := max(d.Resources.Requests.Memory().Value(), guestMemory(spec)) / 512
	overhead += overheadFixed
	overhead += overheadPerVCPU * int64(vcpuCount(spec))
	overhead += overheadIOThread
	if !isFalse(d.Devices.AutoattachGraphicsDevice) {
		overhead += overheadGraphics
	}
	if arch == "aarch64" {
		overhead += overheadAArch64
	}
	if hasVFIO(spec) {
		overhead += overheadVFIO
	}
	if hasDownwardMetrics(spec) {
		overhead += overheadDownward
	}
	if t := d.Devices.TPM; t != nil && enabled(t.Enabled) {
		overhead += overheadTPM
	}
	if (d.CPU != nil && d.CPU.DedicatedCPUPlacement) || guaranteed(spec) {
		overhead += overheadPinned
	}
	if m := d.Memory; m != nil && m.ReservedOverhead != nil && m.ReservedOverhead.AddedOverhead != nil {
		overhead += m.ReservedOverhead.AddedOverhead.Value()
	}
	return overhead
}

// guestMemory is memory.guest in bytes (manifests.Default fills it from the
// request or limit), or 0.
func guestMemory(spec *kubevirtv1.VirtualMachineInstanceSpec) int64 {
	if m := spec.Domain.Memory; m != nil && m.Guest != nil {
		return m.Guest.Value()
	}
	return 0
}

// vcpuCount is sockets × cores × threads, zeros counting as 1.
func vcpuCount(spec *kubevirtv1.VirtualMachineInstanceSpec) int {
	if c := spec.Domain.CPU; c != nil {
		return orOne(c.Sockets) * orOne(c.Cores) * orOne(c.Threads)
	}
	return 1
}

func hasVFIO(spec *kubevirtv1.VirtualMachineInstanceSpec) bool {
	devs := spec.Domain.Devices
	if len(devs.GPUs) > 0 || len(devs.HostDevices) > 0 {
		return true
	}
	for _, iface := range devs.Interfaces {
		if iface.SRIOV != nil {
			return true
		}
	}
	return false
}

func hasDownwardMetrics(spec *kubevirtv1.VirtualMachineInstanceSpec) bool {
	if spec.Domain.Devices.DownwardMetrics != nil {
		return true
	}
	for _, v := range spec.Volumes {
		if v.DownwardMetrics != nil {
			return true
		}
	}
	return false
}

// guaranteed is KubeVirt's WantsToHaveQOSGuaranteed: CPU and memory requests
// set and equal to their limits.
func guaranteed(spec *kubevirtv1.VirtualMachineInstanceSpec) bool {
	r := spec.Domain.Resources
	return !r.Requests.Memory().IsZero() && r.Requests.Memory().Cmp(*r.Limits.Memory()) == 0 &&
		!r.Requests.Cpu().IsZero() && r.Requests.Cpu().Cmp(*r.Limits.Cpu()) == 0
}
