package nodevirt_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/internal/testenv"
)

// The systemd unit is what systemd itself accepts (systemd-analyze verify,
// with the binary where ExecStart says and a stand-in libvirtd unit), and it
// says what the agent does: Type=notify with a watchdog, restart on failure.
func TestPackaging_systemdUnit(t *testing.T) {
	unit, err := os.ReadFile("packaging/nodevirt.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=on-failure", "ExecStart=/usr/local/bin/nodevirt run --config /etc/nodevirt/config.yaml "} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	bin := filepath.Join(t.TempDir(), "nodevirt")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.VerifyUnit(t, unit, bin)
}
