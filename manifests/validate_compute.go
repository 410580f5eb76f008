package manifests

import (
	"strings"

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
	if hasReq && hasLim && reqMem.Sign() > 0 && limMem.Sign() > 0 {
		headroom := reqMem.DeepCopy()
		headroom.Add(resource.MustParse("100Mi"))
		switch {
		case reqMem.Cmp(limMem) > 0:
			v.failf(rp+".requests.memory", ErrMemoryRequestOverLimit, "%s > %s", reqMem.String(), limMem.String())
		case limMem.Cmp(headroom) < 0:
			v.failf(rp+".limits.memory", ErrMemoryLimitHeadroom, "limits.memory %s, requests.memory %s", limMem.String(), reqMem.String())
		}
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
	if cpu.IsolateEmulatorThread && !cpu.DedicatedCPUPlacement {
		v.fail(p+".domain.cpu.isolateEmulatorThread", ErrIsolateEmulatorThread)
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
