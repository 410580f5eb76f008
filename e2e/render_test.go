//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/reconciler/vm"

	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/runtime/statedb"
)

// renderShapes are the VM shapes the e2e tests define, each one manifest
// (name → YAML) with what its rendering must show of the node's resources.
func renderShapes(ns, image string) map[string]struct{ yaml, shows string } {
	halted := func(name, body string) string {
		return fmt.Sprintf(`---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: %s, namespace: %s}
spec:
  runStrategy: Halted
  template:
    spec:
      terminationGracePeriodSeconds: 0
%s`, name, ns, body)
	}
	return map[string]struct{ yaml, shows string }{
		// The harness's default VM: an emptyDisk.
		"plain": {yaml: vmYAML(ns, "plain", "64Mi", "Halted"), shows: "/disks/" + ns + "/plain/data.qcow2"},
		// containerDisk from a host file, a cloud-init seed and an emptyDisk.
		"seeded": {yaml: halted("seeded", `      domain:
        cpu:
          features: [{name: arch-capabilities, policy: disable}]
        memory: {guest: 64Mi}
        devices:
          disks:
            - {name: root, disk: {bus: virtio}}
            - {name: scratch, disk: {bus: virtio}}
            - {name: seed, disk: {bus: virtio}}
      volumes:
        - {name: root, containerDisk: {image: "file://`+image+`"}}
        - {name: scratch, emptyDisk: {capacity: 16Mi}}
        - name: seed
          cloudInitNoCloud:
            userData: |
              #cloud-config
              hostname: seeded
`), shows: "/disks/" + ns + "/seeded/seed.iso"},
		// A DataVolume on the hostpath provisioner: the disk is the
		// provisioner volume's disk.img, not the default volume path.
		"claimed": {yaml: storageClasses + `---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: claimed-root, namespace: ` + ns + `}
spec:
  source: {blank: {}}
  storage:
    resources: {requests: {storage: 16Mi}}
` + halted("claimed", `      domain:
        cpu:
          features: [{name: arch-capabilities, policy: disable}]
        memory: {guest: 64Mi}
        devices:
          disks: [{name: root, disk: {bus: virtio}}]
      volumes:
        - {name: root, dataVolume: {name: claimed-root}}
`), shows: "/var/hpvolumes/"},
		// The fidelity tests' watchdog VM: a cdrom containerDisk and an i6300esb.
		"watched": {yaml: watchdogVMYAML(ns, "watched", "Halted", "64Mi", "poweroff", image), shows: `<watchdog model="i6300esb" action="poweroff">`},
		// Dedicated CPUs from the CPU-manager pool (--cpu-manager).
		"pinned": {yaml: strings.Replace(vmYAML(ns, "pinned", "64Mi", "Halted"), "        cpu:\n",
			"        cpu:\n          cores: 1\n          dedicatedCpuPlacement: true\n", 1), shows: `<vcpupin vcpu="0" cpuset="1">`},
	}
}

// render domain prints what apply defines: for every VM shape the e2e tests
// define, the rendered XML and `virsh dumpxml --inactive` after apply show
// no difference through the plan's own comparison, and carry the same spec
// hash. Render runs with apply's flags, beside no agent (reading the
// allocations apply persisted) and beside one holding the state.
func TestRender_equalsDefine(t *testing.T) {
	w := newWorld(t)
	// The CPU-manager pool: this host tree's CPUs 0-1, CPU 0 reserved.
	online := filepath.Join(w.hostRoot, "sys", "devices", "system", "cpu", "online")
	if err := os.MkdirAll(filepath.Dir(online), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(online, []byte("0-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "tiny.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", src, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, out)
	}
	image := w.hostImage(src)
	shapes := renderShapes(w.ns, image)
	files := map[string]string{}
	for name, s := range shapes {
		files["vms/"+name+".yaml"] = s.yaml
	}
	w.commit("every shape", files)
	flags := []string{"--cpu-manager", "--reserved-cpus", "0"}
	w.mustNodevirt(append(flags, "apply", "--timeout", "2m")...)

	compare := func(t *testing.T, name, rendered string) {
		t.Helper()
		dumped := virsh(t, "dumpxml", "--inactive", w.dom(name))
		changes, err := vm.Fields(rendered, dumped)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range changes {
			t.Errorf("%s: rendered and defined differ at %s", name, c)
		}
		ro, ok1 := desired.OwnerOf(rendered)
		do, ok2 := desired.OwnerOf(dumped)
		if !ok1 || !ok2 || ro.SpecHash != do.SpecHash {
			t.Errorf("%s: spec hash rendered %q, defined %q", name, ro.SpecHash, do.SpecHash)
		}
		if !strings.Contains(rendered, shapes[name].shows) {
			t.Errorf("%s: the rendering lacks %s:\n%s", name, shapes[name].shows, rendered)
		}
	}
	for name := range shapes {
		t.Run(name, func(t *testing.T) {
			out, errOut, err := w.nodevirt(append(flags, "render", "domain", name)...)
			if err != nil {
				t.Fatalf("render domain %s: %v\n%s", name, err, errOut)
			}
			compare(t, name, out)
		})
	}
	// The apply left nothing to do: the plan agrees with what render showed.
	if out := w.mustNodevirt(append(flags, "plan")...); strings.Contains(out, "create ") || strings.Contains(out, "update ") {
		t.Errorf("plan after apply:\n%s", out)
	}

	// Beside an agent that holds the state, render allocates as a fresh
	// state would (the one pinned VM gets the same first free CPU) and says so.
	a := w.startAgent(flags...)
	defer a.stop()
	await(t, "the agent to hold the state", 20*time.Second, func() bool {
		held, _ := statedb.Held(filepath.Join(w.state, "state.db"))
		return held
	})
	out, errOut, err := w.nodevirt(append(flags, "render", "domain", "pinned")...)
	if err != nil {
		t.Fatalf("render beside the agent: %v\n%s", err, errOut)
	}
	if strings.Count(errOut, "holds the state directory") != 1 {
		t.Errorf("render beside the agent must say once that it allocates afresh:\n%s", errOut)
	}
	compare(t, "pinned", out)
}
