package importer

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// cgroupHost is what this host offers for limiting qemu-img: the cgroup v2
// directory of this process and the controllers enabled there.
type cgroupHost struct {
	parent      string
	controllers map[string]bool
	// problem says why no child cgroup can be made; "" when one can.
	problem string
}

var cgroupSeq atomic.Int64

// cpuPeriod is cpu.max's period in microseconds.
const cpuPeriod = 100000

func (im *Importer) cgroups() cgroupHost {
	im.cgOnce.Do(func() { im.cg = detectCgroup(im.cfg.CgroupMount, im.cfg.ProcSelf) })
	return im.cg
}

// detectCgroup finds the cgroup v2 mount (from mountinfo unless given) and
// this process's directory in it.
func detectCgroup(mount, procSelf string) cgroupHost {
	if mount == "" {
		f, err := os.Open(filepath.Join(procSelf, "mountinfo"))
		if err != nil {
			return cgroupHost{problem: "cannot read mountinfo: " + err.Error()}
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			left, right, ok := strings.Cut(sc.Text(), " - ")
			lf, rf := strings.Fields(left), strings.Fields(right)
			if ok && len(lf) >= 5 && len(rf) >= 1 && rf[0] == "cgroup2" {
				mount = lf[4]
				break
			}
		}
		f.Close()
		if mount == "" {
			return cgroupHost{problem: "no cgroup v2 file system is mounted"}
		}
	}
	rel := "/"
	if b, err := os.ReadFile(filepath.Join(procSelf, "cgroup")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if p, ok := strings.CutPrefix(line, "0::"); ok {
				rel = p
			}
		}
	}
	h := cgroupHost{parent: filepath.Join(mount, rel), controllers: map[string]bool{}}
	b, err := os.ReadFile(filepath.Join(h.parent, "cgroup.controllers"))
	if err != nil {
		h.problem = "cannot read " + filepath.Join(h.parent, "cgroup.controllers") + ": " + err.Error()
		return h
	}
	for _, c := range strings.Fields(string(b)) {
		h.controllers[c] = true
	}
	return h
}

// cgroup is a child cgroup one qemu-img runs in.
type cgroup struct {
	dir string
	fd  int
}

// limit makes a child cgroup with lim, or says why it cannot. A zero lim
// needs none.
func (im *Importer) limit(lim Limits) (*cgroup, string) {
	if lim.CPUMillis <= 0 && lim.MemoryBytes <= 0 {
		return nil, ""
	}
	h := im.cgroups()
	if h.problem != "" {
		return nil, "limits not enforced: " + h.problem
	}
	return h.child(lim)
}

func (h cgroupHost) child(lim Limits) (*cgroup, string) {
	var need, missing []string
	if lim.CPUMillis > 0 {
		need = append(need, "cpu")
	}
	if lim.MemoryBytes > 0 {
		need = append(need, "memory")
	}
	for _, c := range need {
		if !h.controllers[c] {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Sprintf("limits not enforced: the cgroup v2 directory %s does not offer the %s controller (on a hybrid host they are bound to cgroup v1)", h.parent, strings.Join(missing, " and "))
	}
	enable := "+" + strings.Join(need, " +")
	if err := os.WriteFile(filepath.Join(h.parent, "cgroup.subtree_control"), []byte(enable), 0); err != nil {
		return nil, fmt.Sprintf("limits not enforced: enabling %s below %s failed: %v (run nodevirt in a delegated cgroup, e.g. systemd Delegate=yes)", strings.Join(need, ", "), h.parent, err)
	}
	dir := filepath.Join(h.parent, fmt.Sprintf("nodevirt-import-%d-%d", os.Getpid(), cgroupSeq.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Sprintf("limits not enforced: create cgroup %s: %v", dir, err)
	}
	var applied []string
	if lim.CPUMillis > 0 {
		quota := max(lim.CPUMillis*cpuPeriod/1000, 1000)
		v := fmt.Sprintf("%d %d", quota, cpuPeriod)
		if err := os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(v), 0); err != nil {
			_ = os.Remove(dir)
			return nil, fmt.Sprintf("limits not enforced: write %s/cpu.max: %v", dir, err)
		}
		applied = append(applied, "cpu.max "+v)
	}
	if lim.MemoryBytes > 0 {
		v := strconv.FormatInt(lim.MemoryBytes, 10)
		if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte(v), 0); err != nil {
			_ = os.Remove(dir)
			return nil, fmt.Sprintf("limits not enforced: write %s/memory.max: %v", dir, err)
		}
		applied = append(applied, "memory.max "+v)
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Sprintf("limits not enforced: open %s: %v", dir, err)
	}
	return &cgroup{dir: dir, fd: fd}, "limits enforced in cgroup " + dir + ": " + strings.Join(applied, ", ")
}

// apply starts cmd inside the cgroup (clone3 CLONE_INTO_CGROUP).
func (c *cgroup) apply(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: c.fd}
}

// remove closes and deletes the cgroup once its process is gone.
func (c *cgroup) remove() {
	if c.fd >= 0 {
		_ = syscall.Close(c.fd)
		c.fd = -1
	}
	for range 50 {
		if err := os.Remove(c.dir); err == nil || os.IsNotExist(err) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
