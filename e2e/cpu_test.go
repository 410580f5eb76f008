//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// missingFeature finds an x86 CPU feature libvirt knows and this host
// lacks, for the domain type the agent defines here (the CPU a TCG guest
// gets is not the one KVM passes through, and libvirt refuses to compare
// for KVM on a host that has none).
func missingFeature(t *testing.T) string {
	t.Helper()
	dt, err := agentDomainType()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"avx512f", "amx-tile", "avx512-fp16", "avx512vnni", "sha-ni", "avx2"} {
		xml := filepath.Join(t.TempDir(), "cpu.xml")
		if err := os.WriteFile(xml, []byte(`<cpu mode="host-model"><feature policy="require" name="`+f+`"/></cpu>`), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("virsh", "-c", "qemu:///system", "hypervisor-cpu-compare", "--virttype", dt.Type, xml, "--error").CombinedOutput()
		if err != nil && strings.Contains(string(out), "does not provide required features") {
			return f
		}
	}
	t.Fatal("this host has every candidate CPU feature; extend the list in missingFeature")
	return ""
}

// VM-9: a VM whose CPU the host cannot provide is refused with libvirt's
// reason and never started; once the requirement is gone it runs.
func TestAgent_incompatibleCPUIsRefused(t *testing.T) {
	w := newWorld(t)
	feature := missingFeature(t)
	vm := strings.Replace(vmYAML(w.ns, "web", "64Mi", "Always"), "            - name: arch-capabilities\n              policy: disable\n",
		"            - name: arch-capabilities\n              policy: disable\n            - name: "+feature+"\n              policy: require\n", 1)
	if !strings.Contains(vm, feature) {
		t.Fatal("fixture: feature not inserted")
	}
	w.commit("needs "+feature, map[string]string{"vms/web.yaml": vm})
	out, _, _ := w.nodevirt("apply")
	if !strings.Contains(out, "unschedulable on this node") || !strings.Contains(out, feature) {
		t.Fatalf("apply must refuse the start and name %s:\n%s", feature, out)
	}
	if s := domState(w.dom("web")); s != "shut off" {
		t.Fatalf("the VM must be defined but not started, it is %s", s)
	}
	w.commit("without "+feature, map[string]string{"vms/web.yaml": vmYAML(w.ns, "web", "64Mi", "Always")})
	w.mustNodevirt("apply")
	w.awaitState("web", "running", 10*time.Second)
}

// VM-8: with the CPU-manager pool on, a dedicated VM's vCPU is pinned to an
// exclusive host CPU (this 2-CPU host: CPU 0 reserved, pool {1}); a second one
// does not fit and waits with the reason.
func TestAgent_dedicatedCPUs(t *testing.T) {
	w := newWorld(t)
	dedicated := func(name string) string {
		return strings.Replace(vmYAML(w.ns, name, "64Mi", "Always"), "        cpu:\n", "        cpu:\n          cores: 1\n          dedicatedCpuPlacement: true\n", 1)
	}
	// --root is this test's host tree: it sees the real host's CPUs.
	online, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(online)) != "0-1" {
		t.Logf("this host's CPUs are %s; the assertions assume 0-1 and pin to CPU 1", online)
	}
	p := filepath.Join(w.hostRoot, "sys", "devices", "system", "cpu", "online")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("0-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.commit("one dedicated", map[string]string{"vms/a.yaml": dedicated("a")})
	w.mustNodevirt("--cpu-manager", "--reserved-cpus", "0", "apply")
	w.awaitState("a", "running", 10*time.Second)
	pins := virsh(t, "vcpupin", w.dom("a"))
	if !strings.Contains(strings.Join(strings.Fields(pins), " "), "0 1") {
		t.Fatalf("vCPU 0 must be pinned to host CPU 1:\n%s", pins)
	}
	w.commit("two dedicated", map[string]string{"vms/b.yaml": dedicated("b")})
	out, _, _ := w.nodevirt("--cpu-manager", "--reserved-cpus", "0", "apply")
	if !strings.Contains(out, "needs 1 dedicated CPUs; the CPU-manager pool 1 has 0 free") {
		t.Fatalf("the second VM must wait for a free CPU:\n%s", out)
	}
	if s := domState(w.dom("b")); s != "shut off" {
		t.Fatalf("b must not run, it is %s", s)
	}
}
