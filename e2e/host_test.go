//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Host configuration end to end: a real systemd, booted by systemd-nspawn
// from a Debian tree, is the host. nodevirt runs outside it with
// --root /proc/<pid>/root: files go into the container's tree, units through
// the container's D-Bus, kernel arguments into its GRUB drop-in and
// grub-mkconfig runs inside its root.

// hostOSTree is where the Debian tree is cached between runs.
const hostOSTree = "/var/tmp/nodevirt-e2e-os/bookworm"

// hostOSPackages go into the tree; a change rebuilds the cache.
const hostOSPackages = "systemd,systemd-sysv,dbus,grub2-common,kmod"

type hostNeed int

const (
	hostRoot hostNeed = iota
	hostNspawn
	hostGit
	hostTree
	hostBlockDevice
)

// requireHost says in one sentence what is missing; under CI=true a missing
// precondition fails, since `make test` installs everything.
func requireHost(t *testing.T, needs ...hostNeed) {
	t.Helper()
	for _, n := range needs {
		missing := ""
		switch n {
		case hostRoot:
			if os.Geteuid() != 0 {
				missing = "host configuration e2e tests run as root (they boot a systemd-nspawn container)"
			}
		case hostNspawn:
			for _, tool := range []string{"systemd-nspawn", "nsenter"} {
				if _, err := exec.LookPath(tool); err != nil {
					missing = tool + " is not installed; `make test` installs systemd-container"
				}
			}
		case hostGit:
			if _, err := exec.LookPath("git"); err != nil {
				missing = "git is not installed; `make test` installs it"
			}
		case hostTree:
			if err := ensureOSTree(t); err != nil {
				missing = "no Debian tree for the container: " + err.Error()
			}
		case hostBlockDevice:
			if _, err := blockDevice(filepath.Dir(hostOSTree)); err != nil {
				missing = "grub-mkconfig in the container needs its root on a block device: " + err.Error()
			}
		}
		if missing != "" {
			missingPrecondition(t, missing)
		}
	}
}

// ensureOSTree builds the cached tree with debootstrap once (about a
// minute, from the Debian mirror); later runs reuse it.
func ensureOSTree(t *testing.T) error {
	stamp := filepath.Join(hostOSTree, ".nodevirt-e2e")
	if b, err := os.ReadFile(stamp); err == nil && string(b) == hostOSPackages {
		return nil
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return errors.New("debootstrap is not installed; `make test` installs it")
	}
	start := time.Now()
	tmp := hostOSTree + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Dir(hostOSTree), 0o755); err != nil {
		return err
	}
	mirror := os.Getenv("NODEVIRT_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	out, err := exec.Command("debootstrap", "--variant=minbase", "--include="+hostOSPackages, "bookworm", tmp, mirror).CombinedOutput()
	if err != nil {
		return fmt.Errorf("debootstrap: %v: %s", err, lastLines(out, 5))
	}
	if err := os.WriteFile(filepath.Join(tmp, ".nodevirt-e2e"), []byte(hostOSPackages), 0o644); err != nil {
		return err
	}
	_ = os.RemoveAll(hostOSTree)
	if err := os.Rename(tmp, hostOSTree); err != nil {
		return err
	}
	t.Logf("built the container tree %s in %s", hostOSTree, time.Since(start).Round(time.Second))
	return nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// blockDevice returns the block device that holds dir, which grub-probe
// inside the container must be able to see.
func blockDevice(dir string) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	best, dev := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := 0
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep == 0 || len(fields) < sep+3 {
			continue
		}
		mp := fields[4]
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, dev = mp, fields[sep+2]
		}
	}
	if !strings.HasPrefix(dev, "/dev/") {
		return "", fmt.Errorf("%s is on %q, not a block device grub-probe can see", dir, dev)
	}
	return dev, nil
}

// container is a booted systemd-nspawn container.
type container struct {
	t    *testing.T
	dir  string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	pid  int // the container's PID 1, as the host sees it
	root string
}

func bootContainer(t *testing.T) *container {
	t.Helper()
	start := time.Now()
	base, err := os.MkdirTemp("/var/tmp", "nodevirt-e2e-host-")
	if err != nil {
		t.Fatal(err)
	}
	c := &container{t: t, dir: filepath.Join(base, "root"), log: &bytes.Buffer{}}
	t.Cleanup(func() {
		c.stop()
		os.RemoveAll(base)
	})
	if out, err := exec.Command("cp", "-a", hostOSTree, c.dir).CombinedOutput(); err != nil {
		t.Fatalf("copy tree: %v: %s", err, out)
	}
	// A kernel for grub-mkconfig's 10_linux to make an entry for.
	for _, f := range []string{"boot/vmlinuz-6.1.0-nodevirt-e2e", "boot/initrd.img-6.1.0-nodevirt-e2e"} {
		if err := os.WriteFile(filepath.Join(c.dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(c.dir, "boot/grub"), 0o755); err != nil {
		t.Fatal(err)
	}
	dev, err := blockDevice(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	name := "nve2e-" + randHex(3)
	c.cmd = exec.Command("systemd-nspawn", "--register=no", "--keep-unit", "-q", "-D", c.dir, "-M", name,
		"--bind-ro="+dev, "--boot", "systemd.firstboot=off")
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("systemd-nspawn: %v", err)
	}
	await(t, "the container's PID 1", 30*time.Second, func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", c.cmd.Process.Pid, c.cmd.Process.Pid))
		if err != nil {
			return false
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return false
		}
		c.pid, _ = strconv.Atoi(f[0])
		return true
	})
	c.root = fmt.Sprintf("/proc/%d/root", c.pid)
	await(t, "systemd in the container to finish booting", 60*time.Second, func() bool {
		out, _ := c.exec("systemctl", "is-system-running")
		s := strings.TrimSpace(out)
		return s == "running" || s == "degraded"
	})
	t.Logf("container %s booted in %s (PID 1 is %d on the host)", name, time.Since(start).Round(time.Millisecond), c.pid)
	return c
}

// exec runs a command inside the container.
func (c *container) exec(args ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.pid), "-a"}, args...)...).CombinedOutput()
	return string(out), err
}

// show returns systemctl show's properties of a unit, read over the
// container's D-Bus.
func (c *container) show(unit string, props ...string) map[string]string {
	c.t.Helper()
	args := []string{"systemctl", "show", unit}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	out, err := c.exec(args...)
	if err != nil {
		c.t.Fatalf("systemctl show %s: %v\n%s", unit, err, out)
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m
}

func (c *container) read(p string) string {
	b, _ := os.ReadFile(filepath.Join(c.root, p))
	return string(b)
}

func (c *container) write(p, content string, mode os.FileMode) {
	c.t.Helper()
	full := filepath.Join(c.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Chmod(full, mode); err != nil {
		c.t.Fatal(err)
	}
}

func (c *container) stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	// nspawn turns SIGTERM into an orderly poweroff of the container.
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
	c.cmd = nil
}

// hostRepo is a git repository the agent follows.
type hostRepo struct {
	t          *testing.T
	bare, work string
}

func newHostRepo(t *testing.T) *hostRepo {
	dir := t.TempDir()
	r := &hostRepo{t: t, bare: filepath.Join(dir, "repo.git"), work: filepath.Join(dir, "work")}
	r.git(dir, "init", "-q", "--bare", "-b", "main", r.bare)
	r.git(dir, "init", "-q", "-b", "main", r.work)
	return r
}

func (r *hostRepo) git(dir string, args ...string) {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=e2e", "-c", "user.email=e2e@nodevirt.invalid", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// commit writes files ("" deletes) and pushes.
func (r *hostRepo) commit(msg string, files map[string]string) {
	r.t.Helper()
	for p, content := range files {
		full := filepath.Join(r.work, p)
		if content == "" {
			_ = os.Remove(full)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git(r.work, "add", "-A")
	r.git(r.work, "commit", "-q", "--allow-empty", "-m", msg)
	r.git(r.work, "push", "-q", r.bare, "main")
}

// nodevirt runs `nodevirt host ...` against the container's root.
func (c *container) nodevirt(state, source string, args ...string) (string, int) {
	c.t.Helper()
	full := append([]string{"host"}, args...)
	full = append(full, "--source", "file://"+source, "--state", state, "--root", c.root, "--node", "worker-0", "--log-level", "warn")
	cmd := exec.Command(nodevirtBin, full...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("nodevirt %v: %v", full, err)
	}
	if errOut.Len() > 0 {
		c.t.Logf("nodevirt %s stderr:\n%s", strings.Join(args, " "), errOut.String())
	}
	return out.String(), code
}

type hostOutcome struct {
	Kind   string `json:"action"`
	Target string `json:"target"`
	Drift  bool   `json:"drift"`
	Result string `json:"result"`
	Error  string `json:"error"`
	Detail string `json:"detail"`
}

type hostApplyOut struct {
	Apply struct {
		Outcomes       []hostOutcome `json:"outcomes"`
		Failed         int           `json:"failed"`
		RebootRequired bool          `json:"rebootRequired"`
	} `json:"apply"`
}

func (c *container) apply(state, source string) hostApplyOut {
	c.t.Helper()
	out, code := c.nodevirt(state, source, "apply", "-o", "json")
	var r hostApplyOut
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		c.t.Fatalf("apply output: %v\n%s", err, out)
	}
	if code != 0 || r.Apply.Failed != 0 {
		c.t.Fatalf("apply: exit %d\n%s", code, out)
	}
	return r
}

func outcome(r hostApplyOut, kind, target string) hostOutcome {
	for _, o := range r.Apply.Outcomes {
		if o.Kind == kind && o.Target == target {
			return o
		}
	}
	return hostOutcome{}
}

// The e2e source: the seed's examples plus a oneshot unit that loads
// vfio-pci (skipped where modules cannot load, as in a container).
const modulesLoadMC = `apiVersion: machineconfiguration.openshift.io/v1
kind: MachineConfig
metadata:
  name: 60-worker-load-vfio
  labels:
    machineconfiguration.openshift.io/role: worker
spec:
  config:
    ignition:
      version: 3.2.0
    systemd:
      units:
      - name: load-vfio-pci.service
        enabled: true
        contents: |
          [Unit]
          Description=Load vfio-pci now (not only at the next boot)
          ConditionCapability=CAP_SYS_MODULE
          [Service]
          Type=oneshot
          RemainAfterExit=yes
          ExecStart=/sbin/modprobe vfio-pci
          [Install]
          WantedBy=multi-user.target
`

func exampleFiles(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{"host/60-worker-load-vfio.yaml": modulesLoadMC}
	ents, err := os.ReadDir("../examples/host")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("../examples/host", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files["host/"+e.Name()] = string(b)
	}
	return files
}

func TestHost_nspawn(t *testing.T) {
	requireHost(t, hostRoot, hostNspawn, hostGit, hostBlockDevice, hostTree)
	c := bootContainer(t)
	repo := newHostRepo(t)
	state := t.TempDir()
	repo.commit("host configuration from the seed", exampleFiles(t))
	// The distribution's own vfio.conf: saved, and restored when the config
	// leaves the source.
	const original = "# the distribution's vfio options\n"
	c.write("/etc/modprobe.d/vfio.conf", original, 0o640)

	start := time.Now()
	r := c.apply(state, repo.bare)
	t.Logf("first apply took %s", time.Since(start).Round(time.Millisecond))
	for _, want := range [][2]string{
		{"write-file", "/etc/modprobe.d/vfio.conf"},
		{"write-file", "/etc/modules-load.d/vfio-pci.conf"},
		{"write-unit", "/etc/systemd/system/hostpath-provisioner.service"},
		{"enable-unit", "hostpath-provisioner.service"},
		{"enable-unit", "load-vfio-pci.service"},
		{"stage-kargs", "kernel arguments (grub)"},
		{"restart-unit", "systemd-modules-load.service"},
	} {
		if o := outcome(r, want[0], want[1]); o.Result != "done" {
			t.Errorf("%s %s: %+v", want[0], want[1], o)
		}
	}
	// The seed's chcon unit runs through D-Bus and ends Result=success; on
	// this SELinux-less host systemd skips it (nodevirt's ConditionSecurity
	// guard), which nodevirt reports as not applicable.
	if o := outcome(r, "start-unit", "hostpath-provisioner.service"); o.Result != "not-applicable" || !strings.Contains(o.Detail, "Result=success") {
		t.Errorf("chcon unit: %+v", o)
	}
	if o := outcome(r, "not-applicable", "/var/hpvolumes"); o.Result != "reported" {
		t.Errorf("label check: %+v", o)
	}
	for _, unit := range []string{"hostpath-provisioner.service", "load-vfio-pci.service", "systemd-modules-load.service"} {
		p := c.show(unit, "Result", "ActiveState", "UnitFileState", "ConditionResult")
		if p["Result"] != "success" {
			t.Errorf("%s: %v", unit, p)
		}
		if unit != "systemd-modules-load.service" && p["UnitFileState"] != "enabled" {
			t.Errorf("%s not enabled: %v", unit, p)
		}
	}
	if o := outcome(r, "start-unit", "load-vfio-pci.service"); o.Result != "done" {
		t.Errorf("modules-load unit: %+v", o)
	}
	// Kernel arguments: the GRUB drop-in, picked up by grub-mkconfig inside
	// the container's root; the host runs without them, so reboot required.
	if got := c.read("/etc/default/grub.d/nodevirt.cfg"); !strings.Contains(got, `GRUB_CMDLINE_LINUX_DEFAULT="${GRUB_CMDLINE_LINUX_DEFAULT} intel_iommu=on"`) {
		t.Errorf("drop-in:\n%s", got)
	}
	if cfg := c.read("/boot/grub/grub.cfg"); !strings.Contains(cfg, "vmlinuz-6.1.0-nodevirt-e2e") || !strings.Contains(cfg, "intel_iommu=on") {
		t.Errorf("grub.cfg lacks the argument:\n%s", cfg)
	}
	if !r.Apply.RebootRequired {
		t.Error("reboot required not reported")
	}
	if got := c.read("/etc/modprobe.d/vfio.conf"); got != "options vfio-pci ids=10de:1eb8\n" {
		t.Errorf("vfio.conf = %q", got)
	}

	// In sync but for the reboot: the staged kernel argument and the module
	// options wait for the next boot, which is a difference (exit 2) and
	// the only one.
	c.onlyRebootPending(state, repo.bare, "right after apply")

	// vfio.conf edited by hand and the unit disabled: drift, field by
	// field, then healed.
	c.write("/etc/modprobe.d/vfio.conf", "options vfio-pci ids=10de:1eb8,10de:1db6\n", 0o600)
	if out, err := c.exec("systemctl", "disable", "hostpath-provisioner.service"); err != nil {
		t.Fatalf("disable: %v %s", err, out)
	}
	out, code := c.nodevirt(state, repo.bare, "drift", "--exit-code")
	for _, want := range []string{
		"DRIFTED         /etc/modprobe.d/vfio.conf",
		"\n                  -options vfio-pci ids=10de:1eb8,10de:1db6\n                  +options vfio-pci ids=10de:1eb8\n",
		"mode: 0600 -> 0644",
		"DRIFTED         hostpath-provisioner.service",
		"enabled: disabled -> enabled",
	} {
		if code != 2 || !strings.Contains(out, want) {
			t.Errorf("drift report (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
	r = c.apply(state, repo.bare)
	if o := outcome(r, "write-file", "/etc/modprobe.d/vfio.conf"); !o.Drift || o.Result != "done" {
		t.Errorf("heal vfio.conf: %+v", o)
	}
	if got := c.read("/etc/modprobe.d/vfio.conf"); got != "options vfio-pci ids=10de:1eb8\n" {
		t.Errorf("vfio.conf after heal = %q", got)
	}
	if p := c.show("hostpath-provisioner.service", "UnitFileState"); p["UnitFileState"] != "enabled" {
		t.Errorf("unit after heal: %v", p)
	}

	// The configs leave git: files removed or restored, units disabled,
	// the kernel argument unstaged.
	repo.commit("drop the VFIO and SELinux configs", map[string]string{
		"host/100-worker-vfiopci.bu":                        "",
		"host/100-worker-iommu.yaml":                        "",
		"host/50-set-selinux-for-hostpath-provisioner.yaml": "",
		"host/60-worker-load-vfio.yaml":                     "",
	})
	r = c.apply(state, repo.bare)
	if o := outcome(r, "restore-file", "/etc/modprobe.d/vfio.conf"); o.Result != "done" {
		t.Errorf("restore: %+v", o)
	}
	if got := c.read("/etc/modprobe.d/vfio.conf"); got != original {
		t.Errorf("vfio.conf = %q, want the original back", got)
	}
	if st, err := os.Stat(filepath.Join(c.root, "etc/modprobe.d/vfio.conf")); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("original mode: %v %v", st, err)
	}
	for _, gone := range []string{"/etc/modules-load.d/vfio-pci.conf", "/etc/systemd/system/hostpath-provisioner.service", "/etc/systemd/system/load-vfio-pci.service", "/etc/default/grub.d/nodevirt.cfg"} {
		if _, err := os.Lstat(filepath.Join(c.root, gone)); err == nil {
			t.Errorf("%s left behind", gone)
		}
	}
	if cfg := c.read("/boot/grub/grub.cfg"); strings.Contains(cfg, "intel_iommu=on") {
		t.Error("grub.cfg still has intel_iommu=on")
	}
	if p := c.show("hostpath-provisioner.service", "UnitFileState", "LoadState"); p["UnitFileState"] == "enabled" {
		t.Errorf("unit still enabled: %v", p)
	}
	// HostPathProvisioner stays: nodevirt now labels its directory itself.
	if o := outcome(r, "enable-unit", "nodevirt-selinux-var-hpvolumes.service"); o.Result != "done" {
		t.Errorf("generated SELinux unit: %+v", o)
	}
	// The restored module options still wait for the next boot.
	c.onlyRebootPending(state, repo.bare, "after removal")
}

// onlyRebootPending checks that host drift --exit-code exits 2 for a reboot
// the host needs and for nothing else: every entry is a reboot required or
// a check that is no difference.
func (c *container) onlyRebootPending(state, source, when string) {
	c.t.Helper()
	out, code := c.nodevirt(state, source, "drift", "--exit-code", "-o", "json")
	var rep struct {
		Entries []struct{ Status, Target, Reason string } `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		c.t.Fatalf("drift %s: %v\n%s", when, err, out)
	}
	reboot := 0
	for _, e := range rep.Entries {
		switch e.Status {
		case "reboot-required":
			reboot++
		case "not-applicable", "unbound":
		default:
			c.t.Errorf("drift %s: %s %s: %s", when, e.Status, e.Target, e.Reason)
		}
	}
	if want := 2; reboot == 0 || code != want {
		c.t.Errorf("drift %s: exit %d with %d reboots required, want exit %d for the reboot\n%s", when, code, reboot, want, out)
	}
}
