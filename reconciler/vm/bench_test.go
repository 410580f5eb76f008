package vm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/vm"
)

// fleetDir writes n VirtualMachines, 10 per file, the way a real repository
// would hold them, and returns the directory.
func fleetDir(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	var docs []string
	flush := func(i int) {
		if len(docs) == 0 {
			return
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("vms-%04d.yaml", i)), []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
			b.Fatal(err)
		}
		docs = docs[:0]
	}
	for i := 0; i < n; i++ {
		docs = append(docs, fmt.Sprintf(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: vm%04d, namespace: fleet, labels: {app: bench}}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        cpu: {cores: 2}
        memory: {guest: 512Mi}
        devices: {}
`, i))
		if len(docs) == 10 {
			flush(i)
		}
	}
	flush(n)
	return dir
}

// rss reports the process's peak resident set (VmHWM) in MiB.
func rss(b *testing.B) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if kib, err := strconv.ParseFloat(f[1], 64); err == nil {
				b.ReportMetric(kib/1024, "peak-RSS-MiB")
			}
		}
	}
}

// BenchmarkPlan_noop1000 is the steady state of a node with 1,000 VMs: observe
// every domain through libvirt (test driver) and diff it against the desired
// state; nothing to do.
func BenchmarkPlan_noop1000(b *testing.B) {
	h, st := fleet(b, 1000)
	ctx := context.Background()
	warm(b, h, st)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p, err := h.rec.Plan(ctx, st)
		if err != nil {
			b.Fatal(err)
		}
		if !p.Empty() || len(p.InSync) != 1000 {
			b.Fatalf("want a no-op plan with 1000 in sync, got %d actions, %d in sync", len(p.Actions), len(p.InSync))
		}
	}
	rss(b)
}

// BenchmarkPlan_noop1000Cached is the no-op plan as the agent runs it between
// drift checks: the driver keeps each domain's definition XML until a libvirt
// event or a change through the driver invalidates it. BenchmarkPlan_noop1000
// is the drift check itself, which reads every document.
func BenchmarkPlan_noop1000Cached(b *testing.B) {
	h, st := fleet(b, 1000)
	h.hv.CacheDefinitions()
	ctx := context.Background()
	warm(b, h, st)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p, err := h.rec.Plan(ctx, st)
		if err != nil {
			b.Fatal(err)
		}
		if !p.Empty() || len(p.InSync) != 1000 {
			b.Fatalf("want a no-op plan with 1000 in sync, got %d actions, %d in sync", len(p.Actions), len(p.InSync))
		}
	}
	rss(b)
}

// BenchmarkReconcile_noop1000 is one full agent iteration for a changed
// revision of 1,000 VMs: decode every file, render every domain, plan, apply
// (nothing to do).
func BenchmarkReconcile_noop1000(b *testing.B) {
	h, _ := fleet(b, 1000)
	dir := fleetDir(b, 1000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		set, err := manifests.Load(dir, manifests.Options{})
		if err != nil {
			b.Fatal(err)
		}
		st := desired.Build(set, "r1", h.opt)
		p, err := h.rec.Plan(ctx, st)
		if err != nil {
			b.Fatal(err)
		}
		if rep := h.rec.Apply(ctx, p); len(rep.Outcomes) != 0 {
			b.Fatalf("want nothing applied, got %d outcomes", len(rep.Outcomes))
		}
	}
	rss(b)
}

// warm plans once untimed, as every agent iteration after its first does:
// the memoized comparisons are filled, and the events of the fleet's defines
// and starts have arrived.
func warm(b *testing.B, h *host, st *desired.State) {
	b.Helper()
	time.Sleep(200 * time.Millisecond)
	if _, err := h.rec.Plan(context.Background(), st); err != nil {
		b.Fatal(err)
	}
}

// fleet applies 1,000 VMs once on a fresh test-driver node.
func fleet(b *testing.B, n int) (*host, *desired.State) {
	b.Helper()
	h := newHostTB(b, vm.Config{SelfHeal: true})
	set, err := manifests.Load(fleetDir(b, n), manifests.Options{})
	if err != nil {
		b.Fatal(err)
	}
	st := desired.Build(set, "r1", h.opt)
	if len(st.VMs) != n || st.Diags.HasErrors() {
		b.Fatalf("fleet: %d VMs, diagnostics %v", len(st.VMs), st.Diags)
	}
	p, err := h.rec.Plan(context.Background(), st)
	if err != nil {
		b.Fatal(err)
	}
	if rep := h.rec.Apply(context.Background(), p); rep.Failed > 0 {
		b.Fatalf("fleet apply: %v", rep.Err())
	}
	return h, st
}
