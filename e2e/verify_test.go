//go:build e2e

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/internal/testenv"
)

// haltedVM is a VM that is defined but never started: these tests are
// about which revision is applied, not about guests.
func haltedVM(ns, name string) string {
	return strings.Replace(benchVM(ns, name), "runStrategy: Always", "runStrategy: Halted", 1)
}

// sourceStatus is the part of `nodevirt status -o json` these tests read.
type sourceStatus struct {
	Source struct {
		Revision string `json:"revision"`
		Refused  *struct {
			Revision string `json:"revision"`
			Author   string `json:"author"`
			Reason   string `json:"reason"`
			Message  string `json:"message"`
		} `json:"refused"`
	} `json:"source"`
}

func (w *world) sourceStatus() sourceStatus {
	w.t.Helper()
	var st sourceStatus
	out := w.mustNodevirt("status", "-o", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		w.t.Fatalf("status -o json: %v\n%s", err, out)
	}
	return st
}

// signedCommit commits files signed with the git config in sign (and
// extra environment in env) and pushes; it returns the commit hash.
func (w *world) signedCommit(msg string, env []string, sign []string, files map[string]string) string {
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
	args := append([]string{"-c", "user.name=e2e", "-c", "user.email=e2e@nodevirt.invalid"}, sign...)
	cmd := exec.Command("git", append(args, "commit", "-q", "-S", "-m", msg)...)
	cmd.Dir = w.work
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		w.t.Fatalf("signed commit: %v\n%s", err, out)
	}
	w.git(w.work, "push", "-q", w.bare, "main")
	return w.git(w.work, "rev-parse", "HEAD")
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		testenv.Missing(t, "e2e: signed commits need "+name+" (hack/setup.sh installs gnupg and openssh-client)")
	}
}

// metricsOf scrapes the running agent's /metrics over HTTPS with a token.
func (w *world) metricsOf(t *testing.T) string {
	t.Helper()
	url, client := w.agentHTTPS(t)
	token := strings.TrimSpace(w.mustNodevirt("token", "create", "--name", "e2e-metrics", "--ttl", "1h"))
	req, _ := http.NewRequest("GET", url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestVerify_signedAndUnsigned(t *testing.T) {
	w := newWorld(t)
	needTool(t, "ssh-keygen")
	needTool(t, "gpg")
	base := filepath.Dir(w.state)

	sshKey := filepath.Join(base, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops", "-f", sshKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	gnupg, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(gnupg, 0o700)
	gpgEnv := []string{"GNUPGHOME=" + gnupg}
	t.Cleanup(func() {
		c := exec.Command("gpgconf", "--kill", "gpg-agent")
		c.Env = append(os.Environ(), gpgEnv...)
		c.Run()
		os.RemoveAll(gnupg)
	})
	gpg := func(args ...string) []byte {
		c := exec.Command("gpg", append([]string{"--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		c.Env = append(os.Environ(), gpgEnv...)
		out, err := c.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return out
	}
	gpg("--quick-gen-key", "release <release@nodevirt.invalid>", "ed25519", "sign", "never")
	keys := filepath.Join(base, "keys")
	if err := os.MkdirAll(keys, 0o755); err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(sshKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "ops.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "release.asc"), gpg("--armor", "--export", "release@nodevirt.invalid"), 0o644); err != nil {
		t.Fatal(err)
	}
	sshSign := []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + sshKey + ".pub"}
	gpgSign := []string{"-c", "gpg.format=openpgp", "-c", "user.signingkey=release@nodevirt.invalid"}

	w.signedCommit("web, signed with SSH", nil, sshSign, map[string]string{"vms/web.yaml": haltedVM(w.ns, "web")})
	good := w.signedCommit("db, signed with OpenPGP", gpgEnv, gpgSign, map[string]string{"vms/db.yaml": haltedVM(w.ns, "db")})
	w.startAgent("--verify-signatures", "--verify-keys-dir", keys)
	await(t, "web and db defined from the signed commits", 60*time.Second, func() bool {
		return domState(w.dom("web")) != "absent" && domState(w.dom("db")) != "absent"
	})

	// Unsigned: it would remove db and add cache.
	bad := w.commit("unsigned: cache instead of db", map[string]string{"vms/db.yaml": "", "vms/cache.yaml": haltedVM(w.ns, "cache")})
	var st sourceStatus
	await(t, "the unsigned commit refused in the status", 30*time.Second, func() bool {
		st = w.sourceStatus()
		return st.Source.Refused != nil && strings.Contains(st.Source.Refused.Revision, bad)
	})
	if r := st.Source.Refused; r.Reason != "unsigned" || !strings.Contains(r.Author, "e2e@nodevirt.invalid") {
		t.Fatalf("refusal %+v, want unsigned by the e2e author", r)
	}
	if !strings.Contains(st.Source.Revision, good) {
		t.Fatalf("status revision %s, want the last verified %s", st.Source.Revision, good)
	}
	time.Sleep(3 * time.Second) // several polls
	if domState(w.dom("db")) == "absent" || domState(w.dom("cache")) != "absent" {
		t.Fatalf("the unsigned commit was applied: db %s, cache %s", domState(w.dom("db")), domState(w.dom("cache")))
	}
	metrics := w.metricsOf(t)
	for _, want := range []string{`nodevirt_source_refused_total{reason="unsigned"}`,
		`nodevirt_source_refused_revision_info{reason="unsigned",revision="main@sha1:` + bad + `"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, `nodevirt_source_refused_total{reason="unsigned"} 0`) {
		t.Errorf("refusals not counted:\n%s", metrics)
	}

	// A signed commit on top is applied, with what the unsigned one changed.
	w.signedCommit("signed on top", nil, sshSign, map[string]string{"vms/web.yaml": haltedVM(w.ns, "web") + "# signed\n"})
	await(t, "the signed commit on top applied", 60*time.Second, func() bool {
		return domState(w.dom("cache")) != "absent" && domState(w.dom("db")) == "absent"
	})
	if st := w.sourceStatus(); st.Source.Refused != nil {
		t.Fatalf("refusal still shown after a verified revision: %+v", st.Source.Refused)
	}
}

func TestVerify_rewindRefusedThenAllowed(t *testing.T) {
	w := newWorld(t)
	first := w.commit("web", map[string]string{"vms/web.yaml": haltedVM(w.ns, "web")})
	second := w.commit("db", map[string]string{"vms/db.yaml": haltedVM(w.ns, "db")})
	a := w.startAgent()
	await(t, "web and db defined", 60*time.Second, func() bool {
		return domState(w.dom("web")) != "absent" && domState(w.dom("db")) != "absent"
	})

	// Force-push back to the first commit: refused, db stays.
	w.git(w.work, "reset", "-q", "--hard", first)
	w.git(w.work, "push", "-q", "-f", w.bare, "main")
	var st sourceStatus
	await(t, "the rewind refused in the status", 30*time.Second, func() bool {
		st = w.sourceStatus()
		return st.Source.Refused != nil
	})
	if r := st.Source.Refused; r.Reason != "rewind" || !strings.Contains(r.Message, first) || !strings.Contains(r.Message, second) {
		t.Fatalf("refusal %+v, want a rewind naming %s and %s", r, first, second)
	}
	time.Sleep(3 * time.Second)
	if domState(w.dom("db")) == "absent" {
		t.Fatal("the refused rewind removed db")
	}
	if out := w.mustNodevirt("status"); !strings.Contains(out, "Refused:") || !strings.Contains(out, "(rewind)") {
		t.Errorf("status table does not show the refusal:\n%s", out)
	}
	if !strings.Contains(a.logs(), "revision refused") {
		t.Errorf("the refusal is not in the agent's log")
	}

	// The marker naming the commit rewound from confirms it.
	marker := w.commit("confirm the rewind", map[string]string{".nodevirt/allow-rewind": second + "\n"})
	await(t, "the confirmed rewind applied (db removed)", 60*time.Second, func() bool {
		return domState(w.dom("db")) == "absent"
	})
	if st := w.sourceStatus(); st.Source.Refused != nil || !strings.Contains(st.Source.Revision, marker) {
		t.Fatalf("status after the confirmed rewind: %+v", st.Source)
	}

	// Back to the second commit: the old marker does not bless this one;
	// a restart with --allow-rewind does.
	w.git(w.work, "reset", "-q", "--hard", second)
	w.git(w.work, "push", "-q", "-f", w.bare, "main")
	await(t, "the second rewind refused", 30*time.Second, func() bool {
		st := w.sourceStatus()
		return st.Source.Refused != nil && strings.Contains(st.Source.Refused.Revision, second)
	})
	if domState(w.dom("db")) != "absent" {
		t.Fatal("the refused rewind defined db")
	}
	a.stop()
	w.startAgent("--allow-rewind")
	await(t, "the rewind allowed by --allow-rewind (db back)", 60*time.Second, func() bool {
		return domState(w.dom("db")) != "absent"
	})
}
