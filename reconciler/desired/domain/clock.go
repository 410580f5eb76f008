package domain

import (
	"strconv"

	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// configureClock owns <clock>: the guest's RTC offset and its timers, as
// KubeVirt's clock configurator maps domain.clock. Without domain.clock
// there is no <clock>, as in KubeVirt: libvirt's default is UTC with
// QEMU's default timers.
//
// KubeVirt also adds <timer name=tsc frequency> when a VM that must stay
// migratable (Hyper-V reenlightenment, invtsc) runs in a cluster whose
// nodes differ in TSC frequency; one host has nowhere to migrate to, so
// nodevirt leaves the guest the host's TSC frequency.
func configureClock(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	c := in.Spec.Domain.Clock
	if c == nil {
		return
	}
	// libvirt's schema requires offset; utc is what libvirt assumes when a
	// domain leaves it out (KubeVirt's <clock> without an offset).
	clock := &libvirtxml.DomainClock{Offset: "utc"}
	switch {
	case c.UTC != nil:
		// adjustment=reset starts the guest on the host's UTC time each
		// boot; with an offset the guest's own changes persist.
		clock.Adjustment = "reset"
		if s := c.UTC.OffsetSeconds; s != nil {
			clock.Adjustment = strconv.Itoa(*s)
		}
		if c.Timezone != nil {
			out.add(diag.Warning, ErrIgnored, "domain.clock.timezone", "ignored: utc is set too, and KubeVirt uses utc then")
		}
	case c.Timezone != nil:
		clock.Offset = "timezone"
		clock.TimeZone = string(*c.Timezone)
	}
	if t := c.Timer; t != nil {
		// KubeVirt's order: rtc, pit, kvmclock, hpet, hypervclock.
		if r := t.RTC; r != nil {
			clock.Timer = append(clock.Timer, libvirtxml.DomainTimer{
				Name: "rtc", TickPolicy: string(r.TickPolicy), Track: string(r.Track), Present: yesNo(enabled(r.Enabled)),
			})
		}
		if p := t.PIT; p != nil {
			clock.Timer = append(clock.Timer, libvirtxml.DomainTimer{
				Name: "pit", TickPolicy: string(p.TickPolicy), Present: yesNo(enabled(p.Enabled)),
			})
		}
		if k := t.KVM; k != nil {
			clock.Timer = append(clock.Timer, libvirtxml.DomainTimer{Name: "kvmclock", Present: yesNo(enabled(k.Enabled))})
			if enabled(k.Enabled) && ctx.Type != "kvm" {
				out.add(diag.Warning, ErrIgnored, "domain.clock.timer.kvm", "ignored: %s", withoutKVM(ctx, "the guest has no kvm-clock"))
			}
		}
		if h := t.HPET; h != nil {
			clock.Timer = append(clock.Timer, libvirtxml.DomainTimer{
				Name: "hpet", TickPolicy: string(h.TickPolicy), Present: yesNo(enabled(h.Enabled)),
			})
		}
		if h := t.Hyperv; h != nil {
			clock.Timer = append(clock.Timer, libvirtxml.DomainTimer{Name: "hypervclock", Present: yesNo(enabled(h.Enabled))})
			if enabled(h.Enabled) && ctx.Type != "kvm" {
				out.add(diag.Warning, ErrIgnored, "domain.clock.timer.hyperv", "ignored: %s", withoutKVM(ctx, "the guest has no Hyper-V reference clock"))
			}
		}
	}
	dom.Clock = clock
}
