package source

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/internal/testenv"
)

// requireTool fails under CI=true and skips elsewhere when a signing tool
// is missing.
func requireTool(tb testing.TB, name string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		testenv.Missing(tb, "signed-commit tests need "+name+" on PATH (hack/setup.sh installs gnupg and openssh-client)")
	}
}

// sshSigner is an ed25519 key made by ssh-keygen for the test.
type sshSigner struct{ key, pub string }

func newSSHSigner(tb testing.TB) sshSigner {
	tb.Helper()
	requireTool(tb, "ssh-keygen")
	key := filepath.Join(tb.TempDir(), "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "signer", "-f", key).CombinedOutput(); err != nil {
		tb.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return sshSigner{key: key, pub: key + ".pub"}
}

// commitSSH commits like commit, signed with s in git's gpg.format ssh.
func (r *gitRepo) commitSigned(files map[string]string, sign ...string) string {
	r.tb.Helper()
	for name, content := range files {
		writeFile(r.tb, filepath.Join(r.work, filepath.FromSlash(name)), content)
	}
	r.git(r.work, "add", "-A")
	r.git(r.work, append(sign, "commit", "-q", "-S", "--allow-empty", "-m", "signed change")...)
	r.git(r.work, "push", "-q", "-f", "origin", "HEAD")
	return r.git(r.work, "rev-parse", "HEAD")
}

func (s sshSigner) args() []string {
	return []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + s.pub}
}

// gpgSigner is an OpenPGP key made by gpg in a temporary GNUPGHOME.
type gpgSigner struct {
	home, email, armored string
}

func newGPGSigner(tb testing.TB) gpgSigner {
	tb.Helper()
	requireTool(tb, "gpg")
	// gpg-agent's socket path must stay short: a t.TempDir() under a long
	// test name can exceed it.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		tb.Fatal(err)
	}
	os.Chmod(home, 0o700)
	g := gpgSigner{home: home, email: "signer@nodevirt.invalid"}
	tb.Cleanup(func() {
		c := exec.Command("gpgconf", "--kill", "gpg-agent")
		c.Env = append(os.Environ(), "GNUPGHOME="+home)
		c.Run()
		os.RemoveAll(home)
	})
	run := func(args ...string) string {
		c := exec.Command("gpg", append([]string{"--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		c.Env = append(os.Environ(), "GNUPGHOME="+home)
		out, err := c.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				tb.Fatalf("gpg %v: %v\n%s", args, err, ee.Stderr)
			}
			tb.Fatalf("gpg %v: %v", args, err)
		}
		return string(out)
	}
	run("--quick-gen-key", "nodevirt signer <"+g.email+">", "ed25519", "sign", "never")
	g.armored = run("--armor", "--export", g.email)
	return g
}

func (g gpgSigner) args() []string {
	return []string{"-c", "gpg.format=openpgp", "-c", "user.signingkey=" + g.email}
}

func keysDir(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, content := range files {
		writeFile(tb, filepath.Join(dir, name), content)
	}
	return dir
}

func refusedErr(tb testing.TB, err error) *RefusedError {
	tb.Helper()
	var r *RefusedError
	if !errors.As(err, &r) {
		tb.Fatalf("Fetch error = %v, want a RefusedError", err)
	}
	return r
}

func TestVerify_signedAcceptedUnsignedRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newGitRepo(t)
	ssh := newSSHSigner(t)
	gpg := newGPGSigner(t)
	r.env = []string{"GNUPGHOME=" + gpg.home}
	keys := keysDir(t, map[string]string{"ops.pub": readFile(t, ssh.pub), "release.asc": gpg.armored, "README": "not a key"})

	first := r.commitSigned(map[string]string{"vm.yaml": "a: 1\n"}, ssh.args()...)
	g := openGit(t, Options{URL: r.bare, WorkDir: t.TempDir(), Verify: &Verify{KeysDir: keys}})
	snap, err := g.Fetch(ctx)
	if err != nil {
		t.Fatalf("SSH-signed commit: %v", err)
	}
	if !strings.Contains(snap.Revision, first) || !snap.Verified {
		t.Fatalf("revision %s (verified %v), want %s verified", snap.Revision, snap.Verified, first)
	}

	second := r.commitSigned(map[string]string{"vm.yaml": "a: 2\n"}, gpg.args()...)
	snap, err = g.Fetch(ctx)
	if err != nil {
		t.Fatalf("OpenPGP-signed commit: %v", err)
	}
	if !strings.Contains(snap.Revision, second) {
		t.Fatalf("revision %s, want %s", snap.Revision, second)
	}

	unsigned := r.commit(map[string]string{"vm.yaml": "a: 3\n"})
	snap, err = g.Fetch(ctx)
	ref := refusedErr(t, err)
	if ref.Reason != ReasonUnsigned || !strings.Contains(ref.Revision, unsigned) || !strings.Contains(ref.Author, "test@nodevirt.invalid") {
		t.Fatalf("refusal = %+v, want unsigned %s by the test author", ref, unsigned)
	}
	if !strings.Contains(snap.Revision, second) || readFile(t, filepath.Join(snap.Dir, "vm.yaml")) != "a: 2\n" {
		t.Fatalf("snapshot with the refusal is %s, want the last verified %s", snap.Revision, second)
	}
	// The same refused tip again costs no clone and is refused again.
	clones := g.clones
	if _, err := g.Fetch(ctx); refusedErr(t, err).Reason != ReasonUnsigned {
		t.Fatalf("second fetch: %v", err)
	}
	if g.clones != clones {
		t.Errorf("refused tip cloned again: %d clones, want %d", g.clones, clones)
	}

	third := r.commitSigned(map[string]string{"vm.yaml": "a: 4\n"}, ssh.args()...)
	snap, err = g.Fetch(ctx)
	if err != nil || !strings.Contains(snap.Revision, third) {
		t.Fatalf("signed commit on top of the refused one: %v, %s", err, snap.Revision)
	}
}

func TestVerify_untrustedKeyRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newGitRepo(t)
	trusted, stranger := newSSHSigner(t), newSSHSigner(t)
	keys := keysDir(t, map[string]string{"ops.pub": readFile(t, trusted.pub)})
	r.commitSigned(map[string]string{"vm.yaml": "a: 1\n"}, stranger.args()...)
	g := openGit(t, Options{URL: r.bare, WorkDir: t.TempDir(), Verify: &Verify{KeysDir: keys}})
	snap, err := g.Fetch(ctx)
	if ref := refusedErr(t, err); ref.Reason != ReasonUntrusted {
		t.Fatalf("reason %q, want untrusted: %v", ref.Reason, ref)
	}
	if snap.Dir != "" {
		t.Fatalf("first revision refused, yet snapshot %+v", snap)
	}
	// The key rotated in: the same tip is checked again and accepted.
	writeFile(t, filepath.Join(keys, "new.pub"), readFile(t, stranger.pub))
	if _, err := g.Fetch(ctx); err != nil {
		t.Fatalf("after trusting the key: %v", err)
	}
}

func TestVerify_tagModes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newGitRepo(t)
	ssh := newSSHSigner(t)
	keys := keysDir(t, map[string]string{"ops.pub": readFile(t, ssh.pub)})
	r.commit(map[string]string{"vm.yaml": "a: 1\n"}) // unsigned commit
	r.git(r.work, append(ssh.args(), "tag", "-s", "-m", "release", "v1")...)
	r.git(r.work, "tag", "v2") // lightweight: nothing to verify
	r.git(r.work, "push", "-q", "origin", "v1", "v2")

	g := openGit(t, Options{URL: r.bare, Tag: "v1", WorkDir: t.TempDir(), Verify: &Verify{KeysDir: keys, Mode: VerifyTag}})
	if _, err := g.Fetch(ctx); err != nil {
		t.Fatalf("signed tag, mode tag: %v", err)
	}
	g = openGit(t, Options{URL: r.bare, Tag: "v1", WorkDir: t.TempDir(), Verify: &Verify{KeysDir: keys, Mode: VerifyTagAndHead}})
	if _, err := g.Fetch(ctx); refusedErr(t, err).Reason != ReasonUnsigned {
		t.Fatalf("unsigned commit under a signed tag, mode tagandhead: %v", err)
	}
	g = openGit(t, Options{URL: r.bare, Tag: "v2", WorkDir: t.TempDir(), Verify: &Verify{KeysDir: keys, Mode: VerifyTag}})
	if _, err := g.Fetch(ctx); refusedErr(t, err).Reason != ReasonUnsigned {
		t.Fatalf("lightweight tag, mode tag: %v", err)
	}
}

func TestVerify_openErrors(t *testing.T) {
	t.Parallel()
	r := newGitRepo(t)
	r.commit(map[string]string{"vm.yaml": "a: 1\n"})
	empty := t.TempDir()
	keys := keysDir(t, map[string]string{"ops.pub": "ssh-ed25519 AAAA x\n"})
	for _, tc := range []struct {
		name string
		opt  Options
		want string
	}{
		{"missing dir", Options{Verify: &Verify{KeysDir: filepath.Join(empty, "nope")}}, "keys directory"},
		{"no keys", Options{Verify: &Verify{KeysDir: empty}}, "holds no *.asc"},
		{"bad mode", Options{Verify: &Verify{KeysDir: keys, Mode: "all"}}, `verify mode "all"`},
		{"tag mode on a branch", Options{Verify: &Verify{KeysDir: keys, Mode: VerifyTag}}, "needs a tag"},
		{"plain directory", Options{URL: empty, Verify: &Verify{KeysDir: keys}}, "applies to git repositories"},
	} {
		opt := tc.opt
		if opt.URL == "" {
			opt.URL = r.bare
		}
		opt.WorkDir = t.TempDir()
		_, err := Open(opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Open error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestRewind_refusedThenAllowed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newGitRepo(t)
	a := r.commit(map[string]string{"vm.yaml": "a: 1\n"})
	b := r.commit(map[string]string{"vm.yaml": "a: 2\n"})
	wd := t.TempDir()
	g := openGit(t, Options{URL: r.bare, WorkDir: wd})
	if _, err := g.Fetch(ctx); err != nil {
		t.Fatal(err)
	}

	r.git(r.work, "reset", "-q", "--hard", a)
	r.git(r.work, "push", "-q", "-f", "origin", "main")
	snap, err := g.Fetch(ctx)
	ref := refusedErr(t, err)
	if ref.Reason != ReasonRewind || !strings.Contains(ref.Detail, a) || !strings.Contains(ref.Detail, b) {
		t.Fatalf("refusal %+v, want a rewind naming %s and %s", ref, a, b)
	}
	if !strings.Contains(snap.Revision, b) {
		t.Fatalf("snapshot %s, want the last accepted %s", snap.Revision, b)
	}

	// A new commit on the rewound branch is no better, and a marker naming
	// some other commit does not confirm this rewind.
	r.commit(map[string]string{RewindMarker: a + "\n"})
	if _, err := g.Fetch(ctx); refusedErr(t, err).Reason != ReasonRewind {
		t.Fatalf("marker naming the wrong commit: %v", err)
	}

	// A restart with AllowRewind accepts it.
	g2 := openGit(t, Options{URL: r.bare, WorkDir: wd, AllowRewind: true})
	snap, err = g2.Fetch(ctx)
	if err != nil || readFile(t, filepath.Join(snap.Dir, "vm.yaml")) != "a: 1\n" {
		t.Fatalf("AllowRewind: %v, %s", err, snap.Revision)
	}
}

func TestRewind_marker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newGitRepo(t)
	a := r.commit(map[string]string{"vm.yaml": "a: 1\n"})
	b := r.commit(map[string]string{"vm.yaml": "a: 2\n"})
	g := openGit(t, Options{URL: r.bare, WorkDir: t.TempDir()})
	if _, err := g.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	r.git(r.work, "reset", "-q", "--hard", a)
	r.git(r.work, "push", "-q", "-f", "origin", "main")
	c := r.commit(map[string]string{RewindMarker: "# back to a\n" + b[:12] + "\n"})
	snap, err := g.Fetch(ctx)
	if err != nil || !strings.Contains(snap.Revision, c) {
		t.Fatalf("rewind confirmed by the marker: %v, %s", err, snap.Revision)
	}
	// Ordinary commits on top go on as usual.
	d := r.commit(map[string]string{"vm.yaml": "a: 3\n"})
	if snap, err := g.Fetch(ctx); err != nil || !strings.Contains(snap.Revision, d) {
		t.Fatalf("fast-forward after the rewind: %v, %s", err, snap.Revision)
	}
}

// Several commits pushed between two polls are a fast-forward too: the
// shallow clone cannot show it, the history fetched for the check does.
func TestRewind_severalCommitsAtOnceAccepted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newGitRepo(t)
	r.commit(map[string]string{"vm.yaml": "a: 1\n"})
	wd := t.TempDir()
	g := openGit(t, Options{URL: r.bare, WorkDir: wd})
	if _, err := g.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	r.commit(map[string]string{"vm.yaml": "a: 2\n"})
	last := r.commit(map[string]string{"vm.yaml": "a: 3\n"})
	snap, err := g.Fetch(ctx)
	if err != nil || !strings.Contains(snap.Revision, last) {
		t.Fatalf("two commits on top: %v, %s", err, snap.Revision)
	}
	if got := workDirEntries(t, wd); len(got) != 2 || strings.HasPrefix(got[0], tmpPrefix) || strings.HasPrefix(got[1], tmpPrefix) {
		t.Fatalf("work dir after the history clone: %v, want two rev-* and no tmp-*", got)
	}
}
