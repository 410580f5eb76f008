package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	k8sv1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureCPUTune(t *testing.T) {
	quota := func(q int64) *libvirtxml.Domain {
		return &libvirtxml.Domain{CPUTune: &libvirtxml.DomainCPUTune{
			GlobalPeriod: &libvirtxml.DomainCPUTunePeriod{Value: 100000},
			GlobalQuota:  &libvirtxml.DomainCPUTuneQuota{Value: q},
		}}
	}
	for _, tc := range []struct {
		name   string
		limits k8sv1.ResourceList
		want   *libvirtxml.Domain
	}{
		{name: "no limit", want: &libvirtxml.Domain{}},
		{name: "memory limit only", limits: k8sv1.ResourceList{k8sv1.ResourceMemory: *qty("1Gi")}, want: &libvirtxml.Domain{}},
		{name: "two CPUs", limits: k8sv1.ResourceList{k8sv1.ResourceCPU: *qty("2")}, want: quota(200000)},
		{name: "millicores", limits: k8sv1.ResourceList{k8sv1.ResourceCPU: *qty("1500m")}, want: quota(150000)},
		// The kernel's minimum quota is 1ms; the kubelet rounds up to it.
		{name: "tiny limit", limits: k8sv1.ResourceList{k8sv1.ResourceCPU: *qty("5m")}, want: quota(1000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s kubevirtv1.VirtualMachineInstanceSpec
			s.Domain.Resources.Limits = tc.limits
			dom, out := run(configureCPUTune, testInput(s))
			if diff := cmp.Diff(tc.want, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if len(out.diags) > 0 {
				t.Errorf("unexpected diagnostics %v", diagLines(out))
			}
		})
	}
}
