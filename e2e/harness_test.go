//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/nodevirt/nodevirt/internal/testenv"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// nodevirtBin is built once by TestMain from this checkout.
var nodevirtBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nodevirt-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nodevirtBin = filepath.Join(dir, "nodevirt")
	build := exec.Command("go", "build", "-o", nodevirtBin, "../cmd/nodevirt")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building nodevirt:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need is one precondition an e2e test has; require checks them all.
type need int

const (
	Root need = iota
	Libvirtd
	Git
	QemuImg
)

// require states in one sentence what is missing. Under CI=true a missing
// precondition fails the test: `make test` installs and starts everything,
// so a skip there would hide a broken set-up.
func require(t testing.TB, needs ...need) {
	t.Helper()
	for _, n := range needs {
		var missing string
		switch n {
		case Root:
			if os.Geteuid() != 0 {
				missing = "e2e tests run as root (they drive qemu:///system and loop devices)"
			}
		case Libvirtd:
			if err := exec.Command("virsh", "-c", "qemu:///system", "version").Run(); err != nil {
				missing = "libvirtd does not answer on qemu:///system (" + err.Error() + "); `make test` installs and starts it"
			}
		case Git:
			if _, err := exec.LookPath("git"); err != nil {
				missing = "git is not installed; `make test` installs it"
			}
		case QemuImg:
			if _, err := exec.LookPath("qemu-img"); err != nil {
				missing = "qemu-img is not installed; `make test` installs qemu-utils"
			}
		}
		if missing != "" {
			missingPrecondition(t, missing)
		}
	}
}

// missingPrecondition is testenv's one rule for an unmet precondition
// (fail in CI, skip with the reason elsewhere).
func missingPrecondition(t testing.TB, missing string) {
	t.Helper()
	testenv.Missing(t, "e2e: "+missing)
}

var kvmOnce sync.Once

// warnTCG says loudly when domains run under TCG emulation instead of KVM.
func warnTCG(t testing.TB) {
	kvmOnce.Do(func() {
		if _, err := os.Stat("/dev/kvm"); err != nil {
			fmt.Fprintln(os.Stderr, "\n*** WARNING: /dev/kvm is missing: e2e domains run under TCG emulation (type='qemu'); timings are not representative ***")
		}
	})
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Log("WARNING: no /dev/kvm; running under TCG")
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// world is one test's private world: a namespace no other test uses, a
// state directory, a bare git repository with a work tree, and cleanup of
// every domain in the namespace.
type world struct {
	t        testing.TB
	ns       string
	state    string
	bare     string
	work     string
	hostRoot string
}

func newWorld(t testing.TB) *world {
	t.Helper()
	require(t, Root, Libvirtd, Git, QemuImg)
	warnTCG(t)
	// QEMU runs as libvirt-qemu: disk directories must be traversable, which
	// t.TempDir's 0700 directories are not.
	base, err := os.MkdirTemp("/var/tmp", "nodevirt-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	w := &world{
		t:        t,
		ns:       "e2e-" + randHex(3),
		state:    filepath.Join(base, "state"),
		bare:     filepath.Join(base, "repo.git"),
		work:     filepath.Join(base, "work"),
		hostRoot: filepath.Join(base, "root"),
	}
	for _, d := range []string{w.hostRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w.git(base, "init", "-q", "--bare", "-b", "main", w.bare)
	w.git(base, "init", "-q", "-b", "main", w.work)
	t.Cleanup(func() {
		w.removeDomains()
		os.RemoveAll(base)
	})
	return w
}

func (w *world) git(dir string, args ...string) string {
	w.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=e2e", "-c", "user.email=e2e@nodevirt.invalid", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		w.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (path → content; "" deletes), commits and pushes to
// the bare repository; it returns the new commit hash.
func (w *world) commit(msg string, files map[string]string) string {
	w.t.Helper()
	for p, content := range files {
		full := filepath.Join(w.work, p)
		if content == "" {
			_ = os.Remove(full)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	w.git(w.work, "add", "-A")
	w.git(w.work, "commit", "-q", "--allow-empty", "-m", msg)
	w.git(w.work, "push", "-q", w.bare, "main")
	return w.git(w.work, "rev-parse", "HEAD")
}

func (w *world) dom(name string) string { return w.ns + "_" + name }

// nodevirt runs the CLI once against this world's git repository.
func (w *world) nodevirt(args ...string) (string, string, error) {
	w.t.Helper()
	return w.nodevirtAt("file://"+w.bare, args...)
}

// nodevirtAt runs the CLI once against the given source.
func (w *world) nodevirtAt(source string, args ...string) (string, string, error) {
	w.t.Helper()
	full := append([]string{"--source", source, "--state", w.state, "--root", w.hostRoot,
		"--libvirt", "qemu:///system", "--namespace", w.ns, "--allowed-host-dirs", hostImageDir}, args...)
	cmd := exec.Command(nodevirtBin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func (w *world) mustNodevirt(args ...string) string {
	w.t.Helper()
	out, errOut, err := w.nodevirt(args...)
	if err != nil {
		w.t.Fatalf("nodevirt %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, out, errOut)
	}
	return out
}

// agent is a running `nodevirt run`.
type agent struct {
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// startAgent runs `nodevirt run` on this world's git repository, polling every second.
func (w *world) startAgent(args ...string) *agent {
	w.t.Helper()
	return w.start(append([]string{"--source", "file://" + w.bare, "--state", w.state, "--root", w.hostRoot,
		"--libvirt", "qemu:///system", "--namespace", w.ns, "--allowed-host-dirs", hostImageDir, "run", "--interval", "1s"}, args...)...)
}

// hostImageDir is the directory, under each world's host root, that the
// CLI is allowed to take hostDisk files and local containerDisk images from.
const hostImageDir = "/images"

// hostImage puts the file src into the world's host root under
// hostImageDir (a hard link when it can, else a copy) and returns its path
// as manifests name it: host files are resolved under --root.
func (w *world) hostImage(src string) string {
	w.t.Helper()
	dir := filepath.Join(w.hostRoot, hostImageDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.Link(src, dst); err != nil {
		data, err := os.ReadFile(src)
		if err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	return path.Join(hostImageDir, filepath.Base(src))
}

// start runs the nodevirt binary with exactly these arguments until the test ends.
func (w *world) start(full ...string) *agent {
	w.t.Helper()
	a := &agent{log: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	// Agents of tests that run side by side must not share the API's
	// default port: each listens on one of its own unless told otherwise.
	if slices.Contains(full, "run") && !slices.ContainsFunc(full, func(s string) bool { return strings.HasPrefix(s, "--listen") }) {
		full = append(full, "--listen", "127.0.0.1:0")
	}
	a.cmd = exec.Command(nodevirtBin, full...)
	a.cmd.Stdout = lockedBuffer{a.mu, a.log}
	a.cmd.Stderr = lockedBuffer{a.mu, a.log}
	if err := a.cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	w.t.Cleanup(func() {
		a.stop()
		if w.t.Failed() {
			w.t.Logf("agent log:\n%s", a.logs())
		}
	})
	return a
}

func (a *agent) logs() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log.String()
}

func (a *agent) stop() {
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Signal(os.Interrupt)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

func (a *agent) kill9() {
	_ = a.cmd.Process.Kill()
	<-a.done
}

func virsh(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("virsh", append([]string{"-c", "qemu:///system"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func virshOK(args ...string) (string, error) {
	out, err := exec.Command("virsh", append([]string{"-c", "qemu:///system"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// domState is the domain's state as virsh says it, or "absent".
func domState(name string) string {
	out, err := virshOK("domstate", name)
	if err != nil {
		return "absent"
	}
	return strings.SplitN(out, "\n", 2)[0]
}

// await polls cond until it holds or the timeout passes.
func await(t testing.TB, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
	return 0
}

func (w *world) awaitState(name, state string, timeout time.Duration) time.Duration {
	w.t.Helper()
	return await(w.t, fmt.Sprintf("domain %s to be %s (is %s)", w.dom(name), state, domState(w.dom(name))), timeout,
		func() bool { return domState(w.dom(name)) == state })
}

func (w *world) domains() []string {
	out, err := virshOK("list", "--all", "--name")
	if err != nil {
		w.t.Fatalf("virsh list: %v", err)
	}
	var mine []string
	for _, n := range strings.Fields(out) {
		if strings.HasPrefix(n, w.ns+"_") {
			mine = append(mine, n)
		}
	}
	return mine
}

func (w *world) removeDomains() {
	out, _ := virshOK("list", "--all", "--name")
	for _, n := range strings.Fields(out) {
		if strings.HasPrefix(n, w.ns+"_") || strings.HasPrefix(n, "handmade-"+w.ns) {
			_, _ = virshOK("destroy", n)
			_, _ = virshOK("undefine", "--nvram", n)
			_, _ = virshOK("undefine", n)
		}
	}
}

// vmYAML is a small VM: no OS (SeaBIOS idles), so it starts in well under a
// second; terminationGracePeriodSeconds 0 because no guest answers ACPI.
//
// The CPU keeps KubeVirt's default host-model but disables
// arch-capabilities: nested KVM hosts (this CI machine among them) cannot set
// the IA32_ARCH_CAPABILITIES MSR and QEMU aborts with "failed to set MSR
// 0x10a". Disabling it is what a KubeVirt user writes for such hosts.
func vmYAML(ns, name, memory, runStrategy string) string {
	return fmt.Sprintf(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: %s
  namespace: %s
spec:
  runStrategy: %s
  template:
    spec:
      terminationGracePeriodSeconds: 0
      domain:
        cpu:
          features:
            - name: arch-capabilities
              policy: disable
        memory:
          guest: %s
        devices:
          disks:
            - name: data
              disk:
                bus: virtio
      volumes:
        - name: data
          emptyDisk:
            capacity: 16Mi
`, name, ns, runStrategy, memory)
}
