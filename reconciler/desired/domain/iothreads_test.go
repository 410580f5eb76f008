package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	k8sv1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// The plans are KubeVirt's (pkg/virt-launcher/virtwrap/converter,
// iothreads): thread count, and which thread each disk gets.
func TestIOThreads(t *testing.T) {
	policy := func(p kubevirtv1.IOThreadsPolicy) *kubevirtv1.IOThreadsPolicy { return &p }
	virtio := func(name string, dedicated bool) kubevirtv1.Disk {
		d := kubevirtv1.Disk{Name: name, DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: "virtio"}}}
		if dedicated {
			d.DedicatedIOThread = ptr(true)
		}
		return d
	}
	sata := kubevirtv1.Disk{Name: "s", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: "sata"}}}
	cpus := func(n string) kubevirtv1.ResourceRequirements {
		return kubevirtv1.ResourceRequirements{Requests: k8sv1.ResourceList{k8sv1.ResourceCPU: resource.MustParse(n)}}
	}
	for _, tc := range []struct {
		name      string
		policy    *kubevirtv1.IOThreadsPolicy
		disks     []kubevirtv1.Disk
		resources kubevirtv1.ResourceRequirements
		cpu       *kubevirtv1.CPU
		pool      *uint32
		count     uint
		threads   map[int]uint
	}{
		{name: "no policy, no dedicated disk: no threads", disks: []kubevirtv1.Disk{virtio("a", false)}},
		{name: "shared: one thread for all", policy: policy(kubevirtv1.IOThreadsPolicyShared),
			disks: []kubevirtv1.Disk{virtio("a", false), sata, virtio("b", false)}, count: 1, threads: map[int]uint{0: 1, 2: 1}},
		{name: "dedicated without a policy: the shared thread plus its own", disks: []kubevirtv1.Disk{virtio("a", false), virtio("b", true)},
			count: 2, threads: map[int]uint{0: 1, 1: 2}},
		{name: "auto: two threads per requested CPU, shared ones in turn", policy: policy(kubevirtv1.IOThreadsPolicyAuto), resources: cpus("2"),
			disks: []kubevirtv1.Disk{virtio("a", false), virtio("b", false), virtio("c", false), virtio("d", false), virtio("e", false), virtio("f", true)},
			count: 4, threads: map[int]uint{0: 1, 1: 2, 2: 3, 3: 1, 4: 2, 5: 4}},
		{name: "auto with an isolated emulator thread: one thread", policy: policy(kubevirtv1.IOThreadsPolicyAuto), resources: cpus("4"),
			cpu:   &kubevirtv1.CPU{DedicatedCPUPlacement: true, IsolateEmulatorThread: true},
			disks: []kubevirtv1.Disk{virtio("a", false), virtio("b", false)}, count: 1, threads: map[int]uint{0: 1, 1: 1}},
		{name: "dedicated beyond the limit keep one shared thread", policy: policy(kubevirtv1.IOThreadsPolicyShared),
			disks: []kubevirtv1.Disk{virtio("a", false), virtio("b", true), virtio("c", true)}, count: 3, threads: map[int]uint{0: 1, 1: 2, 2: 3}},
		{name: "supplemental pool", policy: policy(kubevirtv1.IOThreadsPolicySupplementalPool), pool: ptr(uint32(2)),
			disks: []kubevirtv1.Disk{virtio("a", false), virtio("b", true), virtio("c", false)}, count: 2, threads: map[int]uint{0: 1, 1: 2, 2: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var spec kubevirtv1.VirtualMachineInstanceSpec
			spec.Domain.IOThreadsPolicy = tc.policy
			spec.Domain.Devices.Disks = tc.disks
			spec.Domain.Resources = tc.resources
			spec.Domain.CPU = tc.cpu
			if tc.pool != nil {
				spec.Domain.IOThreads = &kubevirtv1.DiskIOThreads{SupplementalPoolThreadCount: tc.pool}
			}
			dom, out := run(configureIOThreads, testInput(spec))
			if dom.IOThreads != tc.count {
				t.Errorf("<iothreads> = %d, want %d", dom.IOThreads, tc.count)
			}
			if diff := cmp.Diff(tc.threads, diskIOThreads(&spec)); diff != "" {
				t.Errorf("disk threads (-want +got):\n%s", diff)
			}
			if (tc.pool != nil) != (len(out.diags) == 1) {
				t.Errorf("diagnostics: %v", out.diags)
			}
		})
	}
}

// SCSI disks share the controller's queues and its thread.
func TestIOThreads_scsiController(t *testing.T) {
	shared := kubevirtv1.IOThreadsPolicyShared
	var spec kubevirtv1.VirtualMachineInstanceSpec
	spec.Domain.IOThreadsPolicy = &shared
	spec.Domain.CPU = &kubevirtv1.CPU{Sockets: 1, Cores: 3, Threads: 1}
	spec.Domain.Devices.Disks = []kubevirtv1.Disk{{Name: "a", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: "scsi"}}}}
	spec.Volumes = []kubevirtv1.Volume{{Name: "a", VolumeSource: kubevirtv1.VolumeSource{EmptyDisk: &kubevirtv1.EmptyDiskSource{Capacity: *qty("1Gi")}}}}
	dom, _ := run(configureDisks, testInput(spec))
	three := uint(3)
	want := []libvirtxml.DomainController{{Type: "scsi", Model: "virtio-non-transitional", Driver: &libvirtxml.DomainControllerDriver{Queues: &three, IOThread: 1}}}
	if diff := cmp.Diff(want, dom.Devices.Controllers); diff != "" {
		t.Errorf("controllers (-want +got):\n%s", diff)
	}
	if dom.Devices.Disks[0].Driver.IOThread != nil {
		t.Errorf("a SCSI disk got an I/O thread of its own: %d", *dom.Devices.Disks[0].Driver.IOThread)
	}
}

func TestIOThreads_invalid(t *testing.T) {
	for _, tc := range []struct {
		policy kubevirtv1.IOThreadsPolicy
		want   diagLine
	}{
		{"dedicated", diagLine{"error", "spec.template.spec.domain.ioThreadsPolicy", `invalid: "dedicated" is not one of shared, auto, supplementalPool`}},
		{kubevirtv1.IOThreadsPolicySupplementalPool, diagLine{"error", "spec.template.spec.domain.ioThreads.supplementalPoolThreadCount", "invalid: ioThreadsPolicy supplementalPool needs a positive thread count"}},
	} {
		var spec kubevirtv1.VirtualMachineInstanceSpec
		spec.Domain.IOThreadsPolicy = &tc.policy
		dom, out := run(configureIOThreads, testInput(spec))
		if diff := cmp.Diff([]diagLine{tc.want}, diagLines(out)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.policy, diff)
		}
		if dom.IOThreads != 0 {
			t.Errorf("%s: <iothreads> %d", tc.policy, dom.IOThreads)
		}
	}
}
