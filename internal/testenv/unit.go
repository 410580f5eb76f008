package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// VerifyUnit checks a nodevirt unit file as systemd itself reads it
// (systemd-analyze verify), with its ExecStart binary at bin and a
// stand-in libvirtd unit to satisfy Requires=.
func VerifyUnit(t testing.TB, unit []byte, bin string) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		Missing(t, "systemd-analyze (package systemd)")
	}
	dir := t.TempDir()
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/nodevirt", bin)
	if err := os.WriteFile(filepath.Join(dir, "nodevirt.service"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "libvirtd.service"), []byte("[Service]\nExecStart="+bin+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", filepath.Join(dir, "nodevirt.service"), filepath.Join(dir, "libvirtd.service"))
	cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
	if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "nodevirt.service:") {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
