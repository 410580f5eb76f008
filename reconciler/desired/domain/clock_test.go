package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureClock(t *testing.T) {
	tz := kubevirtv1.ClockOffsetTimezone("America/New_York")
	for _, tc := range []struct {
		name      string
		clock     *kubevirtv1.Clock
		want      *libvirtxml.DomainClock
		wantDiags []diagLine
	}{
		{name: "no clock: libvirt's default, no element"},
		{
			name:  "utc resets to the host's time each boot",
			clock: &kubevirtv1.Clock{ClockOffset: kubevirtv1.ClockOffset{UTC: &kubevirtv1.ClockOffsetUTC{}}},
			want:  &libvirtxml.DomainClock{Offset: "utc", Adjustment: "reset"},
		},
		{
			name:  "utc with an offset keeps it",
			clock: &kubevirtv1.Clock{ClockOffset: kubevirtv1.ClockOffset{UTC: &kubevirtv1.ClockOffsetUTC{OffsetSeconds: ptr(7200)}}},
			want:  &libvirtxml.DomainClock{Offset: "utc", Adjustment: "7200"},
		},
		{
			name:  "timezone",
			clock: &kubevirtv1.Clock{ClockOffset: kubevirtv1.ClockOffset{Timezone: &tz}},
			want:  &libvirtxml.DomainClock{Offset: "timezone", TimeZone: "America/New_York"},
		},
		{
			name:      "utc and timezone: utc, and the timezone is named",
			clock:     &kubevirtv1.Clock{ClockOffset: kubevirtv1.ClockOffset{UTC: &kubevirtv1.ClockOffsetUTC{}, Timezone: &tz}},
			want:      &libvirtxml.DomainClock{Offset: "utc", Adjustment: "reset"},
			wantDiags: []diagLine{{"warning", "spec.template.spec.domain.clock.timezone", "ignored: utc is set too, and KubeVirt uses utc then"}},
		},
		{
			name: "timers only: offset utc, as libvirt assumes",
			clock: &kubevirtv1.Clock{Timer: &kubevirtv1.Timer{
				HPET:   &kubevirtv1.HPETTimer{Enabled: ptr(false)},
				KVM:    &kubevirtv1.KVMTimer{Enabled: ptr(true)},
				PIT:    &kubevirtv1.PITTimer{TickPolicy: kubevirtv1.PITTickPolicyDelay},
				RTC:    &kubevirtv1.RTCTimer{TickPolicy: kubevirtv1.RTCTickPolicyCatchup, Track: kubevirtv1.TrackGuest},
				Hyperv: &kubevirtv1.HypervTimer{},
			}},
			// KubeVirt's order, whatever the YAML's.
			want: &libvirtxml.DomainClock{Offset: "utc", Timer: []libvirtxml.DomainTimer{
				{Name: "rtc", TickPolicy: "catchup", Track: "guest", Present: "yes"},
				{Name: "pit", TickPolicy: "delay", Present: "yes"},
				{Name: "kvmclock", Present: "yes"},
				{Name: "hpet", Present: "no"},
				{Name: "hypervclock", Present: "yes"},
			}},
		},
		{
			name: "timers switched off",
			clock: &kubevirtv1.Clock{Timer: &kubevirtv1.Timer{
				RTC: &kubevirtv1.RTCTimer{Enabled: ptr(false)}, Hyperv: &kubevirtv1.HypervTimer{Enabled: ptr(false)},
			}},
			want: &libvirtxml.DomainClock{Offset: "utc", Timer: []libvirtxml.DomainTimer{
				{Name: "rtc", Present: "no"}, {Name: "hypervclock", Present: "no"},
			}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := kubevirtv1.VirtualMachineInstanceSpec{}
			spec.Domain.Clock = tc.clock
			dom, out := run(configureClock, testInput(spec))
			if diff := cmp.Diff(&libvirtxml.Domain{Clock: tc.want}, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantDiags, diagLines(out)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}

// Without KVM the kvm and hyperv timers are written (KubeVirt's domain) but
// the guest gets neither clock: each draws a warning when switched on.
func TestConfigureClock_withoutKVM(t *testing.T) {
	spec := kubevirtv1.VirtualMachineInstanceSpec{}
	spec.Domain.Clock = &kubevirtv1.Clock{Timer: &kubevirtv1.Timer{
		KVM: &kubevirtv1.KVMTimer{}, Hyperv: &kubevirtv1.HypervTimer{}, HPET: &kubevirtv1.HPETTimer{Enabled: ptr(false)},
	}}
	in := testInput(spec)
	const why = "ignored: domain type qemu (no KVM on this host): QEMU gives guests Hyper-V and KVM paravirtual features only through KVM, so "
	for typ, want := range map[string][]diagLine{
		"kvm": nil,
		"qemu": {
			{"warning", "spec.template.spec.domain.clock.timer.kvm", why + "the guest has no kvm-clock"},
			{"warning", "spec.template.spec.domain.clock.timer.hyperv", why + "the guest has no Hyper-V reference clock"},
		},
	} {
		t.Run(typ, func(t *testing.T) {
			dom := &libvirtxml.Domain{}
			out := &output{object: in.Object, prefix: in.PathPrefix}
			ctx := testContext
			ctx.Type = typ
			configureClock(in, ctx, dom, out)
			if n := len(dom.Clock.Timer); n != 3 {
				t.Errorf("%d timers, want all 3 written", n)
			}
			if diff := cmp.Diff(want, diagLines(out)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}
