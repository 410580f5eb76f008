package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureIdentity(t *testing.T) {
	terminate := kubevirtv1.RebootPolicyTerminate
	reboot := kubevirtv1.RebootPolicyReboot
	for _, tc := range []struct {
		name   string
		policy *kubevirtv1.RebootPolicy
		reboot string
	}{
		{name: "default", reboot: "restart"},
		{name: "Reboot", policy: &reboot, reboot: "restart"},
		{name: "Terminate", policy: &terminate, reboot: "destroy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := kubevirtv1.VirtualMachineInstanceSpec{}
			spec.Domain.RebootPolicy = tc.policy
			dom, out := run(configureIdentity, testInput(spec))
			want := &libvirtxml.Domain{
				Type:       "kvm",
				Name:       "lab_vm",
				UUID:       "0d3a1b7e-6f2c-4c1d-9a55-3e2f1f0c7a10",
				OnPoweroff: "destroy",
				OnReboot:   tc.reboot,
				OnCrash:    "destroy",
			}
			if diff := cmp.Diff(want, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if len(out.diags) != 0 || len(out.artifacts) != 0 {
				t.Errorf("unexpected report: %v %v", out.diags, out.artifacts)
			}
		})
	}
}
