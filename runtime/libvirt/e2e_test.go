//go:build e2e

package virt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/nodevirt/nodevirt/internal/testenv"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/runtime/hv"
)

// requireLibvirtd opens qemu:///system, failing under CI=true and skipping
// elsewhere when libvirtd is not reachable.
func requireLibvirtd(t *testing.T) *Driver {
	t.Helper()
	d, err := Open(t.Context(), "qemu:///system")
	if err != nil {
		msg := fmt.Sprintf("libvirtd is not reachable at qemu:///system (%v); `make test` installs and starts it (hack/setup.sh)", err)
		testenv.Missing(t, msg)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

// tinyDomain is a 64 MiB guest with no disk: SeaBIOS idles, which is all
// lifecycle tests need. ACPI is on so Shutdown's power button is delivered
// (and so hotplug would work). typ is "kvm" or "qemu" (TCG), see accel.
func tinyDomain(typ, name string, memMiB int) string {
	return fmt.Sprintf(`<domain type=%q>
  <name>%s</name>
  <memory unit="MiB">%d</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
  <features><acpi/></features>
  <devices><memballoon model="none"/></devices>
</domain>`, typ, name, memMiB)
}

// accel picks the domain type for e2e guests: "kvm" when /dev/kvm exists and
// QEMU, running as libvirt's unprivileged qemu user, can actually open it;
// otherwise "qemu" (TCG) with a loud warning. Existence alone is not enough:
// a root-only /dev/kvm makes every kvm domain fail to start, and libvirt's
// capabilities still advertise kvm in that case, so a probe start decides.
func accel(t *testing.T, d *Driver) string {
	t.Helper()
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Logf("WARNING: /dev/kvm is missing (%v): guests run under TCG emulation, which is slow", err)
		return "qemu"
	}
	name := uniqueName(t, d)
	if err := d.Define(t.Context(), tinyDomain("kvm", name, 64)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := d.Start(t.Context(), name)
	t.Logf("kvm probe start: %s", time.Since(start).Round(time.Millisecond))
	if err == nil {
		return "kvm"
	}
	t.Logf("WARNING: /dev/kvm exists but QEMU cannot use it (%v): guests run under TCG emulation, which is slow; "+
		"give libvirt's qemu user access to /dev/kvm (group kvm, mode 0660)", err)
	return "qemu"
}

// uniqueName returns a domain name that cannot collide with other runs and
// removes the domain when the test ends, whatever state it is in.
func uniqueName(t *testing.T, d *Driver) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "nodevirt-test-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		// t.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Destroy(ctx, name); err != nil {
			t.Errorf("cleanup destroy %s: %v", name, err)
		}
		if err := d.Undefine(ctx, name); err != nil {
			t.Errorf("cleanup undefine %s: %v", name, err)
		}
	})
	return name
}

func mustDomain(t *testing.T, d *Driver, name string) hv.Domain {
	t.Helper()
	doms, err := d.Domains(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range doms {
		if x.Name == name {
			return x
		}
	}
	t.Fatalf("domain %s not listed", name)
	return hv.Domain{}
}

// must runs one driver call, failing the test on error, and logs how long it
// took: start/destroy latency on this host is worth seeing in e2e output.
func must(t *testing.T, what string, fn func() error) {
	t.Helper()
	start := time.Now()
	if err := fn(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s: %s", what, time.Since(start).Round(time.Millisecond))
}

func TestE2E_lifecycle(t *testing.T) {
	ctx := t.Context()
	d := requireLibvirtd(t)
	typ := accel(t, d)
	name := uniqueName(t, d)
	ch, err := d.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}

	must(t, "define", func() error { return d.Define(ctx, tinyDomain(typ, name, 64)) })
	awaitEvent(t, ch, hv.Event{Domain: name, Kind: hv.EventDefined, Detail: "added"})
	uuid := mustDomain(t, d, name).UUID

	for range 2 {
		must(t, "start", func() error { return d.Start(ctx, name) })
	}
	awaitEvent(t, ch, hv.Event{Domain: name, Kind: hv.EventStarted, Detail: "booted"})
	if got := mustDomain(t, d, name); got.State != hv.Running || got.Reason != "booted" {
		t.Errorf("after Start: %s/%s, want running/booted", got.State, got.Reason)
	}

	// Redefining a running domain (same name and uuid) changes only the
	// persistent definition, which is what Domains reports.
	redef := strings.Replace(tinyDomain(typ, name, 96), "</name>", "</name>\n  <uuid>"+uuid+"</uuid>", 1)
	must(t, "redefine running", func() error { return d.Define(ctx, redef) })
	if got := mustDomain(t, d, name); !strings.Contains(got.XML, "98304") || got.State != hv.Running {
		t.Errorf("after redefine: state %s, inactive XML without 96 MiB:\n%s", got.State, got.XML)
	}

	// No guest OS answers the ACPI button, so the grace runs out and the
	// domain is destroyed.
	start := time.Now()
	must(t, "shutdown (1s grace, ignored)", func() error { return d.Shutdown(ctx, name, time.Second) })
	if took := time.Since(start); took < time.Second {
		t.Errorf("Shutdown returned after %s, before the 1s grace", took)
	}
	awaitEvent(t, ch, hv.Event{Domain: name, Kind: hv.EventStopped, Detail: "destroyed"})
	if got := mustDomain(t, d, name); got.State != hv.Shutoff || got.Reason != "destroyed" {
		t.Errorf("after Shutdown: %s/%s, want shutoff/destroyed", got.State, got.Reason)
	}
	if err := d.Shutdown(ctx, name, time.Second); err != nil {
		t.Errorf("Shutdown of a stopped domain: %v", err)
	}

	must(t, "start again", func() error { return d.Start(ctx, name) })
	awaitEvent(t, ch, hv.Event{Domain: name, Kind: hv.EventStarted, Detail: "booted"})
	for range 2 {
		must(t, "destroy", func() error { return d.Destroy(ctx, name) })
	}
	awaitEvent(t, ch, hv.Event{Domain: name, Kind: hv.EventStopped, Detail: "destroyed"})
	if got := mustDomain(t, d, name); got.State != hv.Shutoff || got.Reason != "destroyed" {
		t.Errorf("after Destroy: %s/%s, want shutoff/destroyed", got.State, got.Reason)
	}

	for range 2 {
		must(t, "undefine", func() error { return d.Undefine(ctx, name) })
	}
	awaitEvent(t, ch, hv.Event{Domain: name, Kind: hv.EventUndefined, Detail: "removed"})
	doms, err := d.Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range doms {
		if x.Name == name {
			t.Errorf("%s still listed after Undefine", name)
		}
	}
}

func TestE2E_Define_keepsLibvirtMessage(t *testing.T) {
	d := requireLibvirtd(t)
	name := uniqueName(t, d)
	bad := strings.Replace(tinyDomain("qemu", name, 64), "<vcpu>1</vcpu>", "<vcpu>1</vcpu><vcpux>1</vcpux>", 1)
	err := d.Define(t.Context(), bad)
	if err == nil {
		t.Fatal("libvirtd accepted an unknown element")
	}
	if got := err.Error(); !strings.Contains(got, fmt.Sprintf("define domain %q: ", name)) || !strings.Contains(got, "vcpux") {
		t.Errorf("error = %q, want libvirt's schema message naming vcpux", got)
	}
}

// DomainType agrees with whether libvirt can really start a KVM domain here.
func TestE2E_DomainType(t *testing.T) {
	d := requireLibvirtd(t)
	got, err := d.DomainType(context.Background(), "x86_64")
	if err != nil {
		t.Fatal(err)
	}
	want := "qemu"
	if exec.Command("virsh", "-c", "qemu:///system", "domcapabilities", "--virttype", "kvm").Run() == nil {
		want = "kvm"
	}
	if got != want {
		t.Fatalf("DomainType = %q, virsh domcapabilities says %q", got, want)
	}
	if want == "qemu" {
		t.Log("WARNING: libvirt cannot use KVM here; domains run under TCG")
	}
}

// CompareCPU names the missing features of an incompatible guest CPU and
// accepts one the host has.
func TestE2E_CompareCPU(t *testing.T) {
	d := requireLibvirtd(t)
	ctx := context.Background()
	typ, err := d.DomainType(ctx, "x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CompareCPU(ctx, "x86_64", typ, `<cpu mode="host-model"><feature policy="require" name="sse2"/></cpu>`); err != nil {
		t.Fatalf("sse2 is on every x86_64 host: %v", err)
	}
	err = d.CompareCPU(ctx, "x86_64", typ, `<cpu mode="host-model"><feature policy="require" name="nodevirt-no-such-feature"/></cpu>`)
	if err == nil {
		t.Fatal("an unknown feature must not compare as compatible")
	}
	t.Logf("unknown feature: %v", err)
	// A feature this nested host lacks (AVX-512 on the CI machine) must be
	// reported as incompatible with the feature named.
	err = d.CompareCPU(ctx, "x86_64", typ, `<cpu mode="custom" match="exact"><model>Skylake-Server</model></cpu>`)
	if err != nil && !errors.Is(err, ErrCPUIncompatible) {
		t.Fatalf("want ErrCPUIncompatible or nil, got %v", err)
	}
	t.Logf("Skylake-Server on this host: %v", err)
}
