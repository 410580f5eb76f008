package domain

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// Each difference a guest notices is one warning per VM, only when asked.
func TestReportDifferences(t *testing.T) {
	var spec kubevirtv1.VirtualMachineInstanceSpec
	spec.Networks = []kubevirtv1.Network{
		{Name: "a", NetworkSource: kubevirtv1.NetworkSource{Pod: &kubevirtv1.PodNetwork{}}},
		{Name: "b", NetworkSource: kubevirtv1.NetworkSource{Multus: &kubevirtv1.MultusNetwork{NetworkName: "br"}}},
	}
	masq := kubevirtv1.InterfaceBindingMethod{Masquerade: &kubevirtv1.InterfaceMasquerade{}}
	spec.Domain.Devices.Interfaces = []kubevirtv1.Interface{
		{Name: "b", InterfaceBindingMethod: masq},
		{Name: "a", InterfaceBindingMethod: masq},
	}
	ctx := testContext
	ctx.ReportDifferences = true
	run := func(in Input, ctx Context) []diagLine {
		out := &output{object: in.Object, prefix: in.PathPrefix}
		reportDifferences(in, ctx, nil, out)
		for _, d := range out.diags {
			if !errors.Is(d, ErrDiffers) {
				t.Errorf("%v is not ErrDiffers", d)
			}
		}
		return diagLines(out)
	}

	vm := testInput(spec)
	want := []diagLine{
		{"warning", "spec.template.spec.domain.devices.interfaces[1].masquerade", "differs from KubeVirt: " + differsPodNetwork},
		{"warning", "spec.template.spec.domain.cpu", "differs from KubeVirt: " + differsCPUHotplug},
	}
	if diff := cmp.Diff(want, run(vm, ctx)); diff != "" {
		t.Errorf("VirtualMachine (-want +got):\n%s", diff)
	}

	// A VMI gets no hotplug slots from KubeVirt either; a VM that sets
	// maxSockets is warned by the support table instead.
	vmi := testInput(spec)
	vmi.PathPrefix = "spec"
	if got := run(vmi, ctx); len(got) != 1 || got[0].Path != "spec.domain.devices.interfaces[1].masquerade" {
		t.Errorf("VirtualMachineInstance: %v", got)
	}
	vm.Spec.Domain.CPU = &kubevirtv1.CPU{Sockets: 1, MaxSockets: 4}
	vm.Spec.Domain.Devices.Interfaces = vm.Spec.Domain.Devices.Interfaces[:1]
	if got := run(vm, ctx); len(got) != 0 {
		t.Errorf("bridge-only VM with maxSockets: %v", got)
	}

	if got := run(testInput(spec), testContext); len(got) != 0 {
		t.Errorf("not asked for, but reported: %v", got)
	}
}
