package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/runtime/statedb"
)

// render domain renders the domain type apply would define: --domain-type
// as given; auto asks libvirt as apply does, and falls back to /dev/kvm
// under --root (saying so) when libvirt does not answer.
func TestRenderDomain_domainType(t *testing.T) {
	kvmRoot := t.TempDir()
	writeFile(t, filepath.Join(kvmRoot, "dev", "kvm"), "")
	gone := "test://" + filepath.Join(t.TempDir(), "missing.xml")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--domain-type", "qemu", "--root", kvmRoot, "--libvirt", "test:///default"}, `<domain type="qemu">`},
		{[]string{"--domain-type", "kvm", "--root", t.TempDir(), "--libvirt", gone}, `<domain type="kvm">`},
		// The test driver answers kvm, as DomainType does for apply.
		{[]string{"--domain-type", "auto", "--root", t.TempDir(), "--libvirt", "test:///default"}, `<domain type="kvm">`},
		{[]string{"--domain-type", "auto", "--root", kvmRoot, "--libvirt", gone}, `<domain type="kvm">`},
		{[]string{"--domain-type", "auto", "--root", t.TempDir(), "--libvirt", gone}, `<domain type="qemu">`},
	} {
		out, errOut, code := run(t, append([]string{"render", "domain", "--source", "../../examples", "web"}, c.args...)...)
		if code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, want %s in\n%s%s", c.args, code, c.want, firstLine(out), errOut)
		}
	}
	if _, errOut, code := run(t, "render", "domain", "--source", "../../examples", "web", "--domain-type", "xen"); code == 0 || !strings.Contains(errOut, `--domain-type "xen"`) {
		t.Errorf("bad --domain-type: exit %d, %s", code, errOut)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line + "\n"
}

const pinnedVM = `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: pinned, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        cpu: {cores: 2, dedicatedCpuPlacement: true}
        memory: {guest: 64Mi}
---
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: gpu-box, namespace: default}
spec:
  nodeSelector: {gpu: "true"}
  domain:
    memory: {guest: 64Mi}
`

// A dedicated-CPU VM renders with the pins apply defines: allocated from
// the CPU-manager pool (online CPUs under --root minus --reserved-cpus), or
// the allocation persisted in the state database, read without its lock.
// While a running nodevirt holds the database, render says so and
// allocates as for a fresh state.
func TestRenderDomain_dedicatedCPUs(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "vms.yaml"), pinnedVM)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "sys", "devices", "system", "cpu", "online"), "0-5\n")
	state := t.TempDir()
	render := func() (string, string, int) {
		return run(t, "render", "domain", "pinned", "--source", src, "--root", root, "--state", state, "--node", "n1",
			"--cpu-manager", "--reserved-cpus", "0", "--domain-type", "qemu")
	}
	pins := func(out string) string {
		var got []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "vcpupin") {
				got = append(got, strings.TrimSpace(l))
			}
		}
		return strings.Join(got, " ")
	}
	out, errOut, code := render()
	if want := `<vcpupin vcpu="0" cpuset="1"></vcpupin> <vcpupin vcpu="1" cpuset="2"></vcpupin>`; code != 0 || pins(out) != want {
		t.Fatalf("fresh: exit %d, pins %q, want %q\n%s", code, pins(out), want, errOut)
	}

	// An allocation persisted by apply is what render shows.
	db, err := statedb.Open(filepath.Join(state, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Put("cpus", "default_pinned", []byte(`{"vcpus":[5,4]}`)); err != nil {
		t.Fatal(err)
	}
	// Held by "an agent": fresh allocation, and a note.
	out, errOut, code = render()
	if code != 0 || !strings.Contains(pins(out), `cpuset="1"`) || strings.Count(errOut, "holds the state directory") != 1 {
		t.Fatalf("held: exit %d, pins %q, stderr %q", code, pins(out), errOut)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = render()
	if want := `<vcpupin vcpu="0" cpuset="5"></vcpupin> <vcpupin vcpu="1" cpuset="4"></vcpupin>`; code != 0 || pins(out) != want || strings.Contains(errOut, "holds the state directory") {
		t.Fatalf("persisted: exit %d, pins %q, want %q; stderr %q", code, pins(out), want, errOut)
	}
}

// A VM or VMI this node cannot run makes render domain fail with why,
// naming the flag or label it lacks.
func TestRenderDomain_reasons(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "vms.yaml"), pinnedVM)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "sys", "devices", "system", "cpu", "online"), "0-1\n")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"pinned"}, "VirtualMachine default/pinned cannot be placed: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. On node n1: " + desired.ReasonNoCPUPool},
		{[]string{"gpu-box"}, "VirtualMachineInstance default/gpu-box cannot be placed: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. On node n1: nodeSelector gpu=true, but the node has no label gpu"},
		{[]string{"pinned", "--cpu-manager", "--reserved-cpus", "0"}, `VirtualMachine default/pinned cannot start on node "n1": needs 2 dedicated CPUs; the CPU-manager pool 1 has 1 free`},
	} {
		out, errOut, code := run(t, append([]string{"render", "domain", "--source", src, "--root", root, "--node", "n1", "--domain-type", "qemu"}, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.want) || out != "" {
			t.Errorf("%v: exit %d, stdout %d bytes, stderr %q\nwant %q", c.args, code, len(out), errOut, c.want)
		}
	}
	// Placed on another node of the fleet.
	fleet := t.TempDir()
	writeFile(t, filepath.Join(fleet, "all.yaml"), `apiVersion: v1
kind: Node
metadata: {name: n1, labels: {kubernetes.io/hostname: n1}}
---
apiVersion: v1
kind: Node
metadata: {name: n2, labels: {kubernetes.io/hostname: n2, gpu: "true"}}
---
`+pinnedVM)
	_, errOut, code := run(t, "render", "domain", "gpu-box", "--source", fleet, "--root", root, "--node", "n1", "--domain-type", "qemu")
	if want := `VirtualMachineInstance default/gpu-box is not rendered on node "n1": placed on node n2 (on node n1: nodeSelector gpu=true, but the node has no label gpu)`; code == 0 || !strings.Contains(errOut, want) {
		t.Errorf("elsewhere: exit %d, stderr %q\nwant %q", code, errOut, want)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
