package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// nodevirt validate over a directory source whose vm.yaml is a symlink to a
// host file: the link is refused by name, and neither the message nor the
// source excerpt shows the host file (before, a YAML error quoted its line).
func TestValidate_symlinkToHostFileNotEchoed(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "shadow")
	write(t, filepath.Dir(secret), "shadow", "root: SECRETHASH: x\n")
	src := t.TempDir()
	if err := os.Symlink(secret, filepath.Join(src, "vm.yaml")); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "validate", "--source", src)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, "SECRETHASH") {
		t.Fatalf("validate echoes the host file:\n%s%s", out, errOut)
	}
	if !strings.Contains(errOut, "vm.yaml") || !strings.Contains(errOut, "leads outside the source tree") {
		t.Fatalf("want the link refused by name:\n%s", errOut)
	}
}
