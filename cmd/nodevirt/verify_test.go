package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/internal/testenv"
)

// Verification that could not work stops the command before anything is
// fetched, naming the flag to fix.
func TestVerifyFlags_refusedAtStart(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		testenv.Missing(t, "needs the git CLI on PATH to make a bare repository")
	}
	bare := filepath.Join(t.TempDir(), "repo.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", "-b", "main", bare).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	empty := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--verify-signatures"}, "--verify-signatures needs --verify-keys-dir"},
		{[]string{"--verify-keys-dir", empty}, "--verify-signatures is not"},
		{[]string{"--verify-mode", "tag"}, "--verify-signatures is not"},
		{[]string{"--verify-signatures", "--verify-keys-dir", empty}, "holds no *.asc (OpenPGP) or *.pub (SSH) key"},
		{[]string{"--verify-signatures", "--verify-keys-dir", filepath.Join(empty, "missing")}, "keys directory"},
		{[]string{"--verify-signatures", "--verify-keys-dir", empty, "--verify-mode", "all"}, `verify mode "all"`},
	} {
		args := append([]string{"plan", "--libvirt", "test:///default", "--source", bare}, tc.args...)
		out, errOut, code := run(t, args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q (stdout %q), want an error containing %q", tc.args, code, errOut, out, tc.want)
		}
	}
}
