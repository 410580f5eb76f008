package domain

import (
	"sort"
	"strconv"

	k8sv1 "k8s.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// cfsPeriod is the CFS period the kubelet uses for CPU limits, in µs.
const cfsPeriod = 100000

// configureCPUTune owns <cputune>: the CPU limit, and the pins of a
// dedicatedCpuPlacement VM. A CPU limit becomes a CFS bandwidth limit
// on the whole domain: <global_period>/<global_quota> cap the QEMU process's
// cgroup (vCPUs, emulator and I/O threads together) at limits.cpu CPUs per
// period. That is what a Kubernetes CPU limit does to the virt-launcher
// container (cpu.max = limit × 100ms per 100ms), so the guest gets the same
// CPU time as under KubeVirt. The per-vCPU <period>/<quota> would instead
// give each vCPU that much, multiplying the limit by the vCPU count.
//
// CPU requests stay unmapped: they size the topology when none is given
// (manifests.Default) and are a scheduling weight in Kubernetes, which a
// single host with no competing pods does not need.
func configureCPUTune(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	reportOtherLimits(in, out)
	tune := &libvirtxml.DomainCPUTune{}
	if limit, ok := in.Spec.Domain.Resources.Limits[k8sv1.ResourceCPU]; ok && limit.Sign() > 0 {
		// The kubelet's rounding: quota = millicores × period / 1000, at
		// least 1ms, the smallest quota the kernel accepts.
		quota := max(limit.MilliValue()*cfsPeriod/1000, 1000)
		tune.GlobalPeriod = &libvirtxml.DomainCPUTunePeriod{Value: cfsPeriod}
		tune.GlobalQuota = &libvirtxml.DomainCPUTuneQuota{Value: quota}
	}
	if p := in.Resources.Pins; p != nil {
		if n := VCPUs(in.Spec); len(p.VCPUs) != n {
			out.invalid("domain.cpu.dedicatedCpuPlacement", "%d host CPUs allocated for %d vCPUs", len(p.VCPUs), n)
			return
		}
		// As the kubelet's static CPU manager gives KubeVirt's launcher
		// exclusive CPUs, and virt-handler pins vCPU i to the i-th of them.
		for i, cpu := range p.VCPUs {
			tune.VCPUPin = append(tune.VCPUPin, libvirtxml.DomainCPUTuneVCPUPin{VCPU: uint(i), CPUSet: strconv.FormatUint(uint64(cpu), 10)})
		}
		if p.Emulator != nil {
			tune.EmulatorPin = &libvirtxml.DomainCPUTuneEmulatorPin{CPUSet: strconv.FormatUint(uint64(*p.Emulator), 10)}
		}
	}
	if tune.GlobalPeriod != nil || len(tune.VCPUPin) > 0 || tune.EmulatorPin != nil {
		dom.CPUTune = tune
	}
}

// reportOtherLimits warns about limits other than cpu and memory (the
// memory limit is configureMemoryTune's): in Kubernetes they limit the
// virt-launcher pod (ephemeral storage, device plugin resources), which a
// domain has no counterpart for.
func reportOtherLimits(in Input, out *output) {
	var keys []string
	for k := range in.Spec.Domain.Resources.Limits {
		if k != k8sv1.ResourceCPU && k != k8sv1.ResourceMemory {
			keys = append(keys, string(k))
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		out.ignore("domain.resources.limits", "limit "+k+" applies to KubeVirt's pod; only cpu and memory limit the domain (devices: use domain.devices.gpus or hostDevices)")
	}
}
