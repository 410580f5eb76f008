package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureCPU(t *testing.T) {
	topo := func(s, c, th int) *libvirtxml.DomainCPUTopology {
		return &libvirtxml.DomainCPUTopology{Sockets: s, Cores: c, Threads: th}
	}
	for _, tc := range []struct {
		name string
		cpu  *kubevirtv1.CPU
		want *libvirtxml.Domain
	}{
		{
			name: "no cpu: one vCPU, host-model",
			want: &libvirtxml.Domain{
				VCPU: &libvirtxml.DomainVCPU{Placement: "static", Value: 1},
				CPU:  &libvirtxml.DomainCPU{Mode: "host-model", Topology: topo(1, 1, 1)},
			},
		},
		{
			name: "topology multiplies",
			cpu:  &kubevirtv1.CPU{Sockets: 2, Cores: 3, Threads: 2, Model: "host-model"},
			want: &libvirtxml.Domain{
				VCPU: &libvirtxml.DomainVCPU{Placement: "static", Value: 12},
				CPU:  &libvirtxml.DomainCPU{Mode: "host-model", Topology: topo(2, 3, 2)},
			},
		},
		{
			name: "host-passthrough with features",
			cpu: &kubevirtv1.CPU{Cores: 2, Model: "host-passthrough", Features: []kubevirtv1.CPUFeature{
				{Name: "vmx", Policy: "forbid"}, {Name: "pcid"},
			}},
			want: &libvirtxml.Domain{
				VCPU: &libvirtxml.DomainVCPU{Placement: "static", Value: 2},
				CPU: &libvirtxml.DomainCPU{Mode: "host-passthrough", Topology: topo(1, 2, 1), Features: []libvirtxml.DomainCPUFeature{
					{Name: "vmx", Policy: "forbid"}, {Name: "pcid", Policy: "require"},
				}},
			},
		},
		{
			name: "named model disables mpx on x86_64",
			cpu:  &kubevirtv1.CPU{Model: "Conroe", Features: []kubevirtv1.CPUFeature{{Name: "ssse3", Policy: "optional"}}},
			want: &libvirtxml.Domain{
				VCPU: &libvirtxml.DomainVCPU{Placement: "static", Value: 1},
				CPU: &libvirtxml.DomainCPU{Mode: "custom", Model: &libvirtxml.DomainCPUModel{Value: "Conroe"}, Topology: topo(1, 1, 1),
					Features: []libvirtxml.DomainCPUFeature{{Name: "ssse3", Policy: "optional"}, {Name: "mpx", Policy: "disable"}}},
			},
		},
		{
			name: "named model keeps the user's mpx",
			cpu:  &kubevirtv1.CPU{Model: "Skylake-Client", Features: []kubevirtv1.CPUFeature{{Name: "mpx", Policy: "require"}}},
			want: &libvirtxml.Domain{
				VCPU: &libvirtxml.DomainVCPU{Placement: "static", Value: 1},
				CPU: &libvirtxml.DomainCPU{Mode: "custom", Model: &libvirtxml.DomainCPUModel{Value: "Skylake-Client"}, Topology: topo(1, 1, 1),
					Features: []libvirtxml.DomainCPUFeature{{Name: "mpx", Policy: "require"}}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := kubevirtv1.VirtualMachineInstanceSpec{}
			spec.Domain.CPU = tc.cpu
			dom, out := run(configureCPU, testInput(spec))
			if diff := cmp.Diff(tc.want, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if len(out.diags) != 0 {
				t.Errorf("unexpected diagnostics: %v", out.diags)
			}
		})
	}
}
