//go:build e2e

package e2e

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clockInit reports, again and again, what the guest's clock looks like:
// the RTC's time (the kernel reads the CMOS RTC as UTC, so an offset or a
// local-time RTC shows as a difference to the host's UTC), the clock
// sources the kernel found and uses, the hypervisor it detected, and how
// many ISA pvpanic devices (ACPI QEMU0001) it has.
const clockInit = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
cs=/sys/devices/system/clocksource/clocksource0
while true; do
  hv=$(/bin/busybox dmesg | /bin/busybox grep -o 'Hypervisor detected: [A-Za-z -]*' | /bin/busybox head -n 1)
  /bin/busybox echo "nodevirt-guest: clock rtc=$(/bin/busybox cat /sys/class/rtc/rtc0/since_epoch) current=$(/bin/busybox cat $cs/current_clocksource) available=$(/bin/busybox cat $cs/available_clocksource) hv=[$hv] panic=$(/bin/busybox ls /sys/bus/acpi/devices | /bin/busybox grep -c QEMU0001) end" > /dev/console
  /bin/busybox sleep 1
done
`

var clockLine = regexp.MustCompile(`nodevirt-guest: clock rtc=(\d+) current=(\S+) available=([^\r\n]*?) hv=\[([^\]\r\n]*)\] panic=(\d+) end`)

// guestClock is one report of clockInit, with the host's time when it was read.
type guestClock struct {
	rtcAhead           time.Duration // guest RTC minus host UTC
	current, available string
	hypervisor         string
	panics             string
}

func readGuestClock(t *testing.T, con *serialConsole) guestClock {
	t.Helper()
	con.await(t, "nodevirt-guest: clock", 2, 180*time.Second)
	now := time.Now()
	m := clockLine.FindAllStringSubmatch(stripTerminal(con.text()), -1)
	if len(m) == 0 {
		t.Fatalf("no complete clock report on %s:\n%s", con.dom, lastChars(stripTerminal(con.text()), 2000))
	}
	last := m[len(m)-1]
	rtc, err := strconv.ParseInt(last[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return guestClock{
		rtcAhead:   time.Unix(rtc, 0).Sub(now),
		current:    last[2],
		available:  strings.TrimSpace(last[3]),
		hypervisor: last[4],
		panics:     last[5],
	}
}

// near reports d within tolerance of want: the report is up to a second
// old and TCG guests are slow to print it.
func near(d, want time.Duration) bool {
	const tolerance = 90 * time.Second
	return d > want-tolerance && d < want+tolerance
}

// The guest sees domain.clock: a Windows-style VM (the windows preferences'
// Hyper-V set and timers, with a UTC offset) has no HPET and its RTC runs
// ahead by the offset; a VM whose clock is in a time zone keeps its RTC in
// local time and has the HPET QEMU gives by default, and the ISA pvpanic
// device its panicDevices ask for.
func TestFidelity_ClockReachesTheGuest(t *testing.T) {
	w := newWorld(t)
	g := w.guestVirt()
	g.log(t)
	kernelBootLayout(t, filepath.Join(w.hostRoot, hostImageDir, "kernel"), clockInit)
	const offset = 36 * time.Hour
	vm := func(name, devices, domain string) string {
		return `---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: ` + name + `, namespace: ` + w.ns + `}
spec:
  runStrategy: Always
  template:
    spec:
      terminationGracePeriodSeconds: 0
      domain:
` + fidelityCPU + `        memory: {guest: 256Mi}
        devices: ` + devices + `
        firmware:
          kernelBoot:
            container: {image: "oci:` + hostImageDir + `/kernel", kernelPath: /boot/vmlinuz, initrdPath: /boot/initrd}
            kernelArgs: console=ttyS0
` + domain
	}
	w.commit("clock VMs", map[string]string{"vms/clock.yaml": vm("winclock", "{}", `        features:
          hyperv:
            relaxed: {}
            vapic: {}
            vpindex: {}
            spinlocks: {spinlocks: 8191}
            synic: {}
            synictimer: {direct: {}}
            tlbflush: {}
            frequencies: {}
            reenlightenment: {}
            ipi: {}
            runtime: {}
            reset: {}
        clock:
          utc: {offsetSeconds: `+strconv.Itoa(int(offset.Seconds()))+`}
          timer:
            hpet: {present: false}
            pit: {tickPolicy: delay}
            rtc: {tickPolicy: catchup}
            hyperv: {}
`) + vm("tzclock", "{panicDevices: [{model: isa}]}", `        clock:
          timezone: Asia/Kolkata
`)})
	w.startAgent()
	w.awaitAgentFirstBoot("winclock", 90*time.Second)
	w.awaitAgentFirstBoot("tzclock", 90*time.Second)

	winXML := virsh(t, "dumpxml", w.dom("winclock"))
	for _, want := range []string{`<timer name='hpet' present='no'/>`, `<timer name='hypervclock' present='yes'/>`, `<relaxed state='on'/>`, `<stimer state='on'>`} {
		if !strings.Contains(winXML, want) {
			t.Errorf("live winclock domain lacks %s:\n%s", want, winXML)
		}
	}

	win := readGuestClock(t, attachConsole(t, w.dom("winclock")))
	t.Logf("winclock: RTC ahead %s, clocksource %s of [%s], hypervisor [%s], pvpanic devices %s", win.rtcAhead.Round(time.Second), win.current, win.available, win.hypervisor, win.panics)
	if !near(win.rtcAhead, offset) {
		t.Errorf("winclock's RTC is %s ahead of the host's UTC, want about %s (utc.offsetSeconds)", win.rtcAhead.Round(time.Second), offset)
	}
	if strings.Contains(win.available, "hpet") {
		t.Errorf("winclock's guest has an HPET clock source (%s) though hpet.present is false", win.available)
	}
	if g.tcg {
		// QEMU fills the Hyper-V CPUID leaves only through KVM: under TCG
		// it starts with the enlightenments but the guest sees none, as
		// the README says.
		if win.hypervisor != "" {
			t.Errorf("under TCG the guest detected a hypervisor (%s); the README says it sees no Hyper-V there: update it", win.hypervisor)
		}
	} else {
		if win.hypervisor != "Hypervisor detected: Microsoft Hyper-V" || win.current != "hyperv_clocksource_tsc_page" {
			t.Errorf("with KVM the guest should find Hyper-V and its reference TSC page (hypervclock); it found [%s], clocksource %s", win.hypervisor, win.current)
		}
	}

	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	_, east := time.Now().In(kolkata).Zone()
	tz := readGuestClock(t, attachConsole(t, w.dom("tzclock")))
	t.Logf("tzclock: RTC ahead %s, clocksource %s of [%s], hypervisor [%s], pvpanic devices %s", tz.rtcAhead.Round(time.Second), tz.current, tz.available, tz.hypervisor, tz.panics)
	if want := time.Duration(east) * time.Second; !near(tz.rtcAhead, want) {
		t.Errorf("tzclock's RTC is %s ahead of the host's UTC, want about %s (Asia/Kolkata local time)", tz.rtcAhead.Round(time.Second), want)
	}
	if !strings.Contains(tz.available, "hpet") {
		t.Errorf("tzclock's guest has no HPET clock source (%s), though its clock leaves the timers alone", tz.available)
	}
	// The panic device: the guest's ACPI tables list QEMU's pvpanic port.
	if win.panics != "0" || tz.panics != "1" {
		t.Errorf("pvpanic devices seen: winclock %s (has none), tzclock %s (has one, model isa)", win.panics, tz.panics)
	}
}
