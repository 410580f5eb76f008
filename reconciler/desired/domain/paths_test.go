package domain

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// Even when validation is bypassed, a namespace, VM, volume or claim name
// that is not one clean path element never becomes a host path.
func TestConvert_namesThatAreNotPathElements(t *testing.T) {
	spec := func(vol, claim string) *kubevirtv1.VirtualMachineInstanceSpec {
		return &kubevirtv1.VirtualMachineInstanceSpec{
			Domain: kubevirtv1.DomainSpec{Memory: &kubevirtv1.Memory{Guest: ptr(resource.MustParse("64Mi"))}, Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{{Name: vol}, {Name: "c"}}}},
			Volumes: []kubevirtv1.Volume{
				{Name: vol, VolumeSource: kubevirtv1.VolumeSource{EmptyDisk: &kubevirtv1.EmptyDiskSource{Capacity: resource.MustParse("1Mi")}}},
				{Name: "c", VolumeSource: kubevirtv1.VolumeSource{DataVolume: &kubevirtv1.DataVolumeSource{Name: claim}}},
			},
		}
	}
	for _, tc := range []struct{ ns, name, vol, claim string }{
		{"default", "..", "d", "ok"},
		{"..", "x", "d", "ok"},
		{"default", "a/b", "d", "ok"},
		{"default", "vm", "d", "../../etc"},
		{"default", "vm", "d", ".."},
	} {
		res := Convert(Input{Namespace: tc.ns, Name: tc.name, Spec: spec(tc.vol, tc.claim), Object: "VirtualMachineInstance x", PathPrefix: "spec"}, testContext)
		if !res.Diags.HasErrors() {
			t.Errorf("%+v: converted without an error", tc)
		}
		for _, a := range res.Artifacts {
			if strings.Contains(a.Path, "..") {
				t.Errorf("%+v: artifact path %s", tc, a.Path)
			}
		}
		for _, d := range res.Diags.Errors() {
			if !errors.Is(d, ErrInvalid) || !strings.Contains(d.Message, "cannot be a directory on the host") {
				t.Errorf("%+v: %v", tc, d)
			}
		}
	}
}
