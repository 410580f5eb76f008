//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// (a) A pushed VM is defined and running within one poll interval.
func TestAgent_pushedVMRuns(t *testing.T) {
	w := newWorld(t)
	w.commit("first VM", map[string]string{"vms/web.yaml": vmYAML(w.ns, "web", "64Mi", "Always")})
	a := w.startAgent()
	took := w.awaitState("web", "running", 30*time.Second)
	t.Logf("agent start to running: %s", took)

	// A second VM pushed while the agent runs: within one poll interval (1 s)
	// plus define and start.
	pushed := time.Now()
	w.commit("second VM", map[string]string{"vms/db.yaml": vmYAML(w.ns, "db", "64Mi", "Always")})
	w.awaitState("db", "running", 10*time.Second)
	t.Logf("push to running: %s (poll interval 1s)", time.Since(pushed).Round(time.Millisecond))
	if !strings.Contains(a.logs(), "reconciled") {
		t.Fatalf("agent log does not report the reconcile:\n%s", a.logs())
	}
}

// (a) With a local directory source the change applies at once (fsnotify).
func TestAgent_localDirectoryAppliesImmediately(t *testing.T) {
	w := newWorld(t)
	dir := filepath.Join(filepath.Dir(w.state), "local")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	a := w.start("--source", dir, "--state", w.state, "--root", w.hostRoot, "--libvirt", "qemu:///system",
		"run", "--interval", "1h", "--drift-interval", "1h")
	await(t, "the agent's first reconcile", 10*time.Second, func() bool { return strings.Contains(a.logs(), "watching") })
	// Write the way editors do: a temp file renamed over the target.
	tmp := filepath.Join(dir, ".web.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(vmYAML(w.ns, "web", "64Mi", "Always")), 0o644); err != nil {
		t.Fatal(err)
	}
	saved := time.Now()
	if err := os.Rename(tmp, filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	w.awaitState("web", "running", 10*time.Second)
	t.Logf("save to running with a 1h poll interval: %s", time.Since(saved).Round(time.Millisecond))
}

// (b) A memory change in git shows in the plan as a field diff; apply
// redefines the domain and restarts it so the change takes effect.
func TestAgent_memoryChange(t *testing.T) {
	w := newWorld(t)
	w.commit("web", map[string]string{"vms/web.yaml": vmYAML(w.ns, "web", "64Mi", "Always")})
	w.mustNodevirt("apply")
	w.awaitState("web", "running", 10*time.Second)
	if got := virsh(t, "dommemstat", w.dom("web")); !strings.Contains(got, "actual 65536") {
		t.Fatalf("live memory before the change: %s", got)
	}

	w.commit("more memory", map[string]string{"vms/web.yaml": vmYAML(w.ns, "web", "128Mi", "Always")})
	out := w.mustNodevirt("plan")
	for _, want := range []string{"update", "memory: 65536 -> 131072", "restart"} {
		if !strings.Contains(out, want) {
			t.Fatalf("plan does not show %q:\n%s", want, out)
		}
	}
	var p struct {
		Actions []struct {
			Action  string `json:"action"`
			Changes []struct{ Path, From, To string }
		} `json:"actions"`
	}
	if err := json.Unmarshal([]byte(w.mustNodevirt("plan", "-o", "json")), &p); err != nil {
		t.Fatal(err)
	}
	// Domains other tests left on the shared libvirtd are reported as
	// orphans; they are not this VM's business.
	var acts []string
	for _, a := range p.Actions {
		if a.Action != "orphan" {
			acts = append(acts, a.Action)
		}
	}
	if strings.Join(acts, " ") != "update restart" {
		t.Fatalf("plan -o json: want update then restart, got %+v", p.Actions)
	}

	w.mustNodevirt("apply")
	if got := virsh(t, "dumpxml", "--inactive", w.dom("web")); !strings.Contains(got, "<memory unit='KiB'>131072</memory>") {
		t.Fatalf("persistent definition not updated:\n%s", got)
	}
	// The restart makes the live domain use the new definition.
	if got := virsh(t, "dumpxml", w.dom("web")); !strings.Contains(got, "<memory unit='KiB'>131072</memory>") {
		t.Fatalf("live domain not restarted with the new memory:\n%s", got)
	}
	w.planInSync(1) // after apply the plan has nothing left for this VM
}

// (c) A domain destroyed out of band is reported as drift and healed.
func TestAgent_destroyedOutOfBandIsHealed(t *testing.T) {
	w := newWorld(t)
	w.commit("web", map[string]string{"vms/web.yaml": vmYAML(w.ns, "web", "64Mi", "Always")})
	w.mustNodevirt("apply")
	w.awaitState("web", "running", 10*time.Second)

	virsh(t, "destroy", w.dom("web"))
	out, _, err := w.nodevirt("drift", "--exit-code")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out, "DRIFTED") || !strings.Contains(out, "destroyed") {
		t.Fatalf("drift must report the destroyed domain and exit 2 (err=%v):\n%s", err, out)
	}

	a := w.startAgent()
	w.awaitState("web", "running", 10*time.Second)
	// And again while the agent runs: the libvirt event triggers the heal,
	// well before the 1 s poll could matter for a 5 min drift interval.
	virsh(t, "destroy", w.dom("web"))
	healed := time.Now()
	w.awaitState("web", "running", 10*time.Second)
	t.Logf("destroy to running again: %s", time.Since(healed).Round(time.Millisecond))
	// The loop logs an event when it takes it: a destroy that lands during
	// an iteration of the 1 s git poll is healed by that iteration, and its
	// event is taken right after.
	await(t, "the agent to log the lifecycle event", 10*time.Second, func() bool {
		return strings.Contains(a.logs(), "libvirt event")
	})
}

// (c) With self-heal off the drift is reported but left alone.
func TestAgent_selfHealOff(t *testing.T) {
	w := newWorld(t)
	w.commit("web", map[string]string{"vms/web.yaml": vmYAML(w.ns, "web", "64Mi", "Always")})
	w.mustNodevirt("apply")
	w.awaitState("web", "running", 10*time.Second)
	virsh(t, "destroy", w.dom("web"))
	out := w.mustNodevirt("apply", "--self-heal=false")
	if !strings.Contains(out, "self-heal is off") {
		t.Fatalf("apply must say the drift was skipped:\n%s", out)
	}
	if s := domState(w.dom("web")); s != "shut off" {
		t.Fatalf("self-heal off must leave the domain stopped, it is %q", s)
	}
}

// (d) A hand-made change to the persistent definition is reported field by
// field and healed.
func TestAgent_handEditedDefinitionIsHealed(t *testing.T) {
	w := newWorld(t)
	w.commit("web", map[string]string{"vms/web.yaml": vmYAML(w.ns, "web", "64Mi", "Always")})
	w.mustNodevirt("apply")
	w.awaitState("web", "running", 10*time.Second)

	xml := virsh(t, "dumpxml", "--inactive", w.dom("web"))
	// What `virsh edit` to 2 vCPUs means: count and topology together.
	edited := strings.Replace(xml, "<vcpu placement='static'>1</vcpu>", "<vcpu placement='static'>2</vcpu>", 1)
	edited = strings.Replace(edited, "sockets='1'", "sockets='2'", 1)
	if edited == xml {
		t.Fatalf("fixture: no vcpu element to edit in\n%s", xml)
	}
	f := filepath.Join(t.TempDir(), "edited.xml")
	if err := os.WriteFile(f, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	virsh(t, "define", f)

	out := w.mustNodevirt("drift")
	if !strings.Contains(out, "vcpu: host has 2, source wants 1") || !strings.Contains(out, "cpu.topology@sockets: host has 2, source wants 1") {
		t.Fatalf("drift must name the field:\n%s", out)
	}
	w.mustNodevirt("apply")
	if got := virsh(t, "dumpxml", "--inactive", w.dom("web")); !strings.Contains(got, "<vcpu placement='static'>1</vcpu>") {
		t.Fatalf("definition not healed:\n%s", got)
	}
	if out := w.mustNodevirt("drift"); !strings.Contains(out, "No drift") {
		t.Fatalf("after the heal there must be no drift:\n%s", out)
	}
}

// (e) Deleting the manifest undefines the domain and removes its disks.
func TestAgent_deletedManifestPrunes(t *testing.T) {
	w := newWorld(t)
	w.commit("two", map[string]string{
		"vms/keep.yaml": vmYAML(w.ns, "keep", "64Mi", "Always"),
		"vms/gone.yaml": vmYAML(w.ns, "gone", "64Mi", "Always"),
	})
	w.mustNodevirt("apply")
	w.awaitState("gone", "running", 10*time.Second)
	disk := filepath.Join(w.state, "disks", w.ns, "gone", "data.qcow2")
	if _, err := os.Stat(disk); err != nil {
		t.Fatalf("disk of the VM: %v", err)
	}
	w.commit("remove gone", map[string]string{"vms/gone.yaml": ""})
	w.mustNodevirt("apply")
	if s := domState(w.dom("gone")); s != "absent" {
		t.Fatalf("pruned domain still exists: %s", s)
	}
	if _, err := os.Stat(filepath.Dir(disk)); !os.IsNotExist(err) {
		t.Fatalf("disks of the pruned VM not removed: %v", err)
	}
	if s := domState(w.dom("keep")); s != "running" {
		t.Fatalf("the other VM must stay running, it is %s", s)
	}

	// Removing the last one is held until confirmed.
	w.commit("remove keep", map[string]string{"vms/keep.yaml": ""})
	out, _, _ := w.nodevirt("apply")
	if !strings.Contains(out, "hold") || domState(w.dom("keep")) != "running" {
		t.Fatalf("deleting every owned VM must be held:\n%s", out)
	}
	w.mustNodevirt("apply", "--allow-prune-all")
	if s := domState(w.dom("keep")); s != "absent" {
		t.Fatalf("confirmed prune-all must delete, domain is %s", s)
	}
}

// (f) Invalid YAML changes nothing: the error is reported with file and
// line, pruning is suspended, the last good state stays applied.
func TestAgent_invalidYAMLChangesNothing(t *testing.T) {
	w := newWorld(t)
	w.commit("two", map[string]string{
		"vms/web.yaml": vmYAML(w.ns, "web", "64Mi", "Always"),
		"vms/db.yaml":  vmYAML(w.ns, "db", "64Mi", "Always"),
	})
	w.mustNodevirt("apply")
	w.awaitState("db", "running", 10*time.Second)
	before := virsh(t, "dumpxml", "--inactive", w.dom("db"))

	// db.yaml becomes unparsable; web gets an invalid field value.
	bad := strings.Replace(vmYAML(w.ns, "web", "64Mi", "Always"), "guest: 64Mi", "guest: lots", 1)
	w.commit("broken", map[string]string{
		"vms/db.yaml":  "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: db\n",
		"vms/web.yaml": bad,
	})
	out, _, err := w.nodevirt("apply")
	if err == nil {
		t.Fatalf("apply of an invalid revision must exit non-zero:\n%s", out)
	}
	for _, want := range []string{"vms/db.yaml:", "vms/web.yaml:", "spec.template.spec.domain.memory.guest", "hold", "keep"} {
		if !strings.Contains(out, want) {
			t.Fatalf("apply output does not mention %q:\n%s", want, out)
		}
	}
	if domState(w.dom("db")) != "running" || domState(w.dom("web")) != "running" {
		t.Fatalf("invalid input must not stop anything: db %s, web %s", domState(w.dom("db")), domState(w.dom("web")))
	}
	if after := virsh(t, "dumpxml", "--inactive", w.dom("db")); after != before {
		t.Fatalf("db definition changed by an invalid revision")
	}
	// The last good state of web is still healed.
	virsh(t, "destroy", w.dom("web"))
	w.nodevirt("apply")
	if s := domState(w.dom("web")); s != "running" {
		t.Fatalf("web must be healed from its last good state, it is %s", s)
	}
}

// (g) kill -9 while applying 20 VMs, then start again: exactly 20 domains,
// no duplicates, all running.
func TestAgent_killDuringApply(t *testing.T) {
	w := newWorld(t)
	files := map[string]string{}
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("vm%02d", i)
		files["vms/"+name+".yaml"] = vmYAML(w.ns, name, "32Mi", "Always")
	}
	w.commit("twenty", files)
	a := w.startAgent()
	await(t, "the agent to be half way", 60*time.Second, func() bool { return len(w.domains()) >= 5 })
	a.kill9()
	t.Logf("killed with %d domains defined", len(w.domains()))

	w.startAgent()
	// Twenty QEMU starts on a loaded 2-CPU machine take minutes, not seconds.
	await(t, "20 running domains", 300*time.Second, func() bool {
		n := 0
		for _, d := range w.domains() {
			if domState(d) == "running" {
				n++
			}
		}
		return n == 20
	})
	if got := len(w.domains()); got != 20 {
		t.Fatalf("want exactly 20 domains, have %d: %v", got, w.domains())
	}
}

// (h) A domain nodevirt did not define is never touched, not even when a VM
// in git has its name.
func TestAgent_handMadeDomainUntouched(t *testing.T) {
	w := newWorld(t)
	name := w.dom("clash")
	f := filepath.Join(t.TempDir(), "hand.xml")
	if err := os.WriteFile(f, []byte(fmt.Sprintf(`<domain type='qemu'><name>%s</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='q35'>hvm</type></os><features><acpi/></features><devices><memballoon model='none'/></devices></domain>`, name)), 0o644); err != nil {
		t.Fatal(err)
	}
	virsh(t, "define", f)
	virsh(t, "start", name)
	before := virsh(t, "dumpxml", "--inactive", name)

	w.commit("web and a clash", map[string]string{
		"vms/web.yaml":   vmYAML(w.ns, "web", "64Mi", "Always"),
		"vms/clash.yaml": vmYAML(w.ns, "clash", "64Mi", "Halted"),
	})
	out := w.mustNodevirt("apply")
	if !strings.Contains(out, "conflict") {
		t.Fatalf("a VM named like a foreign domain must be reported as a conflict:\n%s", out)
	}
	// Then none of ours (confirmed prune-all): the hand-made domain survives.
	w.commit("none", map[string]string{"vms/web.yaml": "", "vms/clash.yaml": ""})
	w.mustNodevirt("apply", "--allow-prune-all")
	if s := domState(w.dom("web")); s != "absent" {
		t.Fatalf("our VM must be pruned, it is %s", s)
	}
	if domState(name) != "running" {
		t.Fatalf("hand-made domain was stopped or removed: %s", domState(name))
	}
	if after := virsh(t, "dumpxml", "--inactive", name); after != before {
		t.Fatalf("hand-made domain was modified:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
