package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
)

// exitWorld is one source, state directory and host root against libvirt's
// test driver, whose domains live while the world's connection is open.
type exitWorld struct {
	t                *testing.T
	src, state, root string
	d                *virt.Driver
}

func newExitWorld(t *testing.T) *exitWorld {
	t.Helper()
	d, err := virt.Open(t.Context(), "test:///default")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &exitWorld{t: t, src: t.TempDir(), state: t.TempDir(), root: t.TempDir(), d: d}
}

func (w *exitWorld) nodevirt(args ...string) (string, string, int) {
	w.t.Helper()
	return run(w.t, append([]string{"--libvirt", "test:///default", "--source", w.src, "--state", w.state, "--root", w.root, "--node", "n1"}, args...)...)
}

func (w *exitWorld) apply(args ...string) {
	w.t.Helper()
	if out, errOut, code := w.nodevirt(append([]string{"apply"}, args...)...); code != 0 {
		w.t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
}

func (w *exitWorld) vm(name, memory string, annotations ...string) {
	w.t.Helper()
	ann := ""
	if len(annotations) > 0 {
		ann = ", annotations: {" + strings.Join(annotations, ", ") + "}"
	}
	write(w.t, w.src, "vms/"+name+".yaml", `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: `+name+`, namespace: default`+ann+`}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: `+memory+`}
`)
}

func (w *exitWorld) remove(name string) {
	w.t.Helper()
	if err := os.Remove(filepath.Join(w.src, name)); err != nil {
		w.t.Fatal(err)
	}
}

// driftStatuses is `drift -o json`'s status of each VM domain and the
// storage entries' statuses.
func (w *exitWorld) driftStatuses() (map[string]string, []string) {
	w.t.Helper()
	out, errOut, _ := w.nodevirt("drift", "-o", "json")
	var rep struct {
		Entries []struct{ Domain, Status string }
		Storage []struct{ Status string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		w.t.Fatalf("drift -o json: %v\n%s%s", err, out, errOut)
	}
	vms := map[string]string{}
	for _, e := range rep.Entries {
		vms[e.Domain] = e.Status
	}
	var st []string
	for _, e := range rep.Storage {
		st = append(st, e.Status)
	}
	return vms, st
}

// wantExit checks that plan and drift with --exit-code both exit want.
func (w *exitWorld) wantExit(want int) {
	w.t.Helper()
	for _, c := range []string{"plan", "drift"} {
		out, errOut, code := w.nodevirt(c, "--exit-code")
		if code != want {
			w.t.Errorf("%s --exit-code: exit %d, want %d\n%s%s", c, code, want, out, errOut)
		}
	}
}

// wantStatus checks the drift report's status of domain.
func (w *exitWorld) wantStatus(domain, want string) {
	w.t.Helper()
	vms, _ := w.driftStatuses()
	if vms[domain] != want {
		w.t.Errorf("drift status of %s = %q, want %q (all: %v)", domain, vms[domain], want, vms)
	}
}

// plan --exit-code and drift --exit-code read a plan as Terraform's
// -detailed-exitcode does: 0 in sync, 2 for every kind of difference, 1
// when the plan cannot be computed.
func TestExitCode_eachKindOfDifference(t *testing.T) {
	t.Run("in sync", func(t *testing.T) {
		w := newExitWorld(t)
		w.vm("sync", "64Mi")
		w.apply()
		w.wantExit(0)
	})
	t.Run("missing", func(t *testing.T) {
		w := newExitWorld(t)
		w.vm("missing", "64Mi")
		w.wantExit(2)
		w.wantStatus("default_missing", "missing")
	})
	t.Run("drifted", func(t *testing.T) {
		w := newExitWorld(t)
		w.vm("drifted", "64Mi")
		w.apply()
		if err := w.d.Destroy(t.Context(), "default_drifted"); err != nil {
			t.Fatal(err)
		}
		w.wantExit(2)
		w.wantStatus("default_drifted", "drifted")
	})
	t.Run("pending", func(t *testing.T) {
		w := newExitWorld(t)
		w.vm("pending", "64Mi")
		w.apply()
		w.vm("pending", "96Mi")
		w.wantExit(2)
		w.wantStatus("default_pending", "pending")
	})
	t.Run("restart required", func(t *testing.T) {
		w := newExitWorld(t)
		w.vm("norestart", "64Mi", `nodevirt.io/restart-on-change: "false"`)
		w.apply()
		w.vm("norestart", "96Mi", `nodevirt.io/restart-on-change: "false"`)
		out, _, _ := w.nodevirt("plan")
		if !strings.Contains(out, "restart-required") {
			t.Fatalf("the plan must refuse the restart:\n%s", out)
		}
		w.wantExit(2)
		w.wantStatus("default_norestart", "pending")
	})
	t.Run("extra", func(t *testing.T) {
		w := newExitWorld(t)
		w.vm("keep", "64Mi")
		w.vm("extra", "64Mi")
		w.apply()
		w.remove("vms/extra.yaml")
		w.wantExit(2)
		w.wantStatus("default_extra", "extra")
	})
	t.Run("held by the prune guard", func(t *testing.T) {
		w := newExitWorld(t)
		w.vm("held", "64Mi")
		w.apply()
		w.remove("vms/held.yaml")
		out, _, _ := w.nodevirt("plan")
		if !strings.Contains(out, "hold") {
			t.Fatalf("the guard must hold deleting every VM:\n%s", out)
		}
		w.wantExit(2)
	})
	t.Run("orphan", func(t *testing.T) {
		w := newExitWorld(t)
		w.vm("orphan", "64Mi")
		w.apply()
		w.remove("vms/orphan.yaml")
		w.state = t.TempDir() // another agent's inventory
		w.wantExit(2)
		w.wantStatus("default_orphan", "orphan")
	})
	t.Run("conflict", func(t *testing.T) {
		w := newExitWorld(t)
		if err := w.d.Define(t.Context(), `<domain type='test'><name>default_conflict</name><memory>65536</memory><os><type>hvm</type></os></domain>`); err != nil {
			t.Fatal(err)
		}
		w.vm("conflict", "64Mi")
		w.wantExit(2)
		w.wantStatus("default_conflict", "conflict")
	})
	t.Run("waiting", func(t *testing.T) {
		w := newExitWorld(t)
		write(t, w.src, "classes.yaml", hostpathStorage("/var/hpvolumes"))
		write(t, w.src, "dv.yaml", `apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: blank, namespace: default}
spec:
  source: {blank: {}}
  storage:
    resources: {requests: {storage: 16Mi}}
---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: waits, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          disks: [{name: root, disk: {bus: virtio}}]
      volumes:
        - {name: root, dataVolume: {name: blank}}
`)
		w.wantExit(2)
		w.wantStatus("default_waits", "waiting")
		if _, st := w.driftStatuses(); len(st) == 0 {
			t.Error("the storage the VM waits for must be a difference too")
		}
		if out, errOut, code := w.nodevirt("storage", "plan", "--exit-code"); code != 2 {
			t.Errorf("storage plan --exit-code before apply: exit %d\n%s%s", code, out, errOut)
		}
		w.apply()
		if out, errOut, code := w.nodevirt("storage", "plan", "--exit-code"); code != 0 {
			t.Errorf("storage plan --exit-code after apply: exit %d\n%s%s", code, out, errOut)
		}
		w.wantExit(0)
	})
	t.Run("invalid manifest keeps its last good state", func(t *testing.T) {
		w := newExitWorld(t)
		w.vm("broken", "64Mi")
		w.apply()
		write(t, w.src, "vms/broken.yaml", `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: broken, namespace: default}
spec:
  runStrategy: Sometimes
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
`)
		w.wantExit(2)
		w.wantStatus("default_broken", "invalid")
	})
	t.Run("a file that fails to parse", func(t *testing.T) {
		w := newExitWorld(t)
		w.vm("parsed", "64Mi")
		w.apply()
		write(t, w.src, "vms/garbage.yaml", "kind: [VirtualMachine\n")
		w.wantExit(1)
		if _, errOut, _ := w.nodevirt("plan", "--exit-code"); !strings.Contains(errOut, "a file of this revision failed to parse") {
			t.Errorf("exit 1 must say why:\n%s", errOut)
		}
	})
	t.Run("libvirt unreachable", func(t *testing.T) {
		w := newExitWorld(t)
		w.vm("unreachable", "64Mi")
		for _, c := range []string{"plan", "drift"} {
			out, errOut, code := run(t, "--libvirt", "qemu+unix:///system?socket="+filepath.Join(t.TempDir(), "none"), "--source", w.src, "--state", w.state, c, "--exit-code")
			if code != 1 {
				t.Errorf("%s --exit-code without libvirt: exit %d, want 1\n%s%s", c, code, out, errOut)
			}
		}
	})
}

// host plan and host drift share the rule: a host without SELinux reports
// its label check as not applicable, which is no difference.
func TestExitCode_host(t *testing.T) {
	root := fakeHost(t)
	state := t.TempDir()
	write(t, root, "etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n")
	args := []string{"--source", "../../examples/host", "--root", root, "--state", state, "--node", "n1"}
	for _, c := range []string{"plan", "drift"} {
		if out, errOut, code := run(t, append([]string{"host", c, "--exit-code"}, args...)...); code != 2 {
			t.Errorf("host %s --exit-code before apply: exit %d, want 2\n%s%s", c, code, out, errOut)
		}
	}
	if out, errOut, code := run(t, append([]string{"host", "apply"}, args...)...); code != 0 {
		t.Fatalf("host apply: exit %d\n%s%s", code, out, errOut)
	}
	out, _, _ := run(t, append([]string{"host", "drift"}, args...)...)
	if !strings.Contains(out, "NOT-APPLICABLE") {
		t.Fatalf("the label check must be reported as not applicable:\n%s", out)
	}
	for _, c := range []string{"plan", "drift"} {
		if out, errOut, code := run(t, append([]string{"host", c, "--exit-code"}, args...)...); code != 0 {
			t.Errorf("host %s --exit-code after apply: exit %d, want 0\n%s%s", c, code, out, errOut)
		}
	}
}
