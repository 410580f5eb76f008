package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureMemory(t *testing.T) {
	for _, tc := range []struct {
		name   string
		memory *kubevirtv1.Memory
		want   *libvirtxml.Domain
		diags  []diagLine
	}{
		{
			name:   "binary units",
			memory: &kubevirtv1.Memory{Guest: qty("128Mi")},
			want: &libvirtxml.Domain{
				Memory:        &libvirtxml.DomainMemory{Value: 131072, Unit: "KiB"},
				CurrentMemory: &libvirtxml.DomainCurrentMemory{Value: 131072, Unit: "KiB"},
			},
		},
		{
			// 1024M = 1024000000 bytes = 1000000 KiB exactly.
			name:   "decimal units",
			memory: &kubevirtv1.Memory{Guest: qty("1024M")},
			want: &libvirtxml.Domain{
				Memory:        &libvirtxml.DomainMemory{Value: 1000000, Unit: "KiB"},
				CurrentMemory: &libvirtxml.DomainCurrentMemory{Value: 1000000, Unit: "KiB"},
			},
		},
		{
			// 1000001 bytes = 976.5… KiB, rounded down.
			name:   "rounds down to KiB",
			memory: &kubevirtv1.Memory{Guest: qty("1000001")},
			want: &libvirtxml.Domain{
				Memory:        &libvirtxml.DomainMemory{Value: 976, Unit: "KiB"},
				CurrentMemory: &libvirtxml.DomainCurrentMemory{Value: 976, Unit: "KiB"},
			},
		},
		{
			name:  "missing",
			want:  &libvirtxml.Domain{},
			diags: []diagLine{{"error", "spec.template.spec.domain.memory.guest", "invalid: no guest memory: set domain.memory.guest or domain.resources.requests.memory"}},
		},
		{
			name:   "below 1Ki",
			memory: &kubevirtv1.Memory{Guest: qty("512")},
			want:   &libvirtxml.Domain{},
			diags:  []diagLine{{"error", "spec.template.spec.domain.memory.guest", "invalid: guest memory 512 is less than 1Ki"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := kubevirtv1.VirtualMachineInstanceSpec{}
			spec.Domain.Memory = tc.memory
			dom, out := run(configureMemory, testInput(spec))
			if diff := cmp.Diff(tc.want, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.diags, diagLines(out)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}
