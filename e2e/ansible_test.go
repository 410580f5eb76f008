//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

var recap = regexp.MustCompile(`(?m)^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

// examples/ansible/site.yml, run by ansible-playbook against a running
// agent through its socket: the first run starts, stops, suspends around
// the image replacement, resumes and reconciles (changed > 0); the second
// finds everything as asked (changed=0). The agent drives libvirt's test
// driver in its own process, so no libvirtd or root is needed.
func TestAnsible_playbookIsIdempotent(t *testing.T) {
	playbook, err := exec.LookPath("ansible-playbook")
	if err != nil {
		missingPrecondition(t, "ansible-playbook is not installed; `make test` installs ansible-core")
	}
	dir := t.TempDir()
	src, state, root := filepath.Join(dir, "src"), filepath.Join(dir, "state"), filepath.Join(dir, "root")
	const ns = "ops"
	for name, content := range map[string]string{
		"src/web.yaml":   vmYAML(ns, "web", "64Mi", "Manual"),
		"src/spare.yaml": vmYAML(ns, "spare", "64Mi", "Manual"),
		"images/v2.img":  "the new image\n",
		"images/web.img": "the old image\n",
	} {
		writeFile(t, filepath.Join(dir, name), content)
	}
	flags := []string{"--source", src, "--state", state, "--root", root, "--libvirt", "test:///default", "--namespace", ns}

	a := (&world{t: t}).start(append(flags, "run", "--interval", "1h", "--listen", "")...)
	cli := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(nodevirtBin, append(flags, args...)...).Output()
		if err != nil {
			t.Fatalf("nodevirt %v: %v\n%s", args, err, stderrOf(err))
		}
		return out
	}
	await(t, "the agent's first reconcile", 30*time.Second, func() bool {
		out, err := exec.Command(nodevirtBin, append(flags, "-o", "json", "status")...).Output()
		var st struct{ Reconcile struct{ Count int } }
		return err == nil && json.Unmarshal(out, &st) == nil && st.Reconcile.Count >= 1
	})
	// spare runs before the playbook, which is to stop it.
	cli("start", "spare", "-o", "json")

	vars, err := json.Marshal(map[string]any{
		"nodevirt":          nodevirtBin,
		"nodevirt_args":     fmt.Sprintf("--state %s --source %s --root %s --libvirt test:///default --namespace %s", state, src, root, ns),
		"running_vms":       []string{"web"},
		"stopped_vms":       []string{"spare"},
		"maintained_object": "vm/web",
		"image_src":         filepath.Join(dir, "images/v2.img"),
		"image_dest":        filepath.Join(dir, "images/web.img"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ansibleHome := t.TempDir()
	play := func() (ok, changed, failed int) {
		t.Helper()
		cmd := exec.Command(playbook, "-i", "../examples/ansible/inventory.ini", "-e", string(vars), "../examples/ansible/site.yml")
		cmd.Env = append(os.Environ(), "ANSIBLE_HOME="+ansibleHome, "ANSIBLE_LOCAL_TEMP="+filepath.Join(ansibleHome, "tmp"),
			"ANSIBLE_REMOTE_TEMP="+filepath.Join(ansibleHome, "remote"), "ANSIBLE_NOCOLOR=1", "ANSIBLE_RETRY_FILES_ENABLED=0")
		out, _ := cmd.CombinedOutput()
		m := recap.FindSubmatch(out)
		if m == nil {
			t.Fatalf("ansible-playbook printed no recap:\n%s", out)
		}
		ok, _ = strconv.Atoi(string(m[1]))
		changed, _ = strconv.Atoi(string(m[2]))
		failed, _ = strconv.Atoi(string(m[4]))
		if failed != 0 || string(m[3]) != "0" {
			t.Fatalf("the playbook failed:\n%s\nagent log:\n%s", out, a.logs())
		}
		t.Logf("recap: ok=%d changed=%d", ok, changed)
		return ok, changed, failed
	}

	// start web, stop spare, suspend, the copy, resume and the reconcile
	// it notifies: six changes.
	if _, changed, _ := play(); changed != 6 {
		t.Errorf("first run: changed=%d, want 6 (start, stop, suspend, copy, resume, reconcile)", changed)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "images/web.img")); err != nil || string(b) != "the new image\n" {
		t.Errorf("the maintenance step did not put the new image in place: %q %v", b, err)
	}
	// What the agent says after the reconcile the playbook asked for.
	await(t, "web running and spare stopped in the agent's status", 30*time.Second, func() bool {
		var vms struct {
			Items []struct {
				Metadata struct{ Name string }
				Status   struct{ PrintableStatus string }
			}
		}
		if json.Unmarshal(cli("get", "vm", "-o", "json"), &vms) != nil {
			return false
		}
		got := map[string]string{}
		for _, v := range vms.Items {
			got[v.Metadata.Name] = v.Status.PrintableStatus
		}
		return got["web"] == "Running" && got["spare"] == "Stopped"
	})
	var st struct{ Suspension struct{ Objects []string } }
	if err := json.Unmarshal(cli("-o", "json", "status"), &st); err != nil || len(st.Suspension.Objects) != 0 {
		t.Errorf("the playbook left objects suspended: %v (%v)", st.Suspension.Objects, err)
	}

	if _, changed, _ := play(); changed != 0 {
		t.Errorf("second run: changed=%d, want 0: the playbook is not idempotent", changed)
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

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
