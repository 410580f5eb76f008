//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// libvirtdPidFile is where `libvirtd -d` (as hack/setup.sh starts it)
// records its pid.
const libvirtdPidFile = "/run/libvirtd.pid"

// libvirtdPid is the running libvirtd's pid, or 0.
func libvirtdPid() int {
	out, err := exec.Command("pgrep", "-x", "libvirtd").Output()
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.Fields(string(out))[0])
	return pid
}

// startLibvirtd starts the daemons exactly as hack/setup.sh does (no
// systemd) unless libvirtd already runs, and waits until it answers on
// qemu:///system.
func startLibvirtd(t testing.TB) {
	t.Helper()
	if exec.Command("pgrep", "-x", "virtlogd").Run() != nil {
		if out, err := exec.Command("virtlogd", "-d").CombinedOutput(); err != nil {
			t.Fatalf("start virtlogd: %v\n%s", err, out)
		}
	}
	if libvirtdPid() == 0 {
		_ = os.Remove(libvirtdPidFile)
		if out, err := exec.Command("libvirtd", "-d").CombinedOutput(); err != nil {
			t.Fatalf("start libvirtd: %v\n%s", err, out)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := exec.Command("virsh", "-c", "qemu:///system", "list").Run()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("libvirtd was started again but does not answer on qemu:///system after 60s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// restartLibvirtd stops libvirtd (SIGTERM, as a service manager would),
// keeps it down for down, and starts it again the way hack/setup.sh does.
// Whatever happens, libvirtd runs again when the test ends: every other e2e
// test in this package shares it. Running guests survive: QEMU is not a
// child of libvirtd's lifetime.
func restartLibvirtd(t testing.TB, down time.Duration) {
	t.Helper()
	t.Cleanup(func() { startLibvirtd(t) })
	pid := libvirtdPid()
	if pid == 0 {
		t.Fatal("restart libvirtd: it is not running")
	}
	if out, err := exec.Command("kill", "-TERM", strconv.Itoa(pid)).CombinedOutput(); err != nil {
		t.Fatalf("stop libvirtd (pid %d): %v\n%s", pid, err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for libvirtdPid() == pid {
		if time.Now().After(deadline) {
			t.Fatalf("libvirtd (pid %d) did not exit within 30s of SIGTERM", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(down)
	startLibvirtd(t)
}
