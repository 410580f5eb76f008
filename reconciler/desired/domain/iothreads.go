package domain

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// configureIOThreads owns <iothreads>: how many I/O threads QEMU starts for
// disks, as KubeVirt counts them. configureDisks gives each virtio disk its
// thread (<driver iothread>) from the same plan.
func configureIOThreads(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	// KubeVirt's admission rules.
	if p := in.Spec.Domain.IOThreadsPolicy; p != nil {
		switch *p {
		case kubevirtv1.IOThreadsPolicyShared, kubevirtv1.IOThreadsPolicyAuto:
		case kubevirtv1.IOThreadsPolicySupplementalPool:
			if t := in.Spec.Domain.IOThreads; t == nil || t.SupplementalPoolThreadCount == nil || *t.SupplementalPoolThreadCount == 0 {
				out.invalid("domain.ioThreads.supplementalPoolThreadCount", "ioThreadsPolicy supplementalPool needs a positive thread count")
				return
			}
		default:
			out.invalid("domain.ioThreadsPolicy", "%q is not one of shared, auto, supplementalPool", *p)
			return
		}
	}
	plan, ok := planIOThreads(in.Spec)
	if !ok || plan.count == 0 {
		return
	}
	dom.IOThreads = uint(plan.count)
	if plan.pool {
		// libvirt 9 (Debian 12) has no <driver><iothreads> on disks, which
		// KubeVirt uses to share the whole pool with every virtio disk.
		out.ignore("domain.ioThreads.supplementalPoolThreadCount", fmt.Sprintf(
			"libvirt 9 cannot give one disk several I/O threads, so each virtio disk gets one thread of the %d, in turn", plan.count))
	}
}

// ioThreadPlan is KubeVirt's I/O thread layout: count threads in all; the
// first auto of them are shared by disks without a dedicated thread, in
// turn, and every disk with dedicatedIOThread gets one of the rest.
type ioThreadPlan struct {
	count, auto int
	// pool: ioThreadsPolicy supplementalPool, count threads for all disks.
	pool bool
}

// planIOThreads computes the plan; ok is false when the VM uses no I/O
// threads (no ioThreadsPolicy and no dedicatedIOThread disk).
func planIOThreads(spec *kubevirtv1.VirtualMachineInstanceSpec) (ioThreadPlan, bool) {
	policy := spec.Domain.IOThreadsPolicy
	dedicated, auto := 0, 0
	for _, d := range spec.Domain.Devices.Disks {
		if isTrue(d.DedicatedIOThread) {
			dedicated++
		} else {
			auto++
		}
	}
	if policy == nil && dedicated == 0 {
		return ioThreadPlan{}, false
	}
	if policy != nil && *policy == kubevirtv1.IOThreadsPolicySupplementalPool &&
		spec.Domain.IOThreads != nil && spec.Domain.IOThreads.SupplementalPoolThreadCount != nil {
		n := int(*spec.Domain.IOThreads.SupplementalPoolThreadCount)
		return ioThreadPlan{count: n, auto: n, pool: true}, true
	}
	limit := ioThreadLimit(spec)
	if auto+dedicated > limit {
		// At least one shared thread, even when dedicated ones exceed the limit.
		auto = max(limit-dedicated, 1)
	}
	return ioThreadPlan{count: auto + dedicated, auto: auto}, true
}

// ioThreadLimit bounds the thread count: one for the shared policy; twice
// the CPUs requested for auto, or one when an isolated emulator thread's CPU
// can run it.
func ioThreadLimit(spec *kubevirtv1.VirtualMachineInstanceSpec) int {
	policy := spec.Domain.IOThreadsPolicy
	switch {
	case policy == nil, *policy == kubevirtv1.IOThreadsPolicyShared:
		return 1
	case *policy == kubevirtv1.IOThreadsPolicyAuto:
		if c := spec.Domain.CPU; c != nil && c.DedicatedCPUPlacement && c.IsolateEmulatorThread {
			return 1
		}
		cpus := 1
		if q, ok := spec.Domain.Resources.Requests[corev1.ResourceCPU]; ok {
			cpus = int(q.Value())
		} else if q, ok := spec.Domain.Resources.Limits[corev1.ResourceCPU]; ok {
			cpus = int(q.Value())
		}
		return cpus * 2
	}
	return 0
}

// diskIOThreads gives each virtio disk of the spec, by index, its I/O
// thread: dedicated threads after the shared ones, shared ones in turn
// (in the supplemental pool, every thread is shared). Other buses get none:
// QEMU runs SATA and USB in its main loop, and SCSI disks use their
// controller's thread.
func diskIOThreads(spec *kubevirtv1.VirtualMachineInstanceSpec) map[int]uint {
	plan, ok := planIOThreads(spec)
	if !ok || plan.auto == 0 {
		return nil
	}
	out := map[int]uint{}
	nextAuto, nextDedicated := 1, plan.auto+1
	for i, d := range spec.Domain.Devices.Disks {
		if d.Disk == nil || d.Disk.Bus != kubevirtv1.DiskBusVirtio {
			continue
		}
		if isTrue(d.DedicatedIOThread) && !plan.pool {
			out[i] = uint(nextDedicated)
			nextDedicated++
			continue
		}
		out[i] = uint(nextAuto)
		nextAuto = nextAuto%plan.auto + 1
	}
	return out
}

// scsiControllerDriver is KubeVirt's driver for the virtio-scsi controller
// of a VM with an ioThreadsPolicy and SCSI disks: one queue per vCPU and the
// first shared I/O thread. KubeVirt spreads the queues over several
// threads where it has more than one; libvirt 9 takes only one.
func scsiControllerDriver(spec *kubevirtv1.VirtualMachineInstanceSpec) *libvirtxml.DomainControllerDriver {
	if spec.Domain.IOThreadsPolicy == nil {
		return nil
	}
	plan, ok := planIOThreads(spec)
	if !ok || plan.auto == 0 {
		return nil
	}
	scsi := false
	for _, d := range spec.Domain.Devices.Disks {
		scsi = scsi || (d.Disk != nil && d.Disk.Bus == kubevirtv1.DiskBusSCSI) ||
			(d.CDRom != nil && d.CDRom.Bus == kubevirtv1.DiskBusSCSI)
	}
	if !scsi {
		return nil
	}
	queues := uint(max(VCPUs(spec), 1))
	return &libvirtxml.DomainControllerDriver{Queues: &queues, IOThread: 1}
}
