package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureFeatures(t *testing.T) {
	acpi := &libvirtxml.DomainFeature{}
	for _, tc := range []struct {
		name     string
		features *kubevirtv1.Features
		want     *libvirtxml.Domain
	}{
		{name: "no features: ACPI on", want: &libvirtxml.Domain{Features: &libvirtxml.DomainFeatureList{ACPI: acpi}}},
		{
			name:     "ACPI off leaves no features element",
			features: &kubevirtv1.Features{ACPI: kubevirtv1.FeatureState{Enabled: ptr(false)}},
			want:     &libvirtxml.Domain{},
		},
		{
			name: "apic with EOI and smm",
			features: &kubevirtv1.Features{
				APIC: &kubevirtv1.FeatureAPIC{EndOfInterrupt: true},
				SMM:  &kubevirtv1.FeatureState{},
			},
			want: &libvirtxml.Domain{Features: &libvirtxml.DomainFeatureList{
				ACPI: acpi, APIC: &libvirtxml.DomainFeatureAPIC{EOI: "on"}, SMM: &libvirtxml.DomainFeatureSMM{State: "on"},
			}},
		},
		{
			name: "disabled apic and smm are left out",
			features: &kubevirtv1.Features{
				APIC: &kubevirtv1.FeatureAPIC{FeatureState: kubevirtv1.FeatureState{Enabled: ptr(false)}},
				SMM:  &kubevirtv1.FeatureState{Enabled: ptr(false)},
			},
			want: &libvirtxml.Domain{Features: &libvirtxml.DomainFeatureList{ACPI: acpi}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := kubevirtv1.VirtualMachineInstanceSpec{}
			spec.Domain.Features = tc.features
			dom, _ := run(configureFeatures, testInput(spec))
			if diff := cmp.Diff(tc.want, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
		})
	}
}
