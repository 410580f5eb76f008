//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchVM has no disks, so both benchmarks below do the same libvirt work
// (define + start of an identical domain) and the difference is nodevirt's
// own cost: process start, git fetch, decode, render, plan, state writes.
func benchVM(ns, name string) string {
	return fmt.Sprintf(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: %s, namespace: %s}
spec:
  runStrategy: Always
  template:
    spec:
      terminationGracePeriodSeconds: 0
      domain:
        cpu:
          features: [{name: arch-capabilities, policy: disable}]
        memory: {guest: 64Mi}
        devices: {}
`, name, ns)
}

// BenchmarkCommitToRunning: per iteration, a commit that adds one VM is
// pushed (not timed), then one `nodevirt apply` process runs until the VM is
// running on qemu:///system (KVM): fetch, decode, render, plan, define, start.
// Tear-down is not timed.
func BenchmarkCommitToRunning(b *testing.B) {
	w := newWorld(b)
	i := 0
	for b.Loop() {
		b.StopTimer()
		name := fmt.Sprintf("bench%03d", i)
		i++
		w.commit("add "+name, map[string]string{"vms/" + name + ".yaml": benchVM(w.ns, name)})
		b.StartTimer()
		w.mustNodevirt("apply")
		if s := domState(w.dom(name)); s != "running" {
			b.Fatalf("%s is %s after apply", name, s)
		}
		b.StopTimer()
		// Keep the repository at one VM so every iteration does the same work.
		w.commit("remove "+name, map[string]string{"vms/" + name + ".yaml": ""})
		w.mustNodevirt("apply", "--allow-prune-all")
		b.StartTimer()
	}
}

// BenchmarkVirshDefineStart is the floor: `virsh define` + `virsh start` of
// the very XML nodevirt renders for the same VM.
func BenchmarkVirshDefineStart(b *testing.B) {
	w := newWorld(b)
	dir := filepath.Join(filepath.Dir(w.state), "manifests")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vm.yaml"), []byte(benchVM(w.ns, "raw")), 0o644); err != nil {
		b.Fatal(err)
	}
	out, errOut, err := w.nodevirtAt(dir, "render", "domain", "raw")
	if err != nil {
		b.Fatalf("render: %v\n%s", err, errOut)
	}
	xml := filepath.Join(dir, "raw.xml")
	if err := os.WriteFile(xml, []byte(out), 0o644); err != nil {
		b.Fatal(err)
	}
	var define time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		virsh(b, "define", xml)
		define += time.Since(t0)
		n++
		virsh(b, "start", w.dom("raw"))
		b.StopTimer()
		virsh(b, "destroy", w.dom("raw"))
		virsh(b, "undefine", w.dom("raw"))
		time.Sleep(10 * time.Millisecond)
		b.StartTimer()
	}
	// Next to ms-to-defined of the latency benchmarks (latency_bench_test.go).
	b.ReportMetric(float64(define)/float64(time.Millisecond)/float64(n), "ms-define")
}
