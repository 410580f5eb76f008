package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func TestGit_Fetch_branch(t *testing.T) {
	r := newGitRepo(t)
	h1 := r.commit(map[string]string{"vms/vm1.yaml": "kind: VirtualMachine\n", "README.md": "hi\n"})
	wd := t.TempDir()
	g := openGit(t, Options{URL: r.bare, WorkDir: wd})
	ctx := context.Background()

	s1, err := g.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := "main@sha1:" + h1; s1.Revision != want {
		t.Errorf("Revision = %q, want %q", s1.Revision, want)
	}
	if want := filepath.Join(wd, "rev-"+h1); s1.Dir != want {
		t.Errorf("Dir = %q, want %q", s1.Dir, want)
	}
	if !digestRE.MatchString(s1.Digest) {
		t.Errorf("Digest = %q, want sha256:<hex>", s1.Digest)
	}
	if got := readFile(t, filepath.Join(s1.Dir, "vms/vm1.yaml")); got != "kind: VirtualMachine\n" {
		t.Errorf("vm1.yaml = %q", got)
	}
	if _, err := os.Stat(filepath.Join(s1.Dir, ".git")); !os.IsNotExist(err) {
		t.Errorf("published revision still holds .git (stat err %v)", err)
	}

	t.Run("unchanged ref does not clone", func(t *testing.T) {
		before := workDirEntries(t, wd)
		s2, err := g.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s2 != s1 {
			t.Errorf("second Fetch = %+v, want %+v", s2, s1)
		}
		if g.clones != 1 {
			t.Errorf("clones = %d after an unchanged Fetch, want 1", g.clones)
		}
		if diff := cmp.Diff(before, workDirEntries(t, wd)); diff != "" {
			t.Errorf("WorkDir changed (-before +after):\n%s", diff)
		}
	})

	t.Run("new commit is seen and old revisions are pruned", func(t *testing.T) {
		h2 := r.commit(map[string]string{"vms/vm1.yaml": "kind: VirtualMachine\nv: 2\n"})
		s2, err := g.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := "main@sha1:" + h2; s2.Revision != want {
			t.Errorf("Revision = %q, want %q", s2.Revision, want)
		}
		if s2.Digest == s1.Digest {
			t.Error("Digest did not change with the content")
		}
		if got := readFile(t, filepath.Join(s2.Dir, "vms/vm1.yaml")); !strings.Contains(got, "v: 2") {
			t.Errorf("vm1.yaml = %q, want the new content", got)
		}
		// The previous revision stays as the offline fallback.
		if diff := cmp.Diff(sortedCopy([]string{"rev-" + h1, "rev-" + h2}), sortedCopy(workDirEntries(t, wd))); diff != "" {
			t.Errorf("WorkDir (-want +got):\n%s", diff)
		}

		h3 := r.commit(map[string]string{"vms/vm2.yaml": "kind: VirtualMachine\n"})
		if _, err := g.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(sortedCopy([]string{"rev-" + h2, "rev-" + h3}), sortedCopy(workDirEntries(t, wd))); diff != "" {
			t.Errorf("WorkDir after a third commit (-want +got):\n%s", diff)
		}
		if got, want := readFile(t, filepath.Join(wd, lastCommitFile)), "main@sha1:"+h3+"\n"; got != want {
			t.Errorf("last-commit = %q, want %q", got, want)
		}
	})
}

func sortedCopy(s []string) []string {
	return slices.Sorted(slices.Values(s))
}

func TestGit_Fetch_fileURLAndBarePath(t *testing.T) {
	r := newGitRepo(t)
	h := r.commit(map[string]string{"a.yaml": "a: 1\n"})
	var snaps []Snapshot
	for _, url := range []string{r.bare, "file://" + r.bare} {
		g := openGit(t, Options{URL: url, WorkDir: t.TempDir()})
		s, err := g.Fetch(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if want := "main@sha1:" + h; s.Revision != want {
			t.Errorf("%s: Revision = %q, want %q", url, s.Revision, want)
		}
		snaps = append(snaps, s)
	}
	if snaps[0].Digest != snaps[1].Digest {
		t.Errorf("path and file:// digests differ: %s vs %s", snaps[0].Digest, snaps[1].Digest)
	}
}

func TestGit_Fetch_tag(t *testing.T) {
	r := newGitRepo(t)
	h1 := r.commit(map[string]string{"a.yaml": "v: 1\n"})
	r.git(r.work, "tag", "-a", "v1.0.0", "-m", "release")
	r.git(r.work, "tag", "light")
	r.git(r.work, "push", "-q", "origin", "v1.0.0", "light")
	r.commit(map[string]string{"a.yaml": "v: 2\n"}) // main moves on; the tags do not

	for _, tag := range []string{"v1.0.0", "light"} {
		t.Run(tag, func(t *testing.T) {
			g := openGit(t, Options{URL: r.bare, WorkDir: t.TempDir(), Tag: tag, Branch: "ignored-when-tag-set"})
			s, err := g.Fetch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if want := tag + "@sha1:" + h1; s.Revision != want {
				t.Errorf("Revision = %q, want %q", s.Revision, want)
			}
			if got := readFile(t, filepath.Join(s.Dir, "a.yaml")); got != "v: 1\n" {
				t.Errorf("a.yaml = %q, want the tagged content", got)
			}
			if s2, err := g.Fetch(context.Background()); err != nil || s2 != s || g.clones != 1 {
				t.Errorf("second Fetch: %+v, %v, clones=%d; want the same snapshot without a clone", s2, err, g.clones)
			}
		})
	}
}

func TestGit_Fetch_commit(t *testing.T) {
	r := newGitRepo(t)
	h1 := r.commit(map[string]string{"a.yaml": "v: 1\n"})
	r.commit(map[string]string{"a.yaml": "v: 2\n"})
	wd := t.TempDir()

	g := openGit(t, Options{URL: r.bare, WorkDir: wd, Commit: strings.ToUpper(h1), Tag: "not-used", Branch: ""})
	s, err := g.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha1:" + h1; s.Revision != want {
		t.Errorf("Revision = %q, want %q", s.Revision, want)
	}
	if got := readFile(t, filepath.Join(s.Dir, "a.yaml")); got != "v: 1\n" {
		t.Errorf("a.yaml = %q, want the pinned content", got)
	}

	// A pinned commit never changes: neither this Fetch nor one from a
	// restarted agent needs the remote, which is gone now.
	if err := os.RemoveAll(r.bare); err != nil {
		t.Fatal(err)
	}
	if s2, err := g.Fetch(context.Background()); err != nil || s2 != s {
		t.Errorf("second Fetch = %+v, %v; want %+v", s2, err, s)
	}
	// A plain path must exist to be classified; a file:// URL need not.
	g2 := openGit(t, Options{URL: "file://" + r.bare, WorkDir: wd, Commit: h1})
	if s3, err := g2.Fetch(context.Background()); err != nil || s3.Revision != s.Revision || s3.Digest != s.Digest {
		t.Errorf("restarted Fetch = %+v, %v; want %+v", s3, err, s)
	}
}

func TestGit_Fetch_commitOnBranch(t *testing.T) {
	r := newGitRepo(t)
	h1 := r.commit(map[string]string{"a.yaml": "v: 1\n"})
	r.commit(map[string]string{"a.yaml": "v: 2\n"})
	g := openGit(t, Options{URL: r.bare, WorkDir: t.TempDir(), Commit: h1, Branch: "main"})
	s, err := g.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := "main@sha1:" + h1; s.Revision != want {
		t.Errorf("Revision = %q, want %q", s.Revision, want)
	}
}

func TestGit_Fetch_missingRef(t *testing.T) {
	r := newGitRepo(t)
	r.commit(map[string]string{"a.yaml": "v: 1\n"})
	for _, tc := range []struct {
		name string
		opt  Options
		want string
	}{
		{"branch", Options{Branch: "nope"}, `branch "nope" not found`},
		{"tag", Options{Tag: "v9.9.9"}, `tag "v9.9.9" not found`},
		{"commit", Options{Commit: strings.Repeat("ab", 20)}, `commit "` + strings.Repeat("ab", 20) + `" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opt.URL, tc.opt.WorkDir = r.bare, t.TempDir()
			g := openGit(t, tc.opt)
			s, err := g.Fetch(context.Background())
			if err == nil {
				t.Fatalf("Fetch succeeded with %+v", s)
			}
			if !errors.Is(err, ErrRefNotFound) {
				t.Errorf("error %q does not wrap ErrRefNotFound", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if s != (Snapshot{}) {
				t.Errorf("Snapshot = %+v with no last good one, want zero", s)
			}
		})
	}
}

func TestGit_Fetch_path(t *testing.T) {
	r := newGitRepo(t)
	r.commit(map[string]string{
		"clusters/edge/vm.yaml":  "kind: VirtualMachine\n",
		"clusters/other/vm.yaml": "kind: VirtualMachine\n",
	})
	g := openGit(t, Options{URL: r.bare, WorkDir: t.TempDir(), Path: "./clusters//edge/"})
	s1, err := g.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(s1.Dir, filepath.FromSlash("/clusters/edge")) {
		t.Errorf("Dir = %q, want .../clusters/edge", s1.Dir)
	}
	files, err := s1.Files()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"vm.yaml"}, files); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}

	// A commit outside Path changes the revision, not the digest.
	r.commit(map[string]string{"clusters/other/vm.yaml": "changed\n"})
	s2, err := g.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s2.Revision == s1.Revision || s2.Digest != s1.Digest {
		t.Errorf("after an unrelated commit: revision %s→%s, digest %s→%s; want new revision, same digest",
			s1.Revision, s2.Revision, s1.Digest, s2.Digest)
	}

	// A commit that removes Path fails clearly and keeps the last good
	// snapshot.
	r.commit(map[string]string{"clusters/edge/vm.yaml": ""})
	s3, err := g.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), `path "clusters/edge" does not exist`) {
		t.Errorf("Fetch after removing Path: err = %v, want path does not exist", err)
	}
	if s3 != s2 {
		t.Errorf("Snapshot with error = %+v, want last good %+v", s3, s2)
	}
	// Polling the broken commit again repeats the error from disk.
	clones := g.clones
	if _, err := g.Fetch(context.Background()); err == nil || g.clones != clones {
		t.Errorf("second Fetch of the broken commit: err = %v, clones %d→%d; want the error and no clone", err, clones, g.clones)
	}
}

func TestGit_sourceignore(t *testing.T) {
	r := newGitRepo(t)
	r.commit(map[string]string{
		".sourceignore":            "# docs are not manifests\n*.md\nsecrets/\n/top-only.yaml\n",
		"vms/vm.yaml":              "kind: VirtualMachine\n",
		"vms/notes.md":             "x\n",
		"secrets/key.yaml":         "x\n",
		"top-only.yaml":            "x\n",
		"vms/top-only.yaml":        "kept: the pattern is anchored\n",
		".github/workflows/ci.yml": "x\n",
		"vm.yaml~":                 "backup\n",
	})
	g := openGit(t, Options{URL: r.bare, WorkDir: t.TempDir()})
	s, err := g.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	filepath.WalkDir(s.Dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(s.Dir, p)
			onDisk = append(onDisk, filepath.ToSlash(rel))
		}
		return err
	})
	want := []string{".sourceignore", "vms/top-only.yaml", "vms/vm.yaml"}
	if diff := cmp.Diff(want, onDisk); diff != "" {
		t.Errorf("published tree (-want +got):\n%s", diff)
	}
	files, err := s.Files()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}

	// The digest is that of the kept files only: an equal tree in a plain
	// directory hashes the same.
	plain := t.TempDir()
	writeFile(t, filepath.Join(plain, ".sourceignore"), readFile(t, filepath.Join(s.Dir, ".sourceignore")))
	writeFile(t, filepath.Join(plain, "vms/vm.yaml"), "kind: VirtualMachine\n")
	writeFile(t, filepath.Join(plain, "vms/top-only.yaml"), "kept: the pattern is anchored\n")
	if d, err := digestTree(plain, ""); err != nil || d != s.Digest {
		t.Errorf("digest of the equivalent tree = %s, %v; want %s", d, err, s.Digest)
	}
}

func TestGit_restartReusesWorkDir(t *testing.T) {
	r := newGitRepo(t)
	h1 := r.commit(map[string]string{"a.yaml": "v: 1\n"})
	wd := t.TempDir()
	s1, err := openGit(t, Options{URL: r.bare, WorkDir: wd}).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Leftover of a clone interrupted by a crash.
	if err := os.Mkdir(filepath.Join(wd, "tmp-crashed"), 0o700); err != nil {
		t.Fatal(err)
	}

	g2 := openGit(t, Options{URL: r.bare, WorkDir: wd})
	s2, err := g2.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s2 != s1 || g2.clones != 0 {
		t.Errorf("restarted Fetch = %+v (clones %d), want %+v without a clone", s2, g2.clones, s1)
	}
	if diff := cmp.Diff([]string{"rev-" + h1}, workDirEntries(t, wd)); diff != "" {
		t.Errorf("WorkDir (-want +got):\n%s", diff)
	}

	// Offline after a restart: the adopted revision is still served, with
	// the error.
	if err := os.RemoveAll(r.bare); err != nil {
		t.Fatal(err)
	}
	g3 := openGit(t, Options{URL: "file://" + r.bare, WorkDir: wd})
	s3, err := g3.Fetch(context.Background())
	if err == nil {
		t.Fatal("Fetch from a removed remote succeeded")
	}
	if s3 != s1 {
		t.Errorf("Snapshot with error = %+v, want last good %+v", s3, s1)
	}
}

func TestGit_branchChangeOverSameWorkDir(t *testing.T) {
	r := newGitRepo(t)
	r.commit(map[string]string{"a.yaml": "v: main\n"})
	r.git(r.work, "checkout", "-q", "-b", "edge")
	h2 := r.commit(map[string]string{"a.yaml": "v: edge\n"})
	wd := t.TempDir()
	if _, err := openGit(t, Options{URL: r.bare, WorkDir: wd}).Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err := openGit(t, Options{URL: r.bare, WorkDir: wd, Branch: "edge"}).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := "edge@sha1:" + h2; s.Revision != want {
		t.Errorf("Revision = %q, want %q", s.Revision, want)
	}

	// Back to main while the remote is gone: the edge checkout on disk
	// must not be served as main's last good state.
	if err := os.RemoveAll(r.bare); err != nil {
		t.Fatal(err)
	}
	s, err = openGit(t, Options{URL: "file://" + r.bare, WorkDir: wd}).Fetch(context.Background())
	if err == nil || s != (Snapshot{}) {
		t.Errorf("offline Fetch of main after edge = %+v, %v; want an error and no snapshot", s, err)
	}
}

func TestOpen_errors(t *testing.T) {
	dir := t.TempDir()
	bare := filepath.Join(dir, "bare.git")
	writeFile(t, filepath.Join(bare, "HEAD"), "ref: refs/heads/main\n")
	if err := os.MkdirAll(filepath.Join(bare, "objects"), 0o755); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id")
	writeFile(t, key, "not a key")

	for _, tc := range []struct {
		name string
		opt  Options
		want string
	}{
		{"empty URL", Options{}, "URL is empty"},
		{"dotdot escape", Options{URL: dir, Path: "../etc"}, `path "../etc" escapes the repository root`},
		{"nested dotdot escape", Options{URL: dir, Path: "a/../../etc"}, `escapes the repository root`},
		{"dotdot escape for git", Options{URL: bare, WorkDir: dir, Path: "x/../../.."}, `escapes the repository root`},
		{"absolute path", Options{URL: dir, Path: "/etc"}, `must be relative`},
		{"hidden path", Options{URL: dir, Path: "a/.git/x"}, `hidden directory ".git"`},
		{"missing dir", Options{URL: filepath.Join(dir, "nope")}, "no such file or directory"},
		{"git without WorkDir", Options{URL: bare}, "WorkDir is required"},
		{"scp-like", Options{URL: "git@github.com:org/repo.git", WorkDir: dir}, "ssh://git@github.com/org/repo.git"},
		{"unknown scheme", Options{URL: "ftp://host/repo", WorkDir: dir}, `unsupported scheme "ftp"`},
		{"ssh without known_hosts", Options{URL: "ssh://git@host/repo", WorkDir: dir, Auth: Auth{IdentityFile: key}}, "known_hosts is mandatory"},
		{"ssh key missing", Options{URL: "ssh://git@host/repo", WorkDir: dir, Auth: Auth{IdentityFile: key + "x", KnownHostsFile: key}}, "read SSH identity"},
		{"token and basic", Options{URL: "https://host/repo", WorkDir: dir, Auth: Auth{Username: "u", Password: "p", BearerToken: "t"}}, "cannot be used together"},
		{"password and password file", Options{URL: "https://host/repo", WorkDir: dir, Auth: Auth{Username: "u", Password: "p", PasswordFile: key}}, "not both"},
		{"token file and basic", Options{URL: "https://host/repo", WorkDir: dir, Auth: Auth{Username: "u", BearerTokenFile: key}}, "cannot be used together"},
		{"password file missing", Options{URL: "https://host/repo", WorkDir: dir, Auth: Auth{Username: "u", PasswordFile: key + ".nope"}}, "read password file"},
		{"password over http", Options{URL: "http://u:p@host/repo", WorkDir: dir}, "never sent over plain http"},
		{"short commit", Options{URL: bare, WorkDir: dir, Commit: "abc123"}, "full 40-character SHA-1"},
		{"credentials for a local repo", Options{URL: bare, WorkDir: dir, Auth: Auth{Username: "u"}}, "needs none"},
		{"ref for a plain dir", Options{URL: dir, Branch: "main"}, "plain directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.opt)
			if err == nil {
				t.Fatalf("Open succeeded: %v", s)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestOpen_kinds(t *testing.T) {
	r := newGitRepo(t)
	for _, tc := range []struct {
		url  string
		want string
	}{
		{r.work, "*source.Dir"}, // a work tree is edited in place: watched, not cloned
		{r.bare, "*source.Git"},
		{"file://" + r.work, "*source.Git"},
		{"https://example.invalid/org/repo.git", "*source.Git"},
	} {
		s, err := Open(Options{URL: tc.url, WorkDir: t.TempDir()})
		if err != nil {
			t.Errorf("Open(%q): %v", tc.url, err)
			continue
		}
		if got := typeName(s); got != tc.want {
			t.Errorf("Open(%q) = %s, want %s", tc.url, got, tc.want)
		}
	}
}

func typeName(s Source) string {
	switch s.(type) {
	case *Git:
		return "*source.Git"
	case *Dir:
		return "*source.Dir"
	}
	return "?"
}

func TestGit_credentialsNeverPrinted(t *testing.T) {
	// A port nothing listens on: the clone fails fast with an error that
	// quotes the URL.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	for _, tc := range []struct {
		url  string
		auth Auth
	}{
		{"https://alice:s3cr3t-pw@" + addr + "/org/repo.git", Auth{}},
		{"https://tok3n-in-user@" + addr + "/org/repo.git", Auth{}},
		{"https://" + addr + "/org/repo.git", Auth{BearerToken: "b3arer-tok"}},
	} {
		g := openGit(t, Options{URL: tc.url, WorkDir: t.TempDir(), Auth: tc.auth, Timeout: 5 * time.Second})
		_, err := g.Fetch(context.Background())
		if err == nil {
			t.Fatalf("Fetch from a closed port succeeded")
		}
		for _, secret := range []string{"s3cr3t-pw", "ghp_tok3nInUser0123456789", "b3arer-tok", "alice"} {
			if strings.Contains(err.Error(), secret) || strings.Contains(g.String(), secret) {
				t.Errorf("%q leaked:\n  error:  %v\n  String: %s", secret, err, g)
			}
		}
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("error %q does not name the remote %s", err, addr)
		}
	}
}

func TestGit_String(t *testing.T) {
	r := newGitRepo(t)
	g := openGit(t, Options{URL: "file://" + r.bare, WorkDir: t.TempDir(), Path: "clusters/edge"})
	if want := "git file://" + r.bare + " branch main path clusters/edge"; g.String() != want {
		t.Errorf("String() = %q, want %q", g.String(), want)
	}
}

func TestScrub(t *testing.T) {
	inner := errors.New("server said: bad password s3cr3t-pw")
	err := scrub(fmt.Errorf("clone: %w", inner), []string{"s3cr3t-pw", "", "ab"})
	if got, want := err.Error(), "clone: server said: bad password ***"; got != want {
		t.Errorf("scrubbed = %q, want %q", got, want)
	}
	if !errors.Is(err, inner) {
		t.Error("scrubbing broke the error chain")
	}
	if got := displayURL("https://user:pw@host/repo?x=1"); got != "https://host/repo?x=1" {
		t.Errorf("displayURL(https) = %q", got)
	}
	if got := displayURL("ssh://git:pw@host:2222/repo"); got != "ssh://git@host:2222/repo" {
		t.Errorf("displayURL(ssh) = %q", got)
	}
	if got := displayURL("https://us er:p%zz@host/repo"); strings.Contains(got, "p%zz") {
		t.Errorf("displayURL(unparseable) = %q leaks the password", got)
	}
}
