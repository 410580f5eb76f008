package main

import (
	"strings"
	"testing"
)

// A negative --parallel-vms is refused, naming the flag, before anything
// is opened.
func TestParallelVMs_negativeRefused(t *testing.T) {
	dir := t.TempDir()
	_, errOut, code := run(t, "--parallel-vms", "-2", "--source", "../../examples", "--state", dir+"/state", "--root", dir, "--libvirt", "test:///default", "plan")
	if code == 0 || !strings.Contains(errOut, "--parallel-vms -2: want 0 (the default) or more") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
}
