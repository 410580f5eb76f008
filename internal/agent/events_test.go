package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/disks"
	"github.com/nodevirt/nodevirt/runtime/hv"
	"github.com/nodevirt/nodevirt/source"
)

// iterations records what a running loop's reconciles did.
type iterations struct {
	mu  sync.Mutex
	all []agent.Iteration
}

func (r *iterations) add(it agent.Iteration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, it)
}

// count is how many reconciles ran, and how many of them fetched.
func (r *iterations) count() (all, fetched int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, it := range r.all {
		if it.Fetched {
			fetched++
		}
	}
	return len(r.all), fetched
}

// until polls cond every 10 ms for at most d.
func until(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// The libvirt events of the loop's own define and start do not cost a
// reconcile of their own, which would hold up the next save, nor do those
// of domains the agent never touches; an event nobody in the loop caused
// on a domain it owns (stopped out of band) still does, and heals it.
func TestRun_ownEventsCostNoReconcile(t *testing.T) {
	n := newNode(t)
	d, err := disks.New(n.state, filepath.Join(n.state, "images"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := source.Open(source.Options{URL: n.src, WorkDir: filepath.Join(n.state, "source")})
	if err != nil {
		t.Fatal(err)
	}
	var its iterations
	cfg := agent.Config{Interval: time.Hour, DriftInterval: time.Hour, EventDebounce: 20 * time.Millisecond, OnIteration: its.add,
		Desired: desired.Options{Node: "n1", Context: domain.Context{Type: "kvm", Arch: "x86_64",
			DiskDir: filepath.Join(n.state, "disks"), VolumeDir: filepath.Join(n.state, "volumes")}}}
	rec := vm.New(vm.Config{SelfHeal: true, DiskDir: filepath.Join(n.state, "disks")}, n.hv, d, n.db)
	a := agent.New(cfg, src, rec, n.hv).WithState(n.db)

	// The libvirt test driver sends lifecycle events as libvirtd does;
	// the test watches them too, to know they arrived.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen, err := n.hv.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if !until(10*time.Second, func() bool { all, _ := its.count(); return all == 1 }) {
		t.Fatal("no first reconcile")
	}

	// A save: one reconcile (fetched) defines and starts the VM.
	tmp := filepath.Join(n.src, "web.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(vmDoc("web", "64Mi", "Always", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(n.src, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	awaitEventOf := func(dom string, kind hv.EventKind) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ev := <-seen:
				if ev.Domain == dom && ev.Kind == kind {
					return
				}
			case <-deadline:
				t.Fatalf("no %s event for %s", kind, dom)
			}
		}
	}
	awaitEvent := func(kind hv.EventKind) { t.Helper(); awaitEventOf("default_web", kind) }
	awaitEvent(hv.EventStarted)
	if !until(10*time.Second, func() bool { all, fetched := its.count(); return all == 2 && fetched == 2 }) {
		all, fetched := its.count()
		t.Fatalf("after the save: %d reconciles, %d fetched; want 2 and 2", all, fetched)
	}
	// The loop has the events (the test saw them); give it many debounce
	// periods to react, which it must not.
	time.Sleep(500 * time.Millisecond)
	if all, _ := its.count(); all != 2 {
		t.Fatalf("the events of its own define and start cost %d more reconciles", all-2)
	}

	// A domain the agent neither wants nor owns (hand-made) comes and goes:
	// it is never touched, so its events cost nothing either.
	if err := n.hv.Define(ctx, `<domain type='test'><name>handmade</name><memory unit='KiB'>65536</memory><os><type>hvm</type></os></domain>`); err != nil {
		t.Fatal(err)
	}
	if err := n.hv.Start(ctx, "handmade"); err != nil {
		t.Fatal(err)
	}
	if err := n.hv.Destroy(ctx, "handmade"); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []hv.EventKind{hv.EventDefined, hv.EventStarted, hv.EventStopped} {
		awaitEventOf("handmade", kind)
	}
	time.Sleep(500 * time.Millisecond)
	if all, _ := its.count(); all != 2 {
		t.Fatalf("the events of a hand-made domain cost %d reconciles", all-2)
	}

	// Stopped out of band: the event is news, a reconcile starts it again.
	if err := n.hv.Destroy(ctx, "default_web"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(hv.EventStopped)
	if !until(10*time.Second, func() bool { all, _ := its.count(); return all >= 3 }) {
		t.Fatal("the out-of-band stop caused no reconcile")
	}
	if !until(10*time.Second, func() bool { return n.domain("default_web").State == hv.Running }) {
		t.Fatalf("not healed: %s", n.domain("default_web").State)
	}
	if _, fetched := its.count(); fetched != 2 {
		t.Fatalf("the event's reconcile fetched the source (%d fetches)", fetched)
	}
}
