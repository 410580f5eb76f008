package nodevirt_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/internal/testenv"
)

// The systemd unit is what systemd itself accepts (systemd-analyze verify,
// with the binary where ExecStart says and a stand-in libvirtd unit), and it
// says what the agent does: Type=notify with a watchdog, restart on failure.
func TestPackaging_systemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Missing(t, "systemd-analyze (package systemd)")
	}
	unit, err := os.ReadFile("packaging/nodevirt.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=on-failure", "ExecStart=/usr/local/bin/nodevirt run --config /etc/nodevirt/config.yaml "} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nodevirt")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
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
