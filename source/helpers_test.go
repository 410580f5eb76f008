package source

import (
	"github.com/nodevirt/nodevirt/internal/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// requireGit is the guard for tests that drive the real git CLI: it fails
// under CI=true (where a missing git is a broken image) and skips elsewhere.
func requireGit(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		msg := "these tests need the git CLI on PATH to build real repositories; `make test` runs where it is installed"
		testenv.Missing(tb, msg)
	}
}

// gitRepo is a real remote: a bare repository plus a work tree that pushes
// to it.
type gitRepo struct {
	tb   testing.TB
	bare string
	work string
	// env is added to the CLI's environment (e.g. GNUPGHOME).
	env []string
}

func newGitRepo(tb testing.TB) *gitRepo {
	tb.Helper()
	requireGit(tb)
	dir := tb.TempDir()
	r := &gitRepo{tb: tb, bare: filepath.Join(dir, "remote.git"), work: filepath.Join(dir, "work")}
	r.git(dir, "init", "-q", "--bare", "-b", "main", r.bare)
	r.git(dir, "init", "-q", "-b", "main", r.work)
	r.git(r.work, "remote", "add", "origin", r.bare)
	return r
}

// git runs the CLI isolated from the user's and system's configuration.
func (r *gitRepo) git(dir string, args ...string) string {
	r.tb.Helper()
	cmd := exec.Command("git", append([]string{"-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=nodevirt test", "GIT_AUTHOR_EMAIL=test@nodevirt.invalid",
		"GIT_COMMITTER_NAME=nodevirt test", "GIT_COMMITTER_EMAIL=test@nodevirt.invalid",
	)
	cmd.Env = append(cmd.Env, r.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.tb.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (content "" deletes), commits on the current branch
// and pushes it; it returns the commit hash.
func (r *gitRepo) commit(files map[string]string) string {
	r.tb.Helper()
	for name, content := range files {
		p := filepath.Join(r.work, filepath.FromSlash(name))
		if content == "" {
			if err := os.Remove(p); err != nil {
				r.tb.Fatal(err)
			}
			continue
		}
		writeFile(r.tb, p, content)
	}
	r.git(r.work, "add", "-A")
	r.git(r.work, "commit", "-q", "--allow-empty", "-m", "change")
	branch := r.git(r.work, "rev-parse", "--abbrev-ref", "HEAD")
	r.git(r.work, "push", "-q", "origin", branch)
	return r.git(r.work, "rev-parse", "HEAD")
}

func writeFile(tb testing.TB, p, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func readFile(tb testing.TB, p string) string {
	tb.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// revDirs lists WorkDir's rev-* and tmp-* entries, sorted.
func workDirEntries(tb testing.TB, wd string) []string {
	tb.Helper()
	es, err := os.ReadDir(wd)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if strings.HasPrefix(e.Name(), revPrefix) || strings.HasPrefix(e.Name(), tmpPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

func openGit(tb testing.TB, opt Options) *Git {
	tb.Helper()
	s, err := Open(opt)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	g, ok := s.(*Git)
	if !ok {
		tb.Fatalf("Open(%q) = %T, want *Git", opt.URL, s)
	}
	return g
}
