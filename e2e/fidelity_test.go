//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/runtime/hostfacts"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
)

// Issue 3, "VM fidelity": EFI with and without Secure Boot, and the i6300esb
// watchdog's actions against the runStrategy, on qemu:///system with real
// firmware and a real guest kernel.
//
// Run: go test -tags e2e -run 'TestFidelity' ./e2e/

// ---------------------------------------------------------------- host virt

// guestVirt is how the guests of these tests get a CPU on this host.
type guestVirt struct {
	// tcg: nodevirt's auto domain type here is TCG (type='qemu'), as on a
	// host whose KVM cannot run guest code.
	tcg bool
	why string
}

var (
	virtOnce sync.Once
	virtMode guestVirt
)

// detectGuestVirt asks nodevirt's own rule (hostfacts.ChooseDomainType,
// with libvirt as the probe) which domain type the agent defines here. Some
// hosts offer a /dev/kvm without VT-x/AMD-V (this CI machine: kvm_pvm, a
// software KVM, and no vmx/svm flag in /proc/cpuinfo): libvirt reports KVM
// domain capabilities there, but real guest code does not run (OVMF and
// isolinux stop with "KVM internal error. Suberror: 1 … emulation
// failure"), so the agent defines TCG domains.
func detectGuestVirt() guestVirt {
	virtOnce.Do(func() {
		dt, err := agentDomainType()
		switch {
		case err != nil:
			virtMode = guestVirt{tcg: true, why: err.Error()}
		case dt.Type == hostfacts.DomainKVM:
			virtMode = guestVirt{why: "hardware KVM"}
		default:
			why := dt.Fallback
			if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
				why += " (kvm_pvm, a software KVM, is loaded)"
			}
			virtMode = guestVirt{tcg: true, why: why}
			fmt.Fprintf(os.Stderr, "\n*** HOST LIMITATION: %s: nodevirt defines TCG domains (type='qemu') here; guests run slowly. ***\n\n", why)
		}
	})
	return virtMode
}

// guestVirt gives the world's host root this host's /proc/cpuinfo, as a
// real root has (the agent reads the CPU's virtualization flags under
// --root to choose the domain type), and says how guests run here.
func (w *world) guestVirt() guestVirt {
	w.t.Helper()
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		w.t.Fatal(err)
	}
	dir := filepath.Join(w.hostRoot, "proc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cpuinfo"), b, 0o644); err != nil {
		w.t.Fatal(err)
	}
	return detectGuestVirt()
}

// agentDomainType is the domain type `--domain-type auto` gives on this
// host, by the agent's own decision and probe.
func agentDomainType() (hostfacts.DomainType, error) {
	f, err := hostfacts.Gather("/")
	if err != nil {
		return hostfacts.DomainType{}, fmt.Errorf("host facts: %w", err)
	}
	return hostfacts.ChooseDomainType("auto", f, func() (string, error) {
		d, err := virt.Open(context.Background(), "qemu:///system")
		if err != nil {
			return "", err
		}
		defer d.Close()
		return d.DomainType(context.Background(), f.Arch)
	})
}

func (g guestVirt) log(t *testing.T) {
	t.Helper()
	if g.tcg {
		t.Logf("HOST LIMITATION: %s; guests run under TCG (domain type='qemu', chosen by the agent)", g.why)
	} else {
		t.Logf("guest virtualization: %s", g.why)
	}
}

// moveToTCG redefines the agent's domain with type='qemu' and brings it up
// running under TCG: it destroys a KVM instance (paused or hung) and starts
// the new definition, unless the agent started that already.
func (w *world) moveToTCG(dom string) {
	t := w.t
	t.Helper()
	x := virsh(t, "dumpxml", "--inactive", dom)
	switch {
	case strings.HasPrefix(x, "<domain type='kvm'"):
		x = strings.Replace(x, "<domain type='kvm'", "<domain type='qemu'", 1)
		f := filepath.Join(t.TempDir(), dom+".xml")
		if err := os.WriteFile(f, []byte(x), 0o644); err != nil {
			t.Fatal(err)
		}
		virsh(t, "define", f)
	case strings.HasPrefix(x, "<domain type='qemu'"):
	default:
		t.Fatalf("unexpected domain element in\n%s", x)
	}
	await(t, dom+" running under TCG", 30*time.Second, func() bool {
		switch domState(dom) {
		case "running":
			live, err := virshOK("dumpxml", dom)
			if err == nil && strings.HasPrefix(live, "<domain type='qemu'") {
				return true
			}
			_, _ = virshOK("destroy", dom)
		case "paused", "in shutdown":
			_, _ = virshOK("destroy", dom)
		case "shut off", "crashed":
			_, _ = virshOK("start", dom) // may race with the agent's own start: either is fine
		}
		return false
	})
}

// awaitAgentFirstBoot waits for the agent's first start of the VM and
// returns the running domain's id.
func (w *world) awaitAgentFirstBoot(name string, timeout time.Duration) string {
	w.t.Helper()
	w.awaitState(name, "running", timeout)
	return liveDomID(w.dom(name))
}

// ---------------------------------------------------------------- manifests

// The CPU keeps KubeVirt's default host-model but disables
// arch-capabilities: nested KVM hosts (this CI machine among them) cannot set
// the IA32_ARCH_CAPABILITIES MSR and QEMU aborts with "failed to set MSR
// 0x10a". Disabling it is what a KubeVirt user writes for such hosts.
const fidelityCPU = `        cpu:
          features:
            - name: arch-capabilities
              policy: disable
`

// efiVMYAML is a VM with OVMF. Without disk the firmware finds nothing to
// boot and tries PXE on the pod network; with one (a raw image) it tries
// that first. It prints all that on the serial console. secureBoot ""
// leaves it unset (KubeVirt: on).
func efiVMYAML(ns, name, secureBoot string, smm bool, disk string) string {
	efi := "efi: {}"
	if secureBoot != "" {
		efi = "efi:\n              secureBoot: " + secureBoot
	}
	features := ""
	if smm {
		features = "        features:\n          smm: {}\n"
	}
	devices, volumes := "", ""
	if disk != "" {
		devices = "        devices:\n          disks:\n            - name: esp\n              disk:\n                bus: sata\n"
		volumes = "      volumes:\n        - name: esp\n          containerDisk:\n            image: file://" + disk + "\n"
	}
	return fmt.Sprintf(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: %s
  namespace: %s
spec:
  runStrategy: Always
  template:
    spec:
      terminationGracePeriodSeconds: 0
      domain:
%s        memory:
          guest: 256Mi
%s%s        firmware:
          bootloader:
            %s
%s`, name, ns, fidelityCPU, features, devices, efi, volumes)
}

// watchdogVMYAML boots the watchdog guest ISO from a SATA CD-ROM
// (containerDisk over a local file) with SeaBIOS.
func watchdogVMYAML(ns, name, runStrategy, memory, action, iso string) string {
	return fmt.Sprintf(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: %s
  namespace: %s
spec:
  runStrategy: %s
  template:
    spec:
      terminationGracePeriodSeconds: 0
      domain:
%s        memory:
          guest: %s
        devices:
          watchdog:
            name: wd
            i6300esb:
              action: %s
          disks:
            - name: boot
              bootOrder: 1
              cdrom:
                bus: sata
      volumes:
        - name: boot
          containerDisk:
            image: file://%s
`, name, ns, runStrategy, fidelityCPU, memory, action, iso)
}

// ---------------------------------------------------------------- EFI

// liveFirmware is what libvirt chose for <os firmware='efi'>, from the live XML.
type liveFirmware struct {
	Type string `xml:"type,attr"`
	OS   struct {
		Loader struct {
			Readonly string `xml:"readonly,attr"`
			Secure   string `xml:"secure,attr"`
			Type     string `xml:"type,attr"`
			Path     string `xml:",chardata"`
		} `xml:"loader"`
		NVRAM struct {
			Template string `xml:"template,attr"`
			Path     string `xml:",chardata"`
		} `xml:"nvram"`
	} `xml:"os"`
	Features struct {
		SMM *struct {
			State string `xml:"state,attr"`
		} `xml:"smm"`
	} `xml:"features"`
}

func firmwareOf(t *testing.T, dom string) liveFirmware {
	t.Helper()
	live := virsh(t, "dumpxml", dom)
	var f liveFirmware
	if err := xml.Unmarshal([]byte(live), &f); err != nil {
		t.Fatalf("live XML of %s: %v", dom, err)
	}
	f.OS.Loader.Path = strings.TrimSpace(f.OS.Loader.Path)
	f.OS.NVRAM.Path = strings.TrimSpace(f.OS.NVRAM.Path)
	if f.OS.Loader.Path == "" || f.OS.NVRAM.Path == "" {
		t.Fatalf("no firmware loader/NVRAM in the live XML of %s:\n%s", dom, live)
	}
	return f
}

// OVMF's boot manager (edk2 BdsDxe) reports each boot option it tries on
// the serial console. The VM's disk holds a kernel signed by Debian only,
// which the Microsoft keys enrolled with Secure Boot do not trust.
var (
	ovmfDenied  = regexp.MustCompile(`BdsDxe: failed to load (Boot[0-9A-F]{4} "UEFI QEMU HARDDISK[^"]*").*: Access Denied`)
	ovmfStarted = regexp.MustCompile(`BdsDxe: starting (Boot[0-9A-F]{4} "UEFI QEMU HARDDISK[^"]*")`)
)

// assertFirmwareRuns reads the serial console until OVMF prints want, checks
// it never printed forbidden, and that the domain keeps running.
func assertFirmwareRuns(t *testing.T, dom string, ev *libvirtEvents, want, forbidden *regexp.Regexp, timeout time.Duration) {
	t.Helper()
	stopsBefore := ev.count(dom, "Stopped") + ev.count(dom, "Suspended")
	con := attachConsole(t, dom)
	start := time.Now()
	var m []string
	for m == nil && time.Since(start) < timeout {
		m = want.FindStringSubmatch(stripTerminal(con.text()))
		time.Sleep(200 * time.Millisecond)
	}
	out := stripTerminal(con.text())
	if m == nil {
		t.Fatalf("OVMF did not print %q on the serial console of %s within %s; it shows:\n%s",
			want, dom, timeout, lastChars(out, 3000))
	}
	if f := forbidden.FindString(out); f != "" {
		t.Fatalf("OVMF printed %q on the serial console of %s:\n%s", f, dom, lastChars(out, 3000))
	}
	t.Logf("OVMF runs: %s after attaching the serial console it printed %q; console:\n%s",
		time.Since(start).Round(100*time.Millisecond), m[0], lastChars(strings.TrimSpace(out), 800))
	time.Sleep(2 * time.Second)
	if s := domState(dom); s != "running" {
		t.Fatalf("%s must stay running under OVMF, it is %s (%s)\n%s", dom, s, domStateReason(dom), lastChars(libvirtQEMULog(dom), 2000))
	}
	if n := ev.count(dom, "Stopped") + ev.count(dom, "Suspended"); n != stopsBefore {
		t.Fatalf("%s stopped or paused while OVMF ran; events:\n%s", dom, strings.Join(ev.of(dom), "\n"))
	}
}

// assertNVRAM checks libvirt made the VM its own variable store from the template.
func assertNVRAM(t *testing.T, dom string, fw liveFirmware) {
	t.Helper()
	nv := fw.OS.NVRAM.Path
	if filepath.Base(nv) != dom+"_VARS.fd" {
		t.Fatalf("NVRAM %s is not this VM's (%s_VARS.fd)", nv, dom)
	}
	st, err := os.Stat(nv)
	if err != nil {
		t.Fatalf("NVRAM of %s: %v", dom, err)
	}
	tmpl, err := os.Stat(fw.OS.NVRAM.Template)
	if err != nil {
		t.Fatalf("NVRAM template of %s: %v", dom, err)
	}
	if st.Size() != tmpl.Size() {
		t.Fatalf("NVRAM %s has %d bytes, its template %s %d", nv, st.Size(), fw.OS.NVRAM.Template, tmpl.Size())
	}
}

// requireOVMF: libvirt picks EFI firmware from QEMU's firmware descriptors,
// which the ovmf package installs.
func requireOVMF(t *testing.T) {
	t.Helper()
	if d, _ := filepath.Glob("/usr/share/qemu/firmware/*.json"); len(d) == 0 {
		missingPrecondition(t, "no firmware descriptors in /usr/share/qemu/firmware; `make test` installs ovmf")
	}
}

// 1(a) Secure Boot with SMM: libvirt picks the Secure Boot OVMF build with
// the Microsoft keys enrolled, makes the VM an NVRAM file, and the firmware
// runs, enforces Secure Boot (refuses a kernel signed by Debian only, a key
// the enrolled Microsoft db does not hold) and keeps running.
func TestFidelity_EFISecureBoot(t *testing.T) {
	w := newWorld(t)
	requireOVMF(t)
	g := w.guestVirt()
	smm := true
	if _, err := os.Stat("/dev/kvm"); err == nil && !g.tcg {
		var err error
		if smm, err = kvmHasSMM(); err != nil {
			t.Fatalf("KVM_CHECK_EXTENSION(KVM_CAP_X86_SMM): %v", err)
		}
	}
	g.log(t)
	var args []string
	if !smm {
		t.Logf("HOST LIMITATION: this host's KVM has no SMM (KVM_CAP_X86_SMM is 0): QEMU refuses smm=on under KVM, so a Secure Boot VM cannot start under KVM here; the firmware is proven under TCG")
		args = []string{"--self-heal=false"}
	}
	ev := watchEvents(t)
	w.commit("secure boot VM", map[string]string{"vms/efi.yaml": efiVMYAML(w.ns, "efi", "true", true, w.hostImage(untrustedEFIDisk(t)))})
	a := w.startAgent(args...)
	dom := w.dom("efi")

	if !smm {
		// The agent's own start under KVM fails, and says why.
		await(t, "the agent's start of "+dom+" to fail for lack of SMM", 30*time.Second, func() bool {
			return strings.Contains(a.logs(), "System Management Mode not supported by this hypervisor")
		})
		// libvirt chose the Secure Boot firmware before QEMU refused.
		cmd := lastQEMUStart(libvirtQEMULog(dom))
		if !strings.Contains(cmd, "smm=on") || !strings.Contains(cmd, "property=secure,value=on") {
			t.Fatalf("QEMU command line lacks smm=on or the secure pflash:\n%s", lastChars(cmd, 4000))
		}
		t.Logf("under KVM the agent's start fails as expected here: %q", "System Management Mode not supported by this hypervisor")
		w.moveToTCG(dom)
	} else {
		w.awaitState("efi", "running", 30*time.Second)
	}

	fw := firmwareOf(t, dom)
	t.Logf("libvirt picked loader %s (secure=%q) and NVRAM template %s → %s",
		fw.OS.Loader.Path, fw.OS.Loader.Secure, fw.OS.NVRAM.Template, fw.OS.NVRAM.Path)
	if fw.OS.Loader.Secure != "yes" || fw.OS.Loader.Type != "pflash" || fw.OS.Loader.Readonly != "yes" {
		t.Fatalf("loader must be a read-only pflash with secure='yes': %+v", fw.OS.Loader)
	}
	if base := filepath.Base(fw.OS.Loader.Path); !strings.Contains(base, "secboot") && !strings.Contains(base, ".ms.") {
		t.Fatalf("loader %s is not a Secure Boot build of OVMF", fw.OS.Loader.Path)
	}
	if fw.Features.SMM == nil || fw.Features.SMM.State != "on" {
		t.Fatalf("live domain must have <smm state='on'/>: %+v", fw.Features.SMM)
	}
	assertNVRAM(t, dom, fw)
	// Secure Boot is enforced, not just named: the untrusted kernel is refused.
	assertFirmwareRuns(t, dom, ev, ovmfDenied, ovmfStarted, 55*time.Second)
}

// 1(b) secureBoot: false picks a build without Secure Boot (and without
// SMM); it runs and starts the kernel the Secure Boot VM refuses.
func TestFidelity_EFIWithoutSecureBoot(t *testing.T) {
	w := newWorld(t)
	requireOVMF(t)
	g := w.guestVirt()
	g.log(t)
	ev := watchEvents(t)
	w.commit("EFI VM", map[string]string{"vms/efi.yaml": efiVMYAML(w.ns, "efi", "false", false, w.hostImage(untrustedEFIDisk(t)))})
	w.startAgent()
	dom := w.dom("efi")
	w.awaitAgentFirstBoot("efi", 30*time.Second)

	fw := firmwareOf(t, dom)
	t.Logf("libvirt picked loader %s (secure=%q) and NVRAM template %s → %s",
		fw.OS.Loader.Path, fw.OS.Loader.Secure, fw.OS.NVRAM.Template, fw.OS.NVRAM.Path)
	if fw.OS.Loader.Secure == "yes" {
		t.Fatalf("secureBoot: false must not get a secure loader: %+v", fw.OS.Loader)
	}
	for _, p := range []string{fw.OS.Loader.Path, fw.OS.NVRAM.Template} {
		if b := filepath.Base(p); strings.Contains(b, "secboot") || strings.Contains(b, ".ms.") || strings.Contains(b, "snakeoil") {
			t.Fatalf("secureBoot: false got the Secure Boot file %s", p)
		}
	}
	if fw.Features.SMM != nil && fw.Features.SMM.State == "on" {
		t.Fatalf("no SMM was asked for, the live domain has it")
	}
	assertNVRAM(t, dom, fw)
	// Without Secure Boot the same kernel is started.
	assertFirmwareRuns(t, dom, ev, ovmfStarted, ovmfDenied, 55*time.Second)
}

// 1(c) efi: {} means Secure Boot, which needs SMM: validate names the field,
// and apply defines nothing for it.
func TestFidelity_EFISecureBootNeedsSMM(t *testing.T) {
	w := newWorld(t)
	smmOff := strings.Replace(efiVMYAML(w.ns, "smm-off", "true", false, ""), "      domain:\n",
		"      domain:\n        features:\n          smm:\n            enabled: false\n", 1)
	files := map[string]string{
		"vms/efi-default.yaml": efiVMYAML(w.ns, "efi-default", "", false, ""),
		"vms/smm-off.yaml":     smmOff,
		"vms/no-sb.yaml":       efiVMYAML(w.ns, "no-sb", "false", false, ""), // valid: no Secure Boot, no SMM needed
	}
	w.commit("EFI without SMM", files)

	out, errOut, err := w.nodevirt("validate", "-o", "json")
	if err == nil {
		t.Fatalf("validate must fail:\n%s%s", out, errOut)
	}
	var res struct {
		Diagnostics []struct {
			Severity, File, Object, Path, Message string
			Line, Column                          int
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("validate -o json: %v\n%s", err, out)
	}
	const path = "spec.template.spec.domain.firmware.bootloader.efi.secureBoot"
	const msg = "EFI Secure Boot requires SMM, which is disabled: set domain.features.smm or efi.secureBoot: false"
	lineOf := func(file, text string) int {
		for i, l := range strings.Split(files[file], "\n") {
			if strings.Contains(l, text) {
				return i + 1
			}
		}
		t.Fatalf("fixture %s has no %q", file, text)
		return 0
	}
	want := map[string]int{ // object → line the diagnostic points at
		"VirtualMachine " + w.ns + "/efi-default": lineOf("vms/efi-default.yaml", "efi: {}"),
		"VirtualMachine " + w.ns + "/smm-off":     lineOf("vms/smm-off.yaml", "secureBoot: true"),
	}
	for _, d := range res.Diagnostics {
		if d.Severity == "warning" && strings.HasPrefix(d.Message, domain.ErrDiffers.Error()) {
			continue // what the guest sees differently from KubeVirt: not this test's
		}
		line, ok := want[d.Object]
		if !ok {
			t.Errorf("unexpected diagnostic: %+v", d)
			continue
		}
		if d.Severity != "error" || d.Path != path || d.Message != msg || d.Line != line {
			t.Errorf("diagnostic for %s: got %+v, want error at line %d, path %s, message %q", d.Object, d, line, path, msg)
		}
		delete(want, d.Object)
	}
	for obj := range want {
		t.Errorf("no diagnostic for %s; got %+v", obj, res.Diagnostics)
	}
	// The human form: file:line:col: object: path: message.
	_, plain, _ := w.nodevirt("validate")
	wantLine := fmt.Sprintf("vms/efi-default.yaml:%d:", lineOf("vms/efi-default.yaml", "efi: {}"))
	if !strings.Contains(plain, wantLine) || !strings.Contains(plain, path+": "+msg) {
		t.Errorf("validate's text output must say %s…%s: %s:\n%s", wantLine, path, msg, plain)
	}

	// apply defines the valid VM and leaves the invalid ones alone.
	_, _, _ = w.nodevirt("apply")
	for _, n := range []string{"efi-default", "smm-off"} {
		if s := domState(w.dom(n)); s != "absent" {
			t.Errorf("invalid VM %s was defined (%s)", n, s)
		}
	}
	if s := domState(w.dom("no-sb")); s == "absent" {
		t.Errorf("the valid VM no-sb was not defined")
	}
}

// ---------------------------------------------------------------- watchdog

// agentStart matches the agent's plan line for starting a VM that stopped.
var agentStart = regexp.MustCompile(`msg=plan action=start object="VirtualMachine ([^"]+)" reason="runStrategy (\w+); domain is (?:shut off|shutoff) \(([^)]*)\)"`)

// startsAfter returns the reasons of the agent's start actions for the VM
// ns/name in the log after offset.
func startsAfter(log string, offset int, ns, name string) []string {
	var out []string
	for _, m := range agentStart.FindAllStringSubmatch(log[offset:], -1) {
		if m[1] == ns+"/"+name {
			out = append(out, m[3])
		}
	}
	return out
}

// 2(a) action poweroff with runStrategy Always: the watchdog powers the
// guest off and the agent starts it again.
func TestFidelity_WatchdogPoweroffAlwaysRestarts(t *testing.T) {
	src := watchdogGuestISO(t)
	w := newWorld(t)
	iso := w.hostImage(src)
	g := w.guestVirt()
	g.log(t)
	ev := watchEvents(t)
	w.commit("watchdog VM", map[string]string{"vms/wd.yaml": watchdogVMYAML(w.ns, "wd", "Always", "256Mi", "poweroff", iso)})
	begin := time.Now()
	a := w.startAgent()
	dom := w.dom("wd")
	id1 := w.awaitAgentFirstBoot("wd", 30*time.Second)
	con := attachConsole(t, dom)
	took := con.await(t, "nodevirt-guest: watchdog armed", 1, 45*time.Second)
	t.Logf("guest booted and armed the watchdog %s after the console attached", took.Round(100*time.Millisecond))

	logAt := len(a.logs())
	ev.await(t, dom, "event 'watchdog' for domain '"+dom+"': poweroff", 1, 3*guestHeartbeat*time.Second)
	ev.await(t, dom, "'lifecycle' for domain '"+dom+"': Stopped", 1, 15*time.Second)
	var id2 string
	restart := await(t, "the agent to start "+dom+" again", 30*time.Second, func() bool {
		id2 = liveDomID(dom)
		return domState(dom) == "running" && id2 != "" && id2 != "-" && id2 != id1
	})
	reasons := startsAfter(a.logs(), logAt, w.ns, "wd")
	if len(reasons) == 0 {
		t.Fatalf("agent log shows no start of the stopped VM after the watchdog fired:\n%s", a.logs()[logAt:])
	}
	stopped := lastLineWith(ev.of(dom), "Stopped")
	t.Logf("watchdog poweroff: libvirt event %q; the agent saw \"shut off (%s)\" and started it again (domain id %s → %s, %s after the stop)",
		stopped, reasons[0], id1, id2, restart.Round(100*time.Millisecond))
	// plan.go restarts RerunOnFailure VMs after "crashed" too, as KubeVirt
	// (crashed ⇒ Failed); a different reason would change that semantics.
	if reasons[0] != "crashed" {
		t.Errorf("watchdog poweroff: the agent saw shutoff reason %q; expected \"crashed\" (libvirt 9.0/QEMU 7.2)", reasons[0])
	}
	// The restarted guest boots again (under the same definition).
	con2 := attachConsole(t, dom)
	con2.await(t, "nodevirt-guest: booted", 1, 45*time.Second)
	t.Logf("whole test: %s", time.Since(begin).Round(100*time.Millisecond))
}

// 2(b) action poweroff, then the manifest says Halted: the agent does not
// start the VM again. The agent is down when the watchdog fires, so the
// powered-off VM is what a Halted revision finds; `nodevirt plan` shows that
// the Always revision would start it, the Halted one does not, and the
// agent applies the Halted revision (its new memory size reaches the
// definition) and leaves the VM off.
func TestFidelity_WatchdogPoweroffThenHaltedStaysOff(t *testing.T) {
	src := watchdogGuestISO(t)
	w := newWorld(t)
	iso := w.hostImage(src)
	g := w.guestVirt()
	g.log(t)
	ev := watchEvents(t)
	w.commit("watchdog VM", map[string]string{"vms/wd.yaml": watchdogVMYAML(w.ns, "wd", "Always", "256Mi", "poweroff", iso)})
	a := w.startAgent()
	dom := w.dom("wd")
	w.awaitAgentFirstBoot("wd", 30*time.Second)
	con := attachConsole(t, dom)
	con.await(t, "nodevirt-guest: watchdog armed", 1, 45*time.Second)
	a.stop()

	ev.await(t, dom, "event 'watchdog' for domain '"+dom+"': poweroff", 1, 3*guestHeartbeat*time.Second)
	w.awaitState("wd", "shut off", 15*time.Second)
	reason := domStateReason(dom)
	t.Logf("watchdog poweroff: virsh domstate --reason says %q; libvirt event %q", reason, lastLineWith(ev.of(dom), "Stopped"))
	if reason != "shut off (crashed)" {
		t.Errorf("watchdog poweroff: domstate --reason %q, expected \"shut off (crashed)\"", reason)
	}

	// Control: the Always revision would start it again.
	if acts := fidelityPlan(t, w); !planHas(acts, "start", w.ns, "wd") {
		t.Fatalf("with runStrategy Always the plan must start the powered-off VM; plan: %+v", acts)
	}
	hash := w.commit("halt it", map[string]string{"vms/wd.yaml": watchdogVMYAML(w.ns, "wd", "Halted", "320Mi", "poweroff", iso)})
	if acts := fidelityPlan(t, w); planHas(acts, "start", w.ns, "wd") || !planHas(acts, "update", w.ns, "wd") {
		t.Fatalf("with runStrategy Halted the plan must update the definition and not start the VM; plan: %+v", acts)
	}

	a2 := w.startAgent()
	await(t, "the agent to apply the Halted revision", 20*time.Second, func() bool {
		return strings.Contains(a2.logs(), hash) &&
			strings.Contains(virsh(t, "dumpxml", "--inactive", dom), "<memory unit='KiB'>327680</memory>")
	})
	// Several poll intervals (1 s) and libvirt event rounds.
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if s := domState(dom); s != "shut off" {
			t.Fatalf("runStrategy Halted: %s must stay off after the watchdog poweroff, it is %s\nagent log:\n%s", dom, s, a2.logs())
		}
	}
	if strings.Contains(a2.logs(), "action=start") {
		t.Fatalf("the agent planned a start under runStrategy Halted:\n%s", a2.logs())
	}
	t.Logf("Halted revision %s applied; %s stayed %q", hash[:12], dom, domStateReason(dom))
}

// 2(c) action reset: the guest reboots inside the same running domain.
func TestFidelity_WatchdogResetKeepsRunning(t *testing.T) {
	src := watchdogGuestISO(t)
	w := newWorld(t)
	iso := w.hostImage(src)
	g := w.guestVirt()
	g.log(t)
	ev := watchEvents(t)
	w.commit("watchdog VM", map[string]string{"vms/wd.yaml": watchdogVMYAML(w.ns, "wd", "Always", "256Mi", "reset", iso)})
	a := w.startAgent()
	dom := w.dom("wd")
	id := w.awaitAgentFirstBoot("wd", 30*time.Second)
	stops := ev.count(dom, "Stopped")
	logAt := len(a.logs())
	con := attachConsole(t, dom)
	con.await(t, "nodevirt-guest: watchdog armed", 1, 45*time.Second)
	ev.await(t, dom, "event 'watchdog' for domain '"+dom+"': reset", 1, 3*guestHeartbeat*time.Second)
	con.await(t, "nodevirt-guest: booted", 2, 45*time.Second)

	if got := liveDomID(dom); got != id || domState(dom) != "running" {
		t.Fatalf("after a watchdog reset %s must run on as domain id %s, it is %s with id %q", dom, id, domState(dom), got)
	}
	if n := ev.count(dom, "Stopped"); n != stops {
		t.Fatalf("the domain stopped during the reset; events:\n%s", strings.Join(ev.of(dom), "\n"))
	}
	if r := startsAfter(a.logs(), logAt, w.ns, "wd"); len(r) != 0 {
		t.Fatalf("the agent started the VM during a reset: %v", r)
	}
	ids := regexp.MustCompile(`nodevirt-guest: booted, boot_id (\S+)`).FindAllStringSubmatch(con.text(), -1)
	if len(ids) < 2 || ids[0][1] == ids[1][1] {
		t.Fatalf("the guest did not boot a second time: %v", ids)
	}
	t.Logf("watchdog reset: domain %s kept id %s, state %q; events: %s; guest boot ids %s → %s",
		dom, id, domStateReason(dom), strings.Join(eventLinesOf(ev.of(dom), "watchdog", "reboot"), " | "), ids[0][1], ids[1][1])
}

// 2(d) action shutdown with runStrategy RerunOnFailure: the watchdog presses
// the ACPI power button, the guest powers itself off, and that is a guest
// shutdown (KubeVirt: Succeeded), so the agent leaves the VM off.
func TestFidelity_WatchdogShutdownRerunOnFailureStaysOff(t *testing.T) {
	src := watchdogGuestISO(t)
	w := newWorld(t)
	iso := w.hostImage(src)
	g := w.guestVirt()
	g.log(t)
	ev := watchEvents(t)
	w.commit("watchdog VM", map[string]string{"vms/wd.yaml": watchdogVMYAML(w.ns, "wd", "RerunOnFailure", "256Mi", "shutdown", iso)})
	a := w.startAgent()
	dom := w.dom("wd")
	w.awaitAgentFirstBoot("wd", 30*time.Second)
	logAt := len(a.logs())
	con := attachConsole(t, dom)
	con.await(t, "nodevirt-guest: watchdog armed", 1, 45*time.Second)
	ev.await(t, dom, "event 'watchdog' for domain '"+dom+"': shutdown", 1, 3*guestHeartbeat*time.Second)
	con.await(t, "nodevirt-guest: ACPI power button, powering off", 1, 20*time.Second)
	w.awaitState("wd", "shut off", 20*time.Second)
	reason := domStateReason(dom)
	t.Logf("watchdog shutdown: virsh domstate --reason says %q; libvirt event %q", reason, lastLineWith(ev.of(dom), "Stopped"))
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if s := domState(dom); s != "shut off" {
			t.Fatalf("RerunOnFailure must leave %s off after a guest shutdown (%s), it is %s", dom, reason, s)
		}
	}
	if r := startsAfter(a.logs(), logAt, w.ns, "wd"); len(r) != 0 {
		t.Fatalf("the agent started the VM after a guest shutdown: %v", r)
	}
	if reason != "shut off (shutdown)" {
		t.Errorf("watchdog shutdown: domstate --reason %q, expected \"shut off (shutdown)\"", reason)
	}
}

// ---------------------------------------------------------------- helpers

type fidelityPlanAction struct {
	Action string `json:"action"`
	Object string `json:"object"`
	Reason string `json:"reason"`
}

func fidelityPlan(t *testing.T, w *world) []fidelityPlanAction {
	t.Helper()
	var p struct {
		Actions []fidelityPlanAction `json:"actions"`
	}
	out := w.mustNodevirt("plan", "-o", "json")
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("plan -o json: %v\n%s", err, out)
	}
	return p.Actions
}

func planHas(acts []fidelityPlanAction, kind, ns, name string) bool {
	for _, a := range acts {
		if a.Action == kind && a.Object == "VirtualMachine "+ns+"/"+name {
			return true
		}
	}
	return false
}

func lastLineWith(lines []string, substr string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], substr) {
			return lines[i]
		}
	}
	return ""
}

func eventLinesOf(lines []string, kinds ...string) []string {
	var out []string
	for _, l := range lines {
		for _, k := range kinds {
			if strings.HasPrefix(l, "event '"+k+"'") {
				out = append(out, l)
				break
			}
		}
	}
	return out
}
