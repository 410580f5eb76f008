package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodevirt/nodevirt/internal/agent"
)

// BenchmarkIterate_newVM is the agent's side of a save in a watched
// directory, in process and on libvirt's test driver (define and start cost
// next to nothing there): one op is the iteration a save of one new VM's
// manifest triggers, from the fetch to the VM started, on a node that holds
// vms others already. The removal of the VM again is not timed. Its CPU
// profile shows what the agent spends before the define:
//
//	go test ./internal/agent -run '^$' -bench Iterate_newVM -benchmem -cpuprofile cpu.out
func BenchmarkIterate_newVM(b *testing.B) {
	for _, vms := range []int{1, 100} {
		b.Run(fmt.Sprintf("vms=%d", vms), func(b *testing.B) { benchIterateNewVM(b, vms) })
	}
}

func benchIterateNewVM(b *testing.B, vms int) {
	dir := b.TempDir()
	src := fleetSource(b, vms)
	uri := "test://" + filepath.Join(dir, "node.xml")
	if err := os.WriteFile(filepath.Join(dir, "node.xml"), []byte(`<node><cpu><mhz>2000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads></cpu><memory>67108864</memory></node>`), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var last agent.Iteration
	cfg := openConfig(dir, src, uri, agent.AllStages)
	cfg.OnIteration = func(it agent.Iteration) { last = it }
	rt, err := agent.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rt.Close)
	rt.Agent.IterateForTest(ctx, true)
	if last.Err != nil {
		b.Fatal(last.Err)
	}
	file := filepath.Join(src, "new.yaml")
	i := 0
	for b.Loop() {
		b.StopTimer()
		name := fmt.Sprintf("new%04d", i)
		i++
		if err := os.WriteFile(file, []byte(fmt.Sprintf(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: %s, namespace: fleet}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices: {}
`, name)), 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rt.Agent.IterateForTest(ctx, true)
		b.StopTimer()
		if last.Err != nil {
			b.Fatal(last.Err)
		}
		if phase := vmPhase(last, name); phase != "Running" {
			b.Fatalf("%s is %q after the iteration, want Running", name, phase)
		}
		if err := os.Remove(file); err != nil {
			b.Fatal(err)
		}
		rt.Agent.IterateForTest(ctx, true)
		if last.Err != nil {
			b.Fatal(last.Err)
		}
		b.StartTimer()
	}
}

// vmPhase is the printable status the iteration recorded for the VM.
func vmPhase(it agent.Iteration, name string) string {
	for _, v := range it.Status.VirtualMachines {
		if v.Name == name {
			return string(v.Status.PrintableStatus)
		}
	}
	return ""
}
