package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/nodeconfig"
)

// Two MachineConfigs and a Butane file, as a repository holds them.
const (
	mcUnit = `apiVersion: machineconfiguration.openshift.io/v1
kind: MachineConfig
metadata:
  name: 50-set-selinux-for-hostpath-provisioner
  labels:
    machineconfiguration.openshift.io/role: worker
spec:
  config:
    ignition:
      version: 3.2.0
    systemd:
      units:
        - contents: |
            [Unit]
            Description=Set SELinux chcon for hostpath provisioner

            [Service]
            ExecStart=/usr/bin/chcon -Rt container_file_t /var/hpvolumes

            [Install]
            WantedBy=multi-user.target
          enabled: true
          name: hostpath-provisioner.service
`
	mcFile = `apiVersion: machineconfiguration.openshift.io/v1
kind: MachineConfig
metadata:
  name: 60-worker-limits
  labels:
    machineconfiguration.openshift.io/role: worker
spec:
  config:
    ignition:
      version: 3.2.0
    storage:
      files:
        - path: /etc/security/limits.d/60-nodevirt.conf
          mode: 0644
          contents:
            source: data:,*%20soft%20nofile%2065536%0A
`
	buSysctl = `variant: fcos
version: 1.6.0
storage:
  files:
  - path: /etc/sysctl.d/90-nodevirt-vm.conf
    mode: 0644
    contents:
      inline: |
        vm.swappiness = 10
`
)

// hostFiles are the files the three configs above put on the host.
var hostFiles = []string{
	"/etc/security/limits.d/60-nodevirt.conf",
	"/etc/sysctl.d/90-nodevirt-vm.conf",
	"/etc/systemd/system/hostpath-provisioner.service",
}

// render decodes a source tree and renders a worker's host configuration
// from it, as the agent does for each commit.
func render(t *testing.T, files map[string]string) *nodeconfig.HostConfig {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := manifests.Load(dir, manifests.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := nodeconfig.Render(set, dir, nodeconfig.Node{Name: "node-1", Roles: []string{"worker"}})
	return h
}

func goodSource() map[string]string {
	return map[string]string{"host/50-selinux.yaml": mcUnit, "host/60-limits.yaml": mcFile, "host/90-sysctl.bu": buSysctl}
}

// appliedWorld is a host with the good source applied.
func appliedWorld(t *testing.T, cfg Config) *world {
	t.Helper()
	w := newWorld(t)
	cfg.SelfHeal = true
	w.r = New(cfg, w.deps())
	if _, rep := w.apply(render(t, goodSource())); rep.Failed != 0 {
		t.Fatalf("first apply: %v", results(rep))
	}
	for _, p := range hostFiles {
		if _, ok := w.read(p); !ok {
			t.Fatalf("%s not written by the first apply", p)
		}
	}
	if !w.units.enabled["hostpath-provisioner.service"] {
		t.Fatal("unit not enabled by the first apply")
	}
	return w
}

// removals lists the plan's actions that take something away.
func removals(p Plan) []string {
	var out []string
	for _, a := range p.Actions {
		switch a.Action {
		case RemoveFile, RestoreFile, DisableUnit, UnmaskUnit, StopUnit, UnbindDevice:
			out = append(out, string(a.Action)+" "+a.Target)
		}
	}
	return out
}

// held lists the plan's held actions with their reasons.
func held(p Plan) map[string]string {
	out := map[string]string{}
	for _, a := range p.Actions {
		if a.Action == Hold {
			out[a.Target] = a.Reason
		}
	}
	return out
}

func (w *world) assertKept(t *testing.T) {
	t.Helper()
	for _, p := range hostFiles {
		if _, ok := w.read(p); !ok {
			t.Errorf("%s was removed", p)
		}
	}
	if !w.units.enabled["hostpath-provisioner.service"] {
		t.Error("hostpath-provisioner.service was disabled")
	}
	rec, err := LoadRecord(w.deps().State)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range hostFiles {
		if _, ok := rec.Files[p]; !ok {
			t.Errorf("%s forgotten by the record: a later commit could not remove it", p)
		}
	}
	if _, ok := rec.Units["hostpath-provisioner.service"]; !ok {
		t.Error("hostpath-provisioner.service forgotten by the record")
	}
}

// A file of the commit that fails to parse hides which configs it held:
// nothing nodevirt wrote is removed, the plan says why, and the next good
// commit prunes as usual.
func TestPrune_suspendedOnParseFailure(t *testing.T) {
	for name, broken := range map[string]map[string]string{
		// YAML syntax error: the MachineConfig's identity is unknown.
		"MachineConfig syntax error": {"host/60-limits.yaml": mcFile + "  bad: [unclosed\n"},
		// Not a mapping at all.
		"MachineConfig not a mapping": {"host/60-limits.yaml": "- just\n- a list\n"},
		// The identity is known but the document does not decode, and its
		// role cannot be read.
		"MachineConfig labels unreadable": {"host/60-limits.yaml": strings.Replace(mcFile,
			"  labels:\n    machineconfiguration.openshift.io/role: worker\n", "  labels: [worker]\n", 1)},
		// Another manifest of the commit fails to parse.
		"other manifest syntax error": {"host/60-limits.yaml": "", "vms/web.yaml": "kind: VirtualMachine\n  bad: [unclosed\n"},
		// A Butane file that fails to translate.
		"Butane syntax error": {"host/90-sysctl.bu": buSysctl + "  - path: [unclosed\n"},
	} {
		t.Run(name, func(t *testing.T) {
			w := appliedWorld(t, Config{})
			src := goodSource()
			for f, data := range broken {
				if data == "" {
					delete(src, f)
					continue
				}
				src[f] = data
			}
			h := render(t, src)
			p, rep := w.apply(h)
			if got := removals(p); len(got) > 0 {
				t.Errorf("plan removes what nodevirt wrote: %v", got)
			}
			if rep.Failed != 0 {
				t.Errorf("apply: %v", results(rep))
			}
			w.assertKept(t)
			if h.PruneSuspended {
				if !p.PruneSuspended {
					t.Error("plan does not say pruning is suspended")
				}
				hs := held(p)
				if len(hs) == 0 {
					t.Errorf("no held actions: %v", kinds(p.Actions))
				}
				for target, why := range hs {
					if !strings.Contains(why, "failed to parse") || !strings.Contains(why, "suspended") {
						t.Errorf("%s held for %q", target, why)
					}
				}
			}
		})
	}
}

// The suspension lasts only while the commit is broken.
func TestPrune_resumesAfterFix(t *testing.T) {
	w := appliedWorld(t, Config{})
	src := goodSource()
	src["host/60-limits.yaml"] = mcFile + "  bad: [unclosed\n"
	w.apply(render(t, src))
	delete(src, "host/60-limits.yaml")
	p, rep := w.apply(render(t, src))
	if rep.Failed != 0 {
		t.Fatalf("apply: %v", results(rep))
	}
	if got := removals(p); len(got) != 1 || got[0] != "remove-file /etc/security/limits.d/60-nodevirt.conf" {
		t.Errorf("removals = %v", got)
	}
	if _, ok := w.read("/etc/security/limits.d/60-nodevirt.conf"); ok {
		t.Error("the removed config's file stays after a good commit")
	}
}

// A commit that drops every config (an empty source, a wrong --path) is
// held by the prune guard until confirmed.
func TestPrune_guardHoldsRemovingEverything(t *testing.T) {
	w := appliedWorld(t, Config{})
	empty := map[string]string{"README.md": "moved\n"}
	p, rep := w.apply(render(t, empty))
	if got := removals(p); len(got) > 0 {
		t.Errorf("plan removes what nodevirt wrote: %v", got)
	}
	if rep.Failed != 0 {
		t.Errorf("apply: %v", results(rep))
	}
	w.assertKept(t)
	hs := held(p)
	for _, target := range append([]string{"hostpath-provisioner.service"}, hostFiles...) {
		why, ok := hs[target]
		if !ok {
			t.Errorf("%s not held: %v", target, kinds(p.Actions))
			continue
		}
		if !strings.Contains(why, "--allow-prune-all") || !strings.Contains(why, "nodevirt.io/allow-prune-all") || !strings.Contains(why, "of the") {
			t.Errorf("%s held for %q", target, why)
		}
	}
	if p.PruneHeld == "" {
		t.Error("plan does not say the prune guard holds")
	}

	// Confirmed by the flag: everything goes.
	w.r = New(Config{SelfHeal: true, AllowPruneAll: true}, w.deps())
	p, rep = w.apply(render(t, empty))
	if rep.Failed != 0 {
		t.Fatalf("confirmed apply: %v", results(rep))
	}
	if len(held(p)) != 0 {
		t.Errorf("still held: %v", kinds(p.Actions))
	}
	for _, f := range hostFiles {
		if _, ok := w.read(f); ok {
			t.Errorf("%s stays after a confirmed prune", f)
		}
	}
	if w.units.enabled["hostpath-provisioner.service"] {
		t.Error("unit still enabled after a confirmed prune")
	}
}

// The annotation confirms as the flag does.
func TestPrune_guardConfirmedByAnnotation(t *testing.T) {
	w := appliedWorld(t, Config{})
	// A config for another role: it puts nothing on this node.
	marker := strings.Replace(strings.Replace(mcFile, "role: worker", "role: master", 1), "  labels:", "  annotations:\n    nodevirt.io/allow-prune-all: \"true\"\n  labels:", 1)
	p, _ := w.apply(render(t, map[string]string{"confirm.yaml": marker}))
	if len(held(p)) != 0 {
		t.Errorf("held despite the annotation: %v", kinds(p.Actions))
	}
	if _, ok := w.read("/etc/sysctl.d/90-nodevirt-vm.conf"); ok {
		t.Error("not pruned despite the annotation")
	}
}

// --prune-guard-share holds a commit that removes that share or more.
func TestPrune_guardShare(t *testing.T) {
	src := goodSource()
	delete(src, "host/60-limits.yaml")
	// One of three files and one unit: 1/4 of what nodevirt wrote.
	for _, tc := range []struct {
		share float64
		held  bool
	}{{0, false}, {1, false}, {0.5, false}, {0.25, true}} {
		w := appliedWorld(t, Config{PruneGuardShare: tc.share})
		p, _ := w.apply(render(t, src))
		_, gone := w.read("/etc/security/limits.d/60-nodevirt.conf")
		gone = !gone
		if tc.held != (len(held(p)) > 0) || tc.held == gone {
			t.Errorf("share %v: held %v, file removed %v; want held %v: %v", tc.share, held(p), gone, tc.held, kinds(p.Actions))
		}
	}
}
