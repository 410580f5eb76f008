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

func TestConfigureFeatures_hyperv(t *testing.T) {
	on, off := &libvirtxml.DomainFeatureState{State: "on"}, &libvirtxml.DomainFeatureState{State: "off"}
	acpi := &libvirtxml.DomainFeature{}
	for _, tc := range []struct {
		name     string
		features *kubevirtv1.Features
		cpu      *kubevirtv1.CPU
		want     *libvirtxml.DomainFeatureList
	}{
		{
			name: "states on unless disabled, spinlock retries and vendor id",
			features: &kubevirtv1.Features{Hyperv: &kubevirtv1.FeatureHyperv{
				Relaxed:   &kubevirtv1.FeatureState{},
				VAPIC:     &kubevirtv1.FeatureState{Enabled: ptr(false)},
				Spinlocks: &kubevirtv1.FeatureSpinlocks{Retries: ptr(uint32(8191))},
				VendorID:  &kubevirtv1.FeatureVendorID{VendorID: "KubeVirt"},
				SyNICTimer: &kubevirtv1.SyNICTimer{
					FeatureState: kubevirtv1.FeatureState{Enabled: ptr(true)},
					Direct:       &kubevirtv1.FeatureState{Enabled: ptr(false)},
				},
				TLBFlush: &kubevirtv1.TLBFlush{},
				EVMCS:    &kubevirtv1.FeatureState{},
			}},
			want: &libvirtxml.DomainFeatureList{ACPI: acpi, HyperV: &libvirtxml.DomainFeatureHyperV{
				Relaxed:   on,
				VAPIC:     off,
				Spinlocks: &libvirtxml.DomainFeatureHyperVSpinlocks{DomainFeatureState: *on, Retries: 8191},
				VendorId:  &libvirtxml.DomainFeatureHyperVVendorId{DomainFeatureState: *on, Value: "KubeVirt"},
				STimer:    &libvirtxml.DomainFeatureHyperVSTimer{DomainFeatureState: *on, Direct: off},
				TLBFlush:  &libvirtxml.DomainFeatureHyperVTLBFlush{DomainFeatureState: *on},
				EVMCS:     on,
			}},
		},
		{
			name: "disabled spinlocks and vendor id carry no value",
			features: &kubevirtv1.Features{Hyperv: &kubevirtv1.FeatureHyperv{
				Spinlocks: &kubevirtv1.FeatureSpinlocks{FeatureState: kubevirtv1.FeatureState{Enabled: ptr(false)}},
				VendorID:  &kubevirtv1.FeatureVendorID{FeatureState: kubevirtv1.FeatureState{Enabled: ptr(false)}, VendorID: "ignored"},
			}},
			want: &libvirtxml.DomainFeatureList{ACPI: acpi, HyperV: &libvirtxml.DomainFeatureHyperV{
				Spinlocks: &libvirtxml.DomainFeatureHyperVSpinlocks{DomainFeatureState: *off},
				VendorId:  &libvirtxml.DomainFeatureHyperVVendorId{DomainFeatureState: *off},
			}},
		},
		{
			name:     "spinlocks without retries get the API default",
			features: &kubevirtv1.Features{Hyperv: &kubevirtv1.FeatureHyperv{Spinlocks: &kubevirtv1.FeatureSpinlocks{}}},
			want: &libvirtxml.DomainFeatureList{ACPI: acpi, HyperV: &libvirtxml.DomainFeatureHyperV{
				Spinlocks: &libvirtxml.DomainFeatureHyperVSpinlocks{DomainFeatureState: *on, Retries: 4096},
			}},
		},
		{
			name:     "passthrough",
			features: &kubevirtv1.Features{HypervPassthrough: &kubevirtv1.HyperVPassthrough{Enabled: ptr(true)}},
			want:     &libvirtxml.DomainFeatureList{ACPI: acpi, HyperV: &libvirtxml.DomainFeatureHyperV{Mode: "passthrough"}},
		},
		{
			name:     "passthrough not enabled",
			features: &kubevirtv1.Features{HypervPassthrough: &kubevirtv1.HyperVPassthrough{}},
			want:     &libvirtxml.DomainFeatureList{ACPI: acpi},
		},
		{
			name: "explicit enlightenments win over passthrough, as in KubeVirt",
			features: &kubevirtv1.Features{
				HypervPassthrough: &kubevirtv1.HyperVPassthrough{Enabled: ptr(true)},
				Hyperv:            &kubevirtv1.FeatureHyperv{Relaxed: &kubevirtv1.FeatureState{}},
			},
			want: &libvirtxml.DomainFeatureList{ACPI: acpi, HyperV: &libvirtxml.DomainFeatureHyperV{Relaxed: on}},
		},
		{
			name:     "kvm hidden, pvspinlock off",
			features: &kubevirtv1.Features{KVM: &kubevirtv1.FeatureKVM{Hidden: true}, Pvspinlock: &kubevirtv1.FeatureState{Enabled: ptr(false)}},
			want:     &libvirtxml.DomainFeatureList{ACPI: acpi, KVM: &libvirtxml.DomainFeatureKVM{Hidden: on}, PVSpinlock: off},
		},
		{
			name:     "kvm without hidden and pvspinlock on",
			features: &kubevirtv1.Features{KVM: &kubevirtv1.FeatureKVM{}, Pvspinlock: &kubevirtv1.FeatureState{}},
			want:     &libvirtxml.DomainFeatureList{ACPI: acpi, KVM: &libvirtxml.DomainFeatureKVM{Hidden: off}, PVSpinlock: on},
		},
		{
			name:     "kvm hidden and the dedicated-CPU hint share <kvm>",
			features: &kubevirtv1.Features{KVM: &kubevirtv1.FeatureKVM{Hidden: true}},
			cpu:      &kubevirtv1.CPU{DedicatedCPUPlacement: true},
			want:     &libvirtxml.DomainFeatureList{ACPI: acpi, KVM: &libvirtxml.DomainFeatureKVM{Hidden: on, HintDedicated: on}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := kubevirtv1.VirtualMachineInstanceSpec{}
			spec.Domain.Features = tc.features
			spec.Domain.CPU = tc.cpu
			dom, out := run(configureFeatures, testInput(spec))
			if diff := cmp.Diff(&libvirtxml.Domain{Features: tc.want}, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if len(out.diags) != 0 {
				t.Errorf("unexpected diagnostics: %v", diagLines(out))
			}
		})
	}
}

// Values libvirt would refuse at define are named with their field.
func TestConfigureFeatures_hypervInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		hv   kubevirtv1.FeatureHyperv
		want []diagLine
	}{
		{
			name: "too few spinlock retries",
			hv:   kubevirtv1.FeatureHyperv{Spinlocks: &kubevirtv1.FeatureSpinlocks{Retries: ptr(uint32(100))}},
			want: []diagLine{{"error", "spec.template.spec.domain.features.hyperv.spinlocks.spinlocks", "invalid: 100 spinlock retries: Hyper-V needs at least 4095"}},
		},
		{
			name: "vendor id too long",
			hv:   kubevirtv1.FeatureHyperv{VendorID: &kubevirtv1.FeatureVendorID{VendorID: "ThirteenChars"}},
			want: []diagLine{{"error", "spec.template.spec.domain.features.hyperv.vendorid.vendorid", `invalid: "ThirteenChars" is 13 characters long; a Hyper-V vendor ID has at most 12`}},
		},
		{
			name: "vendor id without a value",
			hv:   kubevirtv1.FeatureHyperv{VendorID: &kubevirtv1.FeatureVendorID{}},
			want: []diagLine{{"error", "spec.template.spec.domain.features.hyperv.vendorid", "invalid: vendorid is enabled without a vendorid value"}},
		},
		{
			name: "tlbflush direct and extended",
			hv: kubevirtv1.FeatureHyperv{TLBFlush: &kubevirtv1.TLBFlush{
				Direct: &kubevirtv1.FeatureState{}, Extended: &kubevirtv1.FeatureState{Enabled: ptr(true)},
			}},
			want: []diagLine{
				{"warning", "spec.template.spec.domain.features.hyperv.tlbflush.direct", "ignored: libvirt 9.0 has no Hyper-V tlbflush direct setting; the guest gets plain tlbflush"},
				{"warning", "spec.template.spec.domain.features.hyperv.tlbflush.extended", "ignored: libvirt 9.0 has no Hyper-V tlbflush extended setting; the guest gets plain tlbflush"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := kubevirtv1.VirtualMachineInstanceSpec{}
			spec.Domain.Features = &kubevirtv1.Features{Hyperv: &tc.hv}
			_, out := run(configureFeatures, testInput(spec))
			if diff := cmp.Diff(tc.want, diagLines(out)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}

// Without KVM the guest sees no enlightenment, and QEMU refuses to start
// with the VP index ("kernel doesn't allow setting HyperV VP_INDEX"): it is
// left out, the others are written as KubeVirt writes them, and one warning
// says what the guest misses. libvirt refuses pvspinlock on there too.
func TestConfigureFeatures_withoutKVM(t *testing.T) {
	const why = "ignored: domain type qemu (no KVM on this host): QEMU gives guests Hyper-V and KVM paravirtual features only through KVM, so "
	for _, tc := range []struct {
		name      string
		typ       string
		features  kubevirtv1.Features
		want      *libvirtxml.DomainFeatureHyperV
		wantPV    *libvirtxml.DomainFeatureState
		wantDiags []diagLine
	}{
		{
			name:     "kvm",
			typ:      "kvm",
			features: kubevirtv1.Features{Hyperv: &kubevirtv1.FeatureHyperv{VPIndex: &kubevirtv1.FeatureState{}, SyNIC: &kubevirtv1.FeatureState{}}},
			want:     &libvirtxml.DomainFeatureHyperV{VPIndex: &libvirtxml.DomainFeatureState{State: "on"}, Synic: &libvirtxml.DomainFeatureState{State: "on"}},
		},
		{
			name:      "qemu",
			typ:       "qemu",
			features:  kubevirtv1.Features{Hyperv: &kubevirtv1.FeatureHyperv{VPIndex: &kubevirtv1.FeatureState{}, SyNIC: &kubevirtv1.FeatureState{}}},
			want:      &libvirtxml.DomainFeatureHyperV{Synic: &libvirtxml.DomainFeatureState{State: "on"}},
			wantDiags: []diagLine{{"warning", "spec.template.spec.domain.features.hyperv", why + "the guest sees no Hyper-V enlightenments (and vpindex is left out: QEMU refuses to start with it)"}},
		},
		{
			name:     "qemu, every enlightenment off: nothing the guest misses",
			typ:      "qemu",
			features: kubevirtv1.Features{Hyperv: &kubevirtv1.FeatureHyperv{Relaxed: &kubevirtv1.FeatureState{Enabled: ptr(false)}}},
			want:     &libvirtxml.DomainFeatureHyperV{Relaxed: &libvirtxml.DomainFeatureState{State: "off"}},
		},
		{
			name:      "qemu, passthrough",
			typ:       "qemu",
			features:  kubevirtv1.Features{HypervPassthrough: &kubevirtv1.HyperVPassthrough{Enabled: ptr(true)}},
			want:      &libvirtxml.DomainFeatureHyperV{Mode: "passthrough"},
			wantDiags: []diagLine{{"warning", "spec.template.spec.domain.features.hypervPassthrough", why + "the guest sees no Hyper-V enlightenments"}},
		},
		{
			name:      "qemu, pvspinlock on is left out: libvirt refuses it",
			typ:       "qemu",
			features:  kubevirtv1.Features{Pvspinlock: &kubevirtv1.FeatureState{}},
			wantDiags: []diagLine{{"warning", "spec.template.spec.domain.features.pvspinlock", why + "the guest has no paravirtual spinlocks"}},
		},
		{
			name:     "qemu, pvspinlock off is written",
			typ:      "qemu",
			features: kubevirtv1.Features{Pvspinlock: &kubevirtv1.FeatureState{Enabled: ptr(false)}},
			wantPV:   &libvirtxml.DomainFeatureState{State: "off"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := kubevirtv1.VirtualMachineInstanceSpec{}
			spec.Domain.Features = &tc.features
			in := testInput(spec)
			dom := &libvirtxml.Domain{}
			out := &output{object: in.Object, prefix: in.PathPrefix}
			ctx := testContext
			ctx.Type = tc.typ
			configureFeatures(in, ctx, dom, out)
			if diff := cmp.Diff(tc.want, dom.Features.HyperV); diff != "" {
				t.Errorf("<hyperv> (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantPV, dom.Features.PVSpinlock); diff != "" {
				t.Errorf("<pvspinlock> (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantDiags, diagLines(out)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}
