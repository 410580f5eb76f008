package desired

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// forEach calls fn once for every index, and a panic in one call reaches
// the caller.
func TestForEach(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 1000} {
		calls := make([]atomic.Int32, n)
		forEach(n, func(i int) { calls[i].Add(1) })
		for i := range calls {
			if c := calls[i].Load(); c != 1 {
				t.Fatalf("n=%d: index %d called %d times", n, i, c)
			}
		}
	}
	defer func() {
		if r := recover(); r != "item 500" {
			t.Fatalf("recovered %v, want the panic of item 500", r)
		}
	}()
	forEach(1000, func(i int) {
		if i == 500 {
			panic(fmt.Sprintf("item %d", i))
		}
	})
	t.Fatal("the panic was lost")
}

// Rendering VMs in parallel gives the same state as one after the other:
// the seed fixtures (what the converter maps) and many VMs, a third of them
// with fields it refuses.
func TestBuild_parallelSameAsSequential(t *testing.T) {
	var docs []string
	for i := range 150 {
		extra := "        memory: {guest: 64Mi}\n"
		switch i % 3 {
		case 1:
			extra = "        memory: {guest: 1Gi, hugepages: {pageSize: 4Ki}}\n"
		case 2:
			extra += "        launchSecurity: {sev: {}}\n"
		}
		docs = append(docs, fmt.Sprintf("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: vm%03d}\nspec:\n  runStrategy: Halted\n  template:\n    spec:\n      domain:\n%s        cpu: {sockets: %d}\n", i, extra, 1+i%4))
	}
	many := writeRepo(t, map[string]string{"vms.yaml": strings.Join(docs, "---\n")})
	for _, dir := range []string{filepath.Join("..", "..", "manifests", "testdata", "seed"), many} {
		t.Run(filepath.Base(dir), func(t *testing.T) { sameInParallel(t, dir) })
	}
}

func sameInParallel(t *testing.T, dir string) {
	type outcome struct {
		VMs     []string
		Diags   []string
		Invalid map[string]string
	}
	buildWith := func(procs int) outcome {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		_, st := build(t, dir)
		var o outcome
		for _, vm := range st.VMs {
			o.VMs = append(o.VMs, fmt.Sprintf("%s %s fenced=%q\n%s", vm.DomainName, vm.SpecHash, vm.Fenced, vm.XML))
		}
		for _, d := range st.Diags {
			o.Diags = append(o.Diags, d.Error())
		}
		o.Invalid = st.Invalid
		return o
	}
	want := buildWith(1)
	if len(want.VMs) < 10 {
		t.Fatalf("%s should render many VMs: %d VMs, %d diagnostics", dir, len(want.VMs), len(want.Diags))
	}
	for range 3 {
		if diff := cmp.Diff(want, buildWith(8)); diff != "" {
			t.Fatalf("parallel build differs (-sequential +parallel):\n%s", diff)
		}
	}
}

// A diagnostics-only build (validate) reports exactly what a full build
// reports, the same VMs and the same invalid ones, and writes no XML.
func TestBuild_diagnosticsOnlySameDiagnostics(t *testing.T) {
	set, full := build(t, filepath.Join("..", "..", "manifests", "testdata", "seed"))
	opt := testOptions
	opt.DiagnosticsOnly = true
	only := Build(set, "main@sha1:0123456789abcdef", opt)
	diags := func(st *State) []string {
		var out []string
		for _, d := range st.Diags {
			out = append(out, d.Error())
		}
		return out
	}
	if d := cmp.Diff(diags(full), diags(only)); d != "" {
		t.Errorf("diagnostics differ (-full +only):\n%s", d)
	}
	if d := cmp.Diff(full.Invalid, only.Invalid); d != "" {
		t.Errorf("invalid VMs differ (-full +only):\n%s", d)
	}
	if len(full.VMs) < 10 || len(only.VMs) != len(full.VMs) {
		t.Fatalf("%d VMs in the full build, %d diagnostics only", len(full.VMs), len(only.VMs))
	}
	for i, vm := range only.VMs {
		if vm.DomainName != full.VMs[i].DomainName {
			t.Errorf("VM %d: %s, full build %s", i, vm.DomainName, full.VMs[i].DomainName)
		}
		if vm.XML != "" || vm.SpecHash != "" {
			t.Errorf("%s: diagnostics only, yet XML (%d bytes) and hash %q", vm.DomainName, len(vm.XML), vm.SpecHash)
		}
		if full.VMs[i].XML == "" {
			t.Errorf("%s: the full build wrote no XML", vm.DomainName)
		}
	}
}
