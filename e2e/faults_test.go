//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A disk that fills during an import: apply fails naming the reason, the
// partial files are removed and nothing else on that file system or under
// the root changes.
func TestFaults_diskFullDuringImport(t *testing.T) {
	sw := newStorageWorld(t)
	hp := filepath.Join(sw.hostRoot, "var/hpvolumes")
	if err := os.MkdirAll(hp, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "nodevirt-e2e-full", hp).CombinedOutput(); err != nil {
		missingPrecondition(t, "cannot mount a tmpfs for the full disk: "+strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", hp).Run() })
	// Bystanders: a file on the small file system and one beside it.
	keep := map[string][]byte{
		filepath.Join(hp, "other-volume/disk.img"): bytes.Repeat([]byte("keep me "), 1<<16),
		filepath.Join(sw.hostRoot, "srv/data.txt"): []byte("unrelated data\n"),
	}
	for p, b := range keep {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := newImageHost(t)
	img := make([]byte, 24<<20) // does not compress, does not fit
	_, _ = rand.Read(img)
	dv := "full-" + randHex(3)
	sw.commit("disk full", map[string]string{
		"classes.yaml": storageClasses + sw.caConfigMap(h),
		"dv.yaml":      httpDV(dv, h.put("big.raw", img), "64Mi"),
	})
	out, errOut, err := sw.nodevirt("--secrets-dir", sw.secrets, "--node", storageNode, "apply", "--timeout", "3m")
	if err == nil {
		t.Fatalf("apply must fail when the disk fills:\n%s\n%s", out, errOut)
	}
	if !strings.Contains(errOut, "import "+sw.ns+"/"+dv+" failed") || !strings.Contains(errOut, "no space left on device") {
		t.Fatalf("apply must name the import and the reason:\n%s\n%s", out, errOut)
	}
	// Only the claim's (empty) volume directory is new; no partial file.
	err = filepath.Walk(hp, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		if _, ok := keep[p]; !ok {
			t.Errorf("left behind on the full file system: %s (%d bytes)", p, info.Size())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range keep {
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s changed (%v)", p, err)
		}
	}
}

// tenVMs commits ten small VMs that all should run.
func (w *world) tenVMs() int {
	files := map[string]string{}
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("rs%02d", i)
		files["vms/"+name+".yaml"] = vmYAML(w.ns, name, "32Mi", "Always")
	}
	w.commit("ten", files)
	return len(files)
}

// awaitConverged waits until exactly n domains of this world exist and all
// run, then checks that nothing is left to do: no domain was duplicated and
// the agent's state still knows every one.
func (w *world) awaitConverged(n int, timeout time.Duration) time.Duration {
	w.t.Helper()
	took := await(w.t, fmt.Sprintf("%d running domains", n), timeout, func() bool {
		doms := w.domains()
		if len(doms) > n {
			w.t.Fatalf("want at most %d domains, have %d: %v", n, len(doms), doms)
		}
		running := 0
		for _, d := range doms {
			if domState(d) == "running" {
				running++
			}
		}
		return running == n
	})
	if got := w.domains(); len(got) != n {
		w.t.Fatalf("want exactly %d domains, have %d: %v", n, len(got), got)
	}
	return took
}

// planInSync checks that a fresh plan has nothing to do for this world and
// counts all n of its domains in sync: the state records agree with libvirt.
// Actions on other namespaces (other tests' domains on the shared libvirtd,
// reported as orphans) are not this test's.
func (w *world) planInSync(n int) {
	w.t.Helper()
	out := w.mustNodevirt("plan", "-o", "json")
	var p struct {
		Actions []struct{ Action, Object, Reason string } `json:"actions"`
		InSync  []string                                  `json:"inSync"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		w.t.Fatalf("plan -o json: %v\n%s", err, out)
	}
	for _, a := range p.Actions {
		if strings.Contains(a.Object, " "+w.ns+"/") {
			w.t.Errorf("plan still wants to %s %s: %s", a.Action, a.Object, a.Reason)
		}
	}
	mine := 0
	for _, d := range p.InSync {
		if strings.HasPrefix(d, w.ns+"_") {
			mine++
		}
	}
	if mine != n {
		w.t.Errorf("plan counts %d of this test's domains in sync, want %d:\n%s", mine, n, out)
	}
}

// libvirtd restarted while the agent applies: the agent reconnects and
// converges with exactly one running domain per VM and a state that agrees.
func TestFaults_libvirtdRestart(t *testing.T) {
	t.Run("run", func(t *testing.T) {
		w := newWorld(t)
		n := w.tenVMs()
		a := w.startAgent()
		await(t, "the agent to be part way", 120*time.Second, func() bool { return len(w.domains()) >= 3 })
		t.Logf("restarting libvirtd with %d domains defined", len(w.domains()))
		start := time.Now()
		restartLibvirtd(t, 2*time.Second)
		t.Logf("libvirtd answers again after %s", time.Since(start).Round(time.Millisecond))
		took := w.awaitConverged(n, 300*time.Second)
		t.Logf("converged %s after libvirtd answered", took.Round(time.Millisecond))
		a.stop()
		w.planInSync(n)
	})
	// A one-shot apply waits for libvirtd to come back within its --timeout
	// and finishes what it started.
	t.Run("apply", func(t *testing.T) {
		w := newWorld(t)
		n := w.tenVMs()
		a := w.start("--source", "file://"+w.bare, "--state", w.state, "--root", w.hostRoot,
			"--libvirt", "qemu:///system", "--namespace", w.ns, "--allowed-host-dirs", hostImageDir, "apply", "--timeout", "5m")
		await(t, "apply to be part way", 120*time.Second, func() bool { return len(w.domains()) >= 3 })
		t.Logf("restarting libvirtd with %d domains defined", len(w.domains()))
		restartLibvirtd(t, 2*time.Second)
		select {
		case <-a.done:
		case <-time.After(6 * time.Minute):
			t.Fatalf("apply did not return:\n%s", a.logs())
		}
		if code := a.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("apply across a libvirtd restart must finish and exit 0, exit %d:\n%s", code, a.logs())
		}
		if testing.Verbose() {
			t.Logf("apply log:\n%s", a.logs())
		}
		w.awaitConverged(n, 60*time.Second)
		w.planInSync(n)
	})
}
