package virt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/internal/testenv"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/runtime/hv"
)

// testDomain returns test-driver domain XML. extra goes inside <domain>, e.g.
// the test namespace's <test:runstate>.
func testDomain(name, uuid, extra string) string {
	return fmt.Sprintf(`<domain type="test">
  <name>%s</name>
  <uuid>%s</uuid>
  <memory unit="MiB">64</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>%s
</domain>`, name, uuid, extra)
}

// openTest opens a Driver on a private test-driver node file holding
// domains. test:///<file> is parsed anew per connection, so no state is
// shared between tests.
func openTest(t *testing.T, domains ...string) *Driver {
	t.Helper()
	node := `<node xmlns:test="http://libvirt.org/schemas/domain/test/1.0">
  <cpu><mhz>2400</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads></cpu>
  <memory>4194304</memory>
` + strings.Join(domains, "\n") + "\n</node>\n"
	path := filepath.Join(t.TempDir(), "node.xml")
	if err := os.WriteFile(path, []byte(node), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Open(t.Context(), "test://"+path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

type obs struct {
	State      hv.State
	Reason     string
	Persistent bool
}

// states renders Domains() as name → state for comparison.
func states(t *testing.T, d *Driver) map[string]obs {
	t.Helper()
	doms, err := d.Domains(t.Context())
	if err != nil {
		t.Fatalf("Domains: %v", err)
	}
	out := map[string]obs{}
	for _, x := range doms {
		out[x.Name] = obs{x.State, x.Reason, x.Persistent}
	}
	return out
}

const (
	uuidA = "6f1c3f5e-0f6a-4b8e-9c43-6b1f5b0a0001"
	uuidB = "6f1c3f5e-0f6a-4b8e-9c43-6b1f5b0a0002"
	uuidC = "6f1c3f5e-0f6a-4b8e-9c43-6b1f5b0a0003"
)

func TestDriver_Domains_stateAndReason(t *testing.T) {
	d := openTest(t,
		testDomain("vm-running", uuidA, "<test:runstate>1</test:runstate>"),
		testDomain("vm-stopped", uuidB, "<test:runstate>5</test:runstate>"),
		testDomain("vm-paused-transient", uuidC, "<test:runstate>3</test:runstate><test:transient/>"),
	)
	doms, err := d.Domains(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, x := range doms {
		names = append(names, x.Name)
		if x.XML == "" || !strings.Contains(x.XML, "<name>"+x.Name+"</name>") {
			t.Errorf("%s: XML does not describe the domain: %q", x.Name, x.XML)
		}
	}
	if diff := cmp.Diff([]string{"vm-paused-transient", "vm-running", "vm-stopped"}, names); diff != "" {
		t.Errorf("Domains not sorted by name (-want +got):\n%s", diff)
	}
	// Domains declared in the node file carry no reason.
	want := map[string]obs{
		"vm-running":          {hv.Running, "unknown", true},
		"vm-stopped":          {hv.Shutoff, "unknown", true},
		"vm-paused-transient": {hv.Paused, "unknown", false},
	}
	if diff := cmp.Diff(want, states(t, d)); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if doms[1].UUID != uuidA {
		t.Errorf("vm-running UUID = %q, want %q", doms[1].UUID, uuidA)
	}
}

func TestDriver_lifecycle_idempotent(t *testing.T) {
	ctx := t.Context()
	d := openTest(t)
	const name = "vm1"
	xml := testDomain(name, uuidA, "")

	for i := range 2 {
		if err := d.Define(ctx, xml); err != nil {
			t.Fatalf("Define #%d: %v", i, err)
		}
	}
	want := map[string]obs{name: {hv.Shutoff, "unknown", true}}
	if diff := cmp.Diff(want, states(t, d)); diff != "" {
		t.Errorf("after Define (-want +got):\n%s", diff)
	}

	for i := range 2 {
		if err := d.Start(ctx, name); err != nil {
			t.Fatalf("Start #%d: %v", i, err)
		}
	}
	want[name] = obs{hv.Running, "booted", true}
	if diff := cmp.Diff(want, states(t, d)); diff != "" {
		t.Errorf("after Start (-want +got):\n%s", diff)
	}

	for i := range 2 {
		if err := d.Shutdown(ctx, name, 5*time.Second); err != nil {
			t.Fatalf("Shutdown #%d: %v", i, err)
		}
	}
	// The test driver's shutdown is instantaneous and graceful.
	want[name] = obs{hv.Shutoff, "shutdown", true}
	if diff := cmp.Diff(want, states(t, d)); diff != "" {
		t.Errorf("after Shutdown (-want +got):\n%s", diff)
	}

	if err := d.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := d.Destroy(ctx, name); err != nil {
			t.Fatalf("Destroy #%d: %v", i, err)
		}
	}
	want[name] = obs{hv.Shutoff, "destroyed", true}
	if diff := cmp.Diff(want, states(t, d)); diff != "" {
		t.Errorf("after Destroy (-want +got):\n%s", diff)
	}

	for i := range 2 {
		if err := d.Undefine(ctx, name); err != nil {
			t.Fatalf("Undefine #%d: %v", i, err)
		}
	}
	if diff := cmp.Diff(map[string]obs{}, states(t, d)); diff != "" {
		t.Errorf("after Undefine (-want +got):\n%s", diff)
	}

	// Everything but Start is a no-op on a domain that does not exist.
	if err := d.Destroy(ctx, name); err != nil {
		t.Errorf("Destroy of missing domain: %v", err)
	}
	if err := d.Shutdown(ctx, name, time.Second); err != nil {
		t.Errorf("Shutdown of missing domain: %v", err)
	}
	err := d.Start(ctx, name)
	if !errors.Is(err, ErrNotDefined) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Start of missing domain = %v, want ErrNotDefined matching fs.ErrNotExist", err)
	}
}

func TestDriver_Shutdown_zeroGraceDestroys(t *testing.T) {
	d := openTest(t, testDomain("vm1", uuidA, "<test:runstate>1</test:runstate>"))
	if err := d.Shutdown(t.Context(), "vm1", 0); err != nil {
		t.Fatal(err)
	}
	if got := states(t, d)["vm1"]; got.State != hv.Shutoff || got.Reason != "destroyed" {
		t.Errorf("after Shutdown(grace 0) = %+v, want shutoff/destroyed", got)
	}
}

func TestDriver_Start_resumesPaused(t *testing.T) {
	d := openTest(t, testDomain("vm1", uuidA, "<test:runstate>3</test:runstate>"))
	if err := d.Start(t.Context(), "vm1"); err != nil {
		t.Fatal(err)
	}
	if got := states(t, d)["vm1"]; got.State != hv.Running || got.Reason != "unpaused" {
		t.Errorf("after Start of paused = %+v, want running/unpaused", got)
	}
}

func TestDriver_Shutdown_pausedDestroys(t *testing.T) {
	d := openTest(t, testDomain("vm1", uuidA, "<test:runstate>3</test:runstate>"))
	if err := d.Shutdown(t.Context(), "vm1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := states(t, d)["vm1"]; got.State != hv.Shutoff || got.Reason != "destroyed" {
		t.Errorf("after Shutdown of paused = %+v, want shutoff/destroyed", got)
	}
}

func TestDriver_Undefine_transientIsNoop(t *testing.T) {
	d := openTest(t, testDomain("vm1", uuidA, "<test:runstate>1</test:runstate><test:transient/>"))
	if err := d.Undefine(t.Context(), "vm1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Destroy(t.Context(), "vm1"); err != nil {
		t.Fatal(err)
	}
	if got := states(t, d); len(got) != 0 {
		t.Errorf("a destroyed transient domain should vanish, got %+v", got)
	}
}

func TestDriver_Define_redefine(t *testing.T) {
	ctx := t.Context()
	d := openTest(t)
	if err := d.Define(ctx, testDomain("vm1", uuidA, "")); err != nil {
		t.Fatal(err)
	}
	bigger := strings.Replace(testDomain("vm1", uuidA, ""), `<memory unit="MiB">64</memory>`, `<memory unit="MiB">128</memory>`, 1)
	if err := d.Define(ctx, bigger); err != nil {
		t.Fatalf("redefine with same name and uuid: %v", err)
	}
	doms, err := d.Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(doms) != 1 || !strings.Contains(doms[0].XML, "131072") {
		t.Errorf("redefined XML does not carry 128 MiB: %+v", doms)
	}

	// Same name, different uuid: libvirt refuses, and its message survives.
	err = d.Define(ctx, testDomain("vm1", uuidB, ""))
	if err == nil {
		t.Fatal("redefine with another uuid succeeded")
	}
	if got := err.Error(); !strings.Contains(got, `define domain "vm1": `) || !strings.Contains(got, "already exists with uuid") {
		t.Errorf("error = %q, want libvirt's message prefixed with the domain", got)
	}
}

func TestDriver_Define_schemaError(t *testing.T) {
	d := openTest(t)
	bad := strings.Replace(testDomain("vm1", uuidA, ""), "<vcpu>1</vcpu>", "<vcpu>1</vcpu><vcpux>2</vcpux>", 1)
	err := d.Define(t.Context(), bad)
	if err == nil {
		t.Fatal("Define accepted an unknown element")
	}
	if got := err.Error(); !strings.Contains(got, "vcpux") || strings.Contains(got, "virError(") {
		t.Errorf("error = %q, want libvirt's schema message without the binding's wrapper", got)
	}
}

// awaitEvent reads events until want arrives or a timeout; other events are
// skipped, since libvirt may interleave e.g. resumed/defined ones.
func awaitEvent(t *testing.T, ch <-chan hv.Event, want hv.Event) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	var seen []hv.Event
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("event channel closed while waiting for %+v; seen %+v", want, seen)
			}
			if ev == want {
				return
			}
			seen = append(seen, ev)
		case <-timeout:
			t.Fatalf("no event %+v within 10s; seen %+v", want, seen)
		}
	}
}

func TestDriver_Events_lifecycle(t *testing.T) {
	ctx := t.Context()
	d := openTest(t)
	ch, err := d.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Define(ctx, testDomain("vm1", uuidA, "")); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, ch, hv.Event{Domain: "vm1", Kind: hv.EventDefined, Detail: "added"})
	if err := d.Start(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, ch, hv.Event{Domain: "vm1", Kind: hv.EventStarted, Detail: "booted"})
	if err := d.Destroy(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, ch, hv.Event{Domain: "vm1", Kind: hv.EventStopped, Detail: "destroyed"})
	if err := d.Start(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Shutdown(ctx, "vm1", time.Second); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, ch, hv.Event{Domain: "vm1", Kind: hv.EventStopped, Detail: "shutdown"})
	if err := d.Undefine(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, ch, hv.Event{Domain: "vm1", Kind: hv.EventUndefined, Detail: "removed"})
}

func TestDriver_Events_endWithContext(t *testing.T) {
	d := openTest(t)
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := d.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("got an event, want the channel closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after ctx ended")
	}
}

func TestDriver_broadcast_dropsOldest(t *testing.T) {
	d := openTest(t)
	ch, err := d.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i := range eventBuffer + 10 {
		d.broadcast(hv.Event{Domain: fmt.Sprint(i), Kind: hv.EventOther})
	}
	if got := len(ch); got != eventBuffer {
		t.Fatalf("buffered %d events, want %d", got, eventBuffer)
	}
	if first := <-ch; first.Domain != "10" {
		t.Errorf("oldest kept event = %q, want %q (the 10 oldest dropped)", first.Domain, "10")
	}
}

// TestDriver_reconnect drops the connection the way a libvirtd restart does
// (the close callback fires) and checks that the supervisor reconnects,
// subscribers hear about it, and events flow on the new connection.
func TestDriver_reconnect(t *testing.T) {
	ctx := t.Context()
	d := openTest(t, testDomain("vm-file", uuidA, "<test:runstate>5</test:runstate>"))
	ch, err := d.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Define(ctx, testDomain("vm-extra", uuidB, "")); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, ch, hv.Event{Domain: "vm-extra", Kind: hv.EventDefined, Detail: "added"})

	d.mu.Lock()
	old := d.conn
	if err := d.disconnect(); err != nil {
		t.Fatal(err)
	}
	d.mu.Unlock()
	d.signalDead()

	awaitEvent(t, ch, hv.Event{Kind: hv.EventOther, Detail: DetailReconnected})
	d.mu.RLock()
	fresh := d.conn != nil && d.conn != old
	d.mu.RUnlock()
	if !fresh {
		t.Fatal("supervisor did not install a new connection")
	}
	// The node file is parsed anew: the domain defined before is gone.
	if diff := cmp.Diff(map[string]obs{"vm-file": {hv.Shutoff, "unknown", true}}, states(t, d)); diff != "" {
		t.Errorf("after reconnect (-want +got):\n%s", diff)
	}
	if err := d.Start(ctx, "vm-file"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, ch, hv.Event{Domain: "vm-file", Kind: hv.EventStarted, Detail: "booted"})
}

func TestDriver_Close(t *testing.T) {
	d := openTest(t)
	ch, err := d.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, ok := <-ch; ok {
		t.Error("event channel still open after Close")
	}
	if _, err := d.Domains(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Domains after Close = %v, want ErrClosed", err)
	}
	if got, want := d.URI(), "test://"; !strings.HasPrefix(got, want) {
		t.Errorf("URI() = %q", got)
	}
}

func TestDriver_Open_badURI(t *testing.T) {
	_, err := Open(t.Context(), "test:///nonexistent/node.xml")
	if err == nil || !strings.Contains(err.Error(), "connect to test:///nonexistent/node.xml: ") {
		t.Errorf("Open = %v, want a connect error naming the URI", err)
	}
}

func TestDriver_ValidateXML(t *testing.T) {
	if _, err := exec.LookPath("virt-xml-validate"); err != nil {
		testenv.Missing(t, "virt-xml-validate is not installed; `make test` installs libvirt-clients")
	}
	d := openTest(t)
	if err := d.ValidateXML(testDomain("vm1", uuidA, "")); err != nil {
		t.Errorf("valid XML rejected: %v", err)
	}
	bad := strings.Replace(testDomain("vm1", uuidA, ""), "<vcpu>1</vcpu>", "<vcpux>1</vcpux>", 1)
	err := d.ValidateXML(bad)
	if err == nil {
		t.Fatal("invalid XML accepted")
	}
	if strings.Contains(err.Error(), os.TempDir()) {
		t.Errorf("error leaks the temp file name: %v", err)
	}
}

// The VM stage declares these interfaces (reconciler/vm.Hypervisor and
// reconciler/vm.EventSource); they are mirrored here, not imported, because
// runtime must not import reconciler.
var _ interface {
	Domains(ctx context.Context) ([]hv.Domain, error)
	Define(ctx context.Context, xml string) error
	Start(ctx context.Context, name string) error
	Shutdown(ctx context.Context, name string, grace time.Duration) error
	Destroy(ctx context.Context, name string) error
	Undefine(ctx context.Context, name string) error
	Pause(ctx context.Context, name string) error
	Resume(ctx context.Context, name string) error
	Events(ctx context.Context) (<-chan hv.Event, error)
} = (*Driver)(nil)

func TestDriver_DomainType_testDriver(t *testing.T) {
	d := openTest(t)
	got, err := d.DomainType(context.Background(), "x86_64")
	if err != nil || got != "kvm" {
		t.Fatalf("DomainType = %q, %v; want kvm", got, err)
	}
}

func TestDriver_CompareCPU_unsupportedOnTestDriver(t *testing.T) {
	d := openTest(t)
	err := d.CompareCPU(context.Background(), "x86_64", "kvm", `<cpu mode="host-model"/>`)
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("want errors.ErrUnsupported from the test driver, got %v", err)
	}
}

// Pause and Resume suspend and resume a running domain, leave one already
// in the asked state alone, and refuse one that is not running.
func TestDriver_PauseResume(t *testing.T) {
	ctx := t.Context()
	d := openTest(t, testDomain("vm1", uuidA, ""))
	if err := d.Pause(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Pause(ctx, "vm1"); err != nil {
		t.Fatalf("second Pause: %v", err)
	}
	if got := states(t, d)["vm1"]; got.State != hv.Paused || got.Reason != "user" {
		t.Fatalf("after Pause: %+v", got)
	}
	for i := range 2 {
		if err := d.Resume(ctx, "vm1"); err != nil {
			t.Fatalf("Resume #%d: %v", i, err)
		}
	}
	if got := states(t, d)["vm1"]; got.State != hv.Running {
		t.Fatalf("after Resume: %+v", got)
	}
	if err := d.Destroy(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Pause(ctx, "vm1"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("Pause of a shut-off domain: %v", err)
	}
	if err := d.Resume(ctx, "nope"); !errors.Is(err, ErrNotDefined) {
		t.Fatalf("Resume of an unknown domain: %v", err)
	}
}
