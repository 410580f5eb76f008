package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/runtime/statedb"
)

// treeDigest maps every file and symlink under dir to a digest of its
// content, mode and link target.
func treeDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "-> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("%v %x", fi.Mode(), sha256.Sum256(b))
		default:
			out[rel] = fi.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes. The deadline is
// generous: the agent's first iteration runs every stage on a shared,
// loaded machine.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A running agent holds the state directory: host apply, storage apply and
// apply on the same --state refuse at once with the lock error and change
// no file, while host plan still runs beside it. Once the agent stops,
// host apply runs.
func TestHostApply_besideRunningAgent(t *testing.T) {
	root, state, empty := fakeHost(t), t.TempDir(), t.TempDir()
	write(t, root, "etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n")
	common := []string{"--state", state, "--root", root, "--node", "n1", "--libvirt", "test:///default", "--log-level", "error"}

	ctx, cancel := context.WithCancel(t.Context())
	agent := newRootCmd()
	var agentOut bytes.Buffer
	agent.SetOut(&agentOut)
	agent.SetErr(&agentOut)
	agent.SetArgs(append(append([]string{}, common...), "--source", "../../examples/host", "run", "--interval", "1h", "--drift-interval", "1h", "--listen", "127.0.0.1:0"))
	done := make(chan error, 1)
	go func() { done <- agent.ExecuteContext(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent: %v\n%s", err, agentOut.String())
			}
		}
	}
	defer stop()

	// The agent's first iteration wrote the host configuration and its
	// record; /etc then stays as it is (the next iteration is an hour away).
	vfio := filepath.Join(root, "etc/modprobe.d/vfio.conf")
	waitFor(t, "the agent to apply the host configuration", 2*time.Minute, func() bool {
		select {
		case err := <-done:
			t.Fatalf("agent exited: %v\n%s", err, agentOut.String())
		default:
		}
		_, errFile := os.Stat(vfio)
		_, errRec := os.Stat(filepath.Join(state, "host/record.json"))
		return errFile == nil && errRec == nil
	})
	etc := filepath.Join(root, "etc")
	before := treeDigest(t, etc)
	waitFor(t, "/etc to settle", time.Minute, func() bool {
		time.Sleep(500 * time.Millisecond)
		now := treeDigest(t, etc)
		settled := cmp.Equal(before, now)
		before = now
		return settled
	})

	lockErr := "another nodevirt holds the state directory " + state + ": stop it or use another --state"
	for _, cmd := range [][]string{
		// An empty source with the guard confirmed: only the lock stops it.
		{"host", "apply", "--source", empty, "--allow-prune-all"},
		{"storage", "apply", "--source", empty, "--allow-prune-all"},
		{"apply", "--source", empty, "--allow-prune-all"},
	} {
		start := time.Now()
		out, errOut, code := run(t, append(append([]string{}, common...), cmd...)...)
		if code == 0 || !strings.Contains(errOut, lockErr) {
			t.Errorf("%s beside the agent: exit %d, want the lock error %q\n%s%s", strings.Join(cmd[:2], " "), code, lockErr, out, errOut)
		}
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("%s took %s to refuse; it must fail fast", strings.Join(cmd[:2], " "), took)
		}
		if diff := cmp.Diff(before, treeDigest(t, etc)); diff != "" {
			t.Fatalf("%s beside the agent changed /etc (-before +after):\n%s", strings.Join(cmd[:2], " "), diff)
		}
	}

	// Read-only: host plan reads the record without the lock.
	out, errOut, code := run(t, append(append([]string{}, common...), "host", "plan", "--source", empty, "--allow-prune-all")...)
	if code != 0 || !strings.Contains(out, "remove-file") || !strings.Contains(out, "/etc/modprobe.d/vfio.conf") {
		t.Errorf("host plan beside the agent: exit %d\n%s%s", code, out, errOut)
	}

	stop()
	out, errOut, code = run(t, append(append([]string{}, common...), "host", "apply", "--source", empty, "--allow-prune-all")...)
	if code != 0 {
		t.Fatalf("host apply after the agent stopped: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(vfio); !os.IsNotExist(err) {
		t.Errorf("host apply with the lock free did not prune (confirmed): %v\n%s", err, out)
	}
}

// A read-only command beside a holder of the state directory clones a git
// source into a scratch directory: the agent's <state>/source, which only
// one process may use, is left alone.
func TestReadOnly_gitSourceBesideAgent(t *testing.T) {
	repo, state := t.TempDir(), t.TempDir()
	write(t, repo, "host/90-sysctl.bu", "variant: fcos\nversion: 1.6.0\n")
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "one"}} {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@nodevirt.invalid", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("git %v: %v\n%s", args, err, out)
		}
	}
	db, err := statedb.Open(filepath.Join(state, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out, errOut, code := run(t, "--state", state, "validate", "--source", "file://"+repo)
	if code != 0 {
		t.Fatalf("validate beside the agent: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(state, "source")); !os.IsNotExist(err) {
		t.Errorf("validate wrote into the agent's source directory: %v", err)
	}
	db.Close()
	if _, _, code := run(t, "--state", state, "validate", "--source", "file://"+repo); code != 0 {
		t.Fatalf("validate: exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(state, "source")); err != nil {
		t.Errorf("without an agent, validate keeps its checkout in <state>/source: %v", err)
	}
}
