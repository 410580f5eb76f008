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

// missingFeature finds an x86 CPU feature libvirt knows and this host lacks.
func missingFeature(t *testing.T) string {
	t.Helper()
	for _, f := range []string{"avx512f", "amx-tile", "avx512-fp16", "avx512vnni", "sha-ni", "avx2"} {
		xml := filepath.Join(t.TempDir(), "cpu.xml")
		if err := os.WriteFile(xml, []byte(`<cpu mode="host-model"><feature policy="require" name="`+f+`"/></cpu>`), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("virsh", "-c", "qemu:///system", "hypervisor-cpu-compare", "--virttype", "kvm", xml, "--error").CombinedOutput()
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
