package manifests

import (
	"slices"
	"strings"
	"time"
	// Time zones are checked against the IANA database even on a host
	// without tzdata (Go falls back to this copy).
	_ "time/tzdata"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// memory checks requests, limits, guest memory and hugepages.
func (v *validator) memory(spec *kubevirtv1.VirtualMachineInstanceSpec, p string, fromInstancetype bool) {
	res := spec.Domain.Resources
	rp := p + ".domain.resources"
	for _, list := range []struct {
		name string
		rl   corev1.ResourceList
	}{{"requests", res.Requests}, {"limits", res.Limits}} {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := list.rl[r]; ok && q.Sign() < 0 {
				v.failf(rp+"."+list.name+"."+string(r), ErrNegativeQuantity, "got %s", q.String())
			}
		}
	}

	reqMem, hasReq := res.Requests[corev1.ResourceMemory]
	limMem, hasLim := res.Limits[corev1.ResourceMemory]
	if hasReq && reqMem.Sign() > 0 && reqMem.Cmp(resource.MustParse("1M")) < 0 {
		v.failf(rp+".requests.memory", ErrMemoryRequestTooSmall, "got %s", reqMem.String())
	}
	dedicated := spec.Domain.CPU != nil && spec.Domain.CPU.DedicatedCPUPlacement
	if hasReq && hasLim && reqMem.Sign() > 0 && limMem.Sign() > 0 {
		headroom := reqMem.DeepCopy()
		headroom.Add(resource.MustParse("100Mi"))
		switch {
		case reqMem.Cmp(limMem) > 0:
			v.failf(rp+".requests.memory", ErrMemoryRequestOverLimit, "%s > %s", reqMem.String(), limMem.String())
		case dedicated:
			// Dedicated CPUs need requests equal to limits (KubeVirt's
			// guaranteed QoS), which the headroom rule would forbid; the
			// dedicated-CPU rules check them instead.
		case limMem.Cmp(headroom) < 0:
			v.failf(rp+".limits.memory", ErrMemoryLimitHeadroom, "limits.memory %s, requests.memory %s", limMem.String(), reqMem.String())
		}
	}
	// A guest defaulted from an over-limit request is that request's error.
	overLimit := hasReq && reqMem.Cmp(limMem) > 0
	if mem := spec.Domain.Memory; mem != nil && mem.Guest != nil && hasLim && limMem.Sign() > 0 && !overLimit && mem.Guest.Cmp(limMem) > 0 {
		v.failf(p+".domain.memory.guest", ErrGuestMemoryOverLimit, "%s > %s", mem.Guest.String(), limMem.String())
	}
	reqCPU, hasReqCPU := res.Requests[corev1.ResourceCPU]
	limCPU, hasLimCPU := res.Limits[corev1.ResourceCPU]
	if hasReqCPU && hasLimCPU && reqCPU.Cmp(limCPU) > 0 {
		v.failf(rp+".requests.cpu", ErrCPURequestOverLimit, "%s > %s", reqCPU.String(), limCPU.String())
	}

	mem := spec.Domain.Memory
	hasGuest := mem != nil && mem.Guest != nil
	hasHugepages := mem != nil && mem.Hugepages != nil
	// Limits count too: defaulting turns them into memory.guest, but a VM with
	// a preference is validated before it is defaulted.
	if !fromInstancetype && !(hasReq && !reqMem.IsZero()) && !(hasLim && !limMem.IsZero()) && !hasGuest && !hasHugepages {
		v.fail(p+".domain.memory", ErrMemoryRequired)
	}
	if !hasHugepages {
		return
	}
	pp := p + ".domain.memory.hugepages.pageSize"
	page, err := resource.ParseQuantity(mem.Hugepages.PageSize)
	if err != nil || (page.Cmp(resource.MustParse("2Mi")) != 0 && page.Cmp(resource.MustParse("1Gi")) != 0) {
		v.failf(pp, ErrHugepagesPageSize, "got %q", mem.Hugepages.PageSize)
		return
	}
	// The memory backed by hugepages, in KubeVirt's order of precedence.
	var vmMem resource.Quantity
	mp := ""
	switch {
	case hasReq && !reqMem.IsZero():
		vmMem, mp = reqMem, rp+".requests.memory"
	case hasGuest:
		vmMem, mp = *mem.Guest, p+".domain.memory.guest"
	case hasLim && !limMem.IsZero():
		vmMem, mp = limMem, rp+".limits.memory"
	default:
		return
	}
	// KubeVirt's webhook accepts memory equal to the page size (one page):
	// the seed's "smaller than" describes its example, not a rule.
	switch {
	case vmMem.Cmp(page) < 0:
		v.failf(pp, ErrHugepagesTooLarge, "%s > %s", page.String(), vmMem.String())
	case vmMem.Value()%page.Value() != 0:
		v.failf(mp, ErrHugepagesNotDivisible, "%s is not a multiple of %s", vmMem.String(), page.String())
	}
}

func (v *validator) cpu(spec *kubevirtv1.VirtualMachineInstanceSpec, p string) {
	if m := spec.Domain.Machine; m != nil && m.Type != "" &&
		!strings.HasPrefix(m.Type, "q35") && !strings.HasPrefix(m.Type, "pc-q35") {
		v.failf(p+".domain.machine.type", ErrMachineType, "got %q", m.Type)
	}
	cpu := spec.Domain.CPU
	if cpu == nil {
		return
	}
	for i, f := range cpu.Features {
		switch f.Policy {
		case "", "force", "require", "optional", "disable", "forbid":
		default:
			v.failf(joinIndex(p+".domain.cpu.features", i)+".policy", ErrCPUFeaturePolicy, "got %q", f.Policy)
		}
	}
	cp := p + ".domain.cpu"
	if cpu.IsolateEmulatorThread && !cpu.DedicatedCPUPlacement {
		v.fail(cp+".isolateEmulatorThread", ErrIsolateEmulatorThread)
	}
	if cpu.MaxSockets != 0 && cpu.Sockets > cpu.MaxSockets {
		v.failf(cp+".sockets", ErrMaxSockets, "%d > %d", cpu.Sockets, cpu.MaxSockets)
	}
	if cpu.DedicatedCPUPlacement {
		v.dedicatedCPU(spec, p)
	}
	if cpu.NUMA != nil && cpu.NUMA.GuestMappingPassthrough != nil {
		np := cp + ".numa.guestMappingPassthrough"
		if !cpu.DedicatedCPUPlacement {
			v.fail(np, ErrNUMADedicated)
		}
		if spec.Domain.Memory == nil || spec.Domain.Memory.Hugepages == nil {
			v.fail(np, ErrNUMAHugepages)
		}
	}
	if cpu.Realtime != nil {
		if !cpu.DedicatedCPUPlacement {
			v.fail(cp+".realtime", ErrRealtimeDedicated)
		}
		if cpu.NUMA == nil || cpu.NUMA.GuestMappingPassthrough == nil {
			v.fail(cp+".realtime", ErrRealtimeNUMA)
		}
	}
}

// dedicatedCPU checks KubeVirt's rules for dedicatedCpuPlacement (pinned
// vCPUs need a whole, guaranteed number of host CPUs). KubeVirt's "one of
// requests.cpu, limits.cpu or cores" rule is left out: it cannot fail after
// defaulting, which always sets a topology, in KubeVirt as here.
func (v *validator) dedicatedCPU(spec *kubevirtv1.VirtualMachineInstanceSpec, p string) {
	res := spec.Domain.Resources
	rp := p + ".domain.resources"
	reqCPU, limCPU := res.Requests.Cpu(), res.Limits.Cpu()
	whole := func(q *resource.Quantity) bool { return q.MilliValue()%1000 == 0 }
	if reqCPU.Sign() > 0 && !whole(reqCPU) {
		v.failf(rp+".requests.cpu", ErrDedicatedCPUInteger, "got %s", reqCPU.String())
	}
	if limCPU.Sign() > 0 && !whole(limCPU) {
		v.failf(rp+".limits.cpu", ErrDedicatedCPUInteger, "got %s", limCPU.String())
	}
	if reqCPU.Sign() > 0 && limCPU.Sign() > 0 && reqCPU.Value() != limCPU.Value() {
		v.failf(rp+".requests.cpu", ErrDedicatedCPUEqual, "%s and %s", reqCPU.String(), limCPU.String())
	}
	reqMem, limMem := res.Requests.Memory(), res.Limits.Memory()
	if reqMem.Sign() > 0 && limMem.Sign() > 0 && reqMem.Cmp(*limMem) != 0 {
		v.failf(rp+".requests.memory", ErrDedicatedMemoryEqual, "%s and %s", reqMem.String(), limMem.String())
	}
	cpu := spec.Domain.CPU
	vcpus := int64(orOne(cpu.Sockets)) * int64(orOne(cpu.Cores)) * int64(orOne(cpu.Threads))
	if (reqCPU.Value() > 0 || limCPU.Value() > 0) && reqCPU.Value() != vcpus && limCPU.Value() != vcpus {
		v.failf(p+".domain.cpu.dedicatedCpuPlacement", ErrDedicatedCPUCount, "%d vCPUs, requests.cpu %s, limits.cpu %s", vcpus, reqCPU.String(), limCPU.String())
	}
	if cpu.Threads > 2 {
		v.failf(p+".domain.cpu.threads", ErrDedicatedThreads, "got %d", cpu.Threads)
	}
}

func orOne(n uint32) uint32 {
	if n == 0 {
		return 1
	}
	return n
}

// hyperv rejects Hyper-V enlightenments whose dependency the user disabled
// explicitly; defaulting enables the ones left unset.
func (v *validator) hyperv(spec *kubevirtv1.VirtualMachineInstanceSpec, p string) {
	f := spec.Domain.Features
	if f == nil || f.Hyperv == nil {
		return
	}
	hv := f.Hyperv
	hp := p + ".domain.features.hyperv"
	off := func(fs *kubevirtv1.FeatureState) bool { return fs != nil && fs.Enabled != nil && !*fs.Enabled }
	need := func(feature string, set bool, dep string, depState *kubevirtv1.FeatureState) {
		if set && off(depState) {
			v.failf(hp+"."+feature, ErrHypervDependency, "%s needs %s", feature, dep)
		}
	}
	need("synic", on(hv.SyNIC), "vpindex", hv.VPIndex)
	need("ipi", on(hv.IPI), "vpindex", hv.VPIndex)
	need("tlbflush", hv.TLBFlush != nil && on(&hv.TLBFlush.FeatureState), "vpindex", hv.VPIndex)
	need("synictimer", hv.SyNICTimer != nil && on(&hv.SyNICTimer.FeatureState), "synic", hv.SyNIC)
	need("evmcs", on(hv.EVMCS), "vapic", hv.VAPIC)
	if f.HypervPassthrough != nil {
		v.fail(hp, ErrHypervPassthrough)
	}
}

// clock checks what libvirt accepts but QEMU would run differently or
// refuse at start: glibc silently runs an unknown time zone as UTC, and
// each timer takes only some tick policies.
func (v *validator) clock(spec *kubevirtv1.VirtualMachineInstanceSpec, p string) {
	c := spec.Domain.Clock
	if c == nil {
		return
	}
	cp := p + ".domain.clock"
	if tz := c.Timezone; tz != nil {
		if _, err := time.LoadLocation(string(*tz)); err != nil || *tz == "" || *tz == "Local" {
			v.failf(cp+".timezone", ErrClockTimezone, "got %q", string(*tz))
		}
	}
	t := c.Timer
	if t == nil {
		return
	}
	policy := func(timer, got string, allowed ...string) {
		if got != "" && !slices.Contains(allowed, got) {
			v.failf(cp+".timer."+timer+".tickPolicy", ErrTimerTickPolicy, "%s takes %s; got %q", timer, strings.Join(allowed, ", "), got)
		}
	}
	if t.RTC != nil {
		// QEMU's RTC can only slew (catchup) or not (delay).
		policy("rtc", string(t.RTC.TickPolicy), "delay", "catchup")
		switch t.RTC.Track {
		case "", kubevirtv1.TrackGuest, kubevirtv1.TrackWall:
		default:
			v.failf(cp+".timer.rtc.track", ErrRTCTrack, "got %q", t.RTC.Track)
		}
	}
	if t.PIT != nil {
		policy("pit", string(t.PIT.TickPolicy), "delay", "catchup", "discard")
	}
	if t.HPET != nil {
		policy("hpet", string(t.HPET.TickPolicy), "delay", "catchup", "merge", "discard")
	}
}

func (v *validator) firmware(spec *kubevirtv1.VirtualMachineInstanceSpec, p string) {
	fw := spec.Domain.Firmware
	if fw == nil || fw.Bootloader == nil {
		return
	}
	bp := p + ".domain.firmware.bootloader"
	bl := fw.Bootloader
	if bl.BIOS != nil && bl.EFI != nil {
		v.fail(bp, ErrBootloaderConflict)
	}
	// efi: {} means Secure Boot (KubeVirt's default), which QEMU runs only
	// with SMM emulation.
	if efi := bl.EFI; efi != nil && (efi.SecureBoot == nil || *efi.SecureBoot) {
		if f := spec.Domain.Features; f == nil || !on(f.SMM) {
			v.fail(bp+".efi.secureBoot", ErrSecureBootSMM)
		}
	}
}
