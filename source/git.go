package source

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/git"
	"github.com/fluxcd/pkg/git/gogit"
	"github.com/fluxcd/pkg/git/repository"
	"github.com/go-git/go-git/v5/plumbing"
)

// Files and directories inside Options.WorkDir.
const (
	revPrefix      = "rev-"        // rev-<hash>: one published, pruned checkout
	tmpPrefix      = "tmp-"        // tmp-<random>: a clone in progress
	lastCommitFile = "last-commit" // commit string of the current rev-<hash>
)

var fullSHA1 = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Git is a Source backed by a git remote, cloned with
// github.com/fluxcd/pkg/git/gogit. Each new commit is shallow-cloned into
// WorkDir/tmp-<random>, pruned to the manifest tree and renamed to
// WorkDir/rev-<hash>; an unchanged ref costs one ls-remote.
type Git struct {
	url      string // what gogit dials: no credentials in it
	display  string
	sub      string
	workDir  string
	timeout  time.Duration
	checkout repository.CheckoutStrategy
	auth     Auth
	remote   *url.URL // nil for local repositories (file transport)
	secrets  []string // from Options, to scrub from error texts

	mu       sync.Mutex
	restored bool
	cur      *published // the snapshot Fetch returns while the ref stays put
	prevHash string     // kept on disk as the last good fallback
	// observed is the commit string of the newest rev-* on disk, even when
	// it could not become a snapshot (Path missing in it): asking gogit
	// about it stops a broken commit from being cloned on every poll.
	observed string
	clones   int // full clones done, for tests and benchmarks
	// verifyCfg is nil when signatures are not checked.
	verifyCfg   *Verify
	allowRewind bool
	// refused is the last refused tip: while the remote stays on it (and
	// the keys are the same) it is refused again without a clone.
	refused *refusal
	// fileSecrets are the credentials last read from files, scrubbed too.
	fileSecrets []string
}

type refusal struct {
	commit, hash, keys string
	err                *RefusedError
}

type published struct {
	commit string // git.Commit.String(), fed back as LastObservedCommit
	hash   string
	snap   Snapshot
}

var _ Source = (*Git)(nil)

// newGit builds a Git source. remote is the parsed URL of a network remote,
// nil for a bare-repository path or file:// URL.
func newGit(opt Options, sub string, remote *url.URL) (*Git, error) {
	g := &Git{
		sub:     sub,
		timeout: opt.Timeout,
		auth:    opt.Auth,
	}
	display := displayURL(opt.URL)
	if opt.WorkDir == "" {
		return nil, fmt.Errorf("source %s: WorkDir is required for a git source", display)
	}
	wd, err := filepath.Abs(opt.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("source %s: WorkDir: %w", display, err)
	}
	g.workDir = wd
	g.allowRewind = opt.AllowRewind
	if v := opt.Verify; v != nil {
		if err := validMode(v.Mode); err != nil {
			return nil, fmt.Errorf("source %s: %w", display, err)
		}
		if (v.Mode == VerifyTag || v.Mode == VerifyTagAndHead) && (opt.Tag == "" || opt.Commit != "") {
			return nil, fmt.Errorf("source %s: verify mode %s needs a tag to check out (--tag)", display, v.Mode)
		}
		if _, err := loadKeys(v.KeysDir); err != nil {
			return nil, fmt.Errorf("source %s: %w", display, err)
		}
		vc := *v
		g.verifyCfg = &vc
	}

	switch {
	case opt.Commit != "":
		c := strings.ToLower(opt.Commit)
		if !fullSHA1.MatchString(c) {
			return nil, fmt.Errorf("source %s: commit %q must be a full 40-character SHA-1", display, opt.Commit)
		}
		g.checkout = repository.CheckoutStrategy{Commit: c, Branch: opt.Branch}
	case opt.Tag != "":
		g.checkout = repository.CheckoutStrategy{Tag: opt.Tag}
	case opt.Branch != "":
		g.checkout = repository.CheckoutStrategy{Branch: opt.Branch}
	default:
		g.checkout = repository.CheckoutStrategy{Branch: DefaultBranch}
	}

	if remote == nil {
		if !opt.Auth.empty() {
			return nil, fmt.Errorf("source %s: credentials are set but a local repository needs none", display)
		}
		g.url = opt.URL
		g.display = display
		return g, nil
	}

	// Credentials in the URL move into Auth, and the URL handed to gogit
	// keeps none: go-git quotes the URL in its errors.
	scheme := strings.ToLower(remote.Scheme)
	a := &g.auth
	hasToken := func() bool { return a.BearerToken != "" || a.BearerTokenFile != "" }
	hasPassword := func() bool { return a.Password != "" || a.PasswordFile != "" }
	if remote.User != nil {
		pw, hasPW := remote.User.Password()
		if scheme != "ssh" && a.Username == "" && !hasToken() {
			a.Username = remote.User.Username()
		}
		if hasPW && !hasPassword() && !hasToken() {
			a.Password = pw
		}
	}
	clean := redact(remote)
	clean.Scheme = scheme
	g.remote = clean
	g.url = clean.String()
	g.display = clean.String()
	g.secrets = []string{a.Password, a.BearerToken}
	if scheme != "ssh" && len(a.Username) >= 16 && !hasPassword() {
		// A long lone user name in an https URL is a token (GitHub,
		// GitLab); a short one is a name and scrubbing it would mangle
		// unrelated words in error texts.
		g.secrets = append(g.secrets, a.Username)
	}

	if a.Password != "" && a.PasswordFile != "" {
		return nil, fmt.Errorf("source %s: set Auth.Password or Auth.PasswordFile, not both", g.display)
	}
	if a.BearerToken != "" && a.BearerTokenFile != "" {
		return nil, fmt.Errorf("source %s: set Auth.BearerToken or Auth.BearerTokenFile, not both", g.display)
	}
	switch scheme {
	case "ssh":
		if a.IdentityFile == "" || a.KnownHostsFile == "" {
			return nil, fmt.Errorf("source %s: ssh needs Auth.IdentityFile and Auth.KnownHostsFile (known_hosts is mandatory: host keys are never trusted on first use)", g.display)
		}
		if hasToken() || a.CAFile != "" {
			return nil, fmt.Errorf("source %s: bearer token and CA file apply to https, not ssh", g.display)
		}
	default:
		if a.IdentityFile != "" || a.KnownHostsFile != "" {
			return nil, fmt.Errorf("source %s: SSH identity and known_hosts apply to ssh:// URLs only", g.display)
		}
		if hasToken() && (a.Username != "" || hasPassword()) {
			return nil, fmt.Errorf("source %s: basic auth and a bearer token cannot be used together", g.display)
		}
		if scheme == "http" && (hasPassword() || hasToken()) {
			return nil, fmt.Errorf("source %s: credentials are never sent over plain http; use https", g.display)
		}
	}
	// Read the files once now so a typo fails at start-up, not at the
	// first poll.
	if _, err := g.authOptions(); err != nil {
		return nil, fmt.Errorf("source %s: %w", g.display, scrub(err, g.allSecrets()))
	}
	return g, nil
}

// authOptions builds gogit's options, reading the credential files again so
// rotated secrets apply at the next Fetch. A local repository gets the HTTP
// transport with no credentials: go-git then has no auth method and picks
// its file transport by itself, while an empty or "file" transport makes
// gogit refuse to clone.
func (g *Git) authOptions() (*git.AuthOptions, error) {
	if g.remote == nil {
		return &git.AuthOptions{Transport: git.HTTP}, nil
	}
	a := g.auth
	data := map[string][]byte{}
	read := func(path, what string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		return b, nil
	}
	for _, f := range []struct{ key, path, what string }{
		{"identity", a.IdentityFile, "SSH identity"},
		{"known_hosts", a.KnownHostsFile, "known_hosts"},
		{"caFile", a.CAFile, "CA file"},
	} {
		if f.path == "" {
			continue
		}
		b, err := read(f.path, f.what)
		if err != nil {
			return nil, err
		}
		data[f.key] = b
	}
	// Secret files usually end in a newline that is not part of the secret.
	if a.PasswordFile != "" {
		b, err := read(a.PasswordFile, "password file")
		if err != nil {
			return nil, err
		}
		a.Password = strings.TrimRight(string(b), "\r\n")
	}
	if a.BearerTokenFile != "" {
		b, err := read(a.BearerTokenFile, "bearer token file")
		if err != nil {
			return nil, err
		}
		a.BearerToken = strings.TrimRight(string(b), "\r\n")
	}
	g.fileSecrets = []string{a.Password, a.BearerToken}
	for k, v := range map[string]string{
		"username":    a.Username,
		"password":    a.Password,
		"bearerToken": a.BearerToken,
	} {
		if v != "" {
			data[k] = []byte(v)
		}
	}
	return git.NewAuthOptions(*g.remote, data)
}

// String describes the source, e.g. "git https://host/org/repo branch main path clusters/edge".
func (g *Git) String() string {
	var b strings.Builder
	b.WriteString("git ")
	b.WriteString(g.display)
	switch c := g.checkout; {
	case c.Commit != "" && c.Branch != "":
		fmt.Fprintf(&b, " branch %s commit %s", c.Branch, c.Commit)
	case c.Commit != "":
		fmt.Fprintf(&b, " commit %s", c.Commit)
	case c.Tag != "":
		fmt.Fprintf(&b, " tag %s", c.Tag)
	default:
		fmt.Fprintf(&b, " branch %s", c.Branch)
	}
	if g.sub != "" {
		fmt.Fprintf(&b, " path %s", filepath.ToSlash(g.sub))
	}
	return b.String()
}

// Fetch implements Source.
func (g *Git) Fetch(ctx context.Context) (Snapshot, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.restored {
		if err := g.restore(); err != nil {
			return Snapshot{}, fmt.Errorf("source %s: %w", g, err)
		}
		g.restored = true
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	snap, err := g.fetch(ctx)
	if err != nil {
		var last Snapshot
		if g.cur != nil {
			last = g.cur.snap
		}
		return last, scrub(fmt.Errorf("source %s: %w", g, err), g.allSecrets())
	}
	return snap, nil
}

// restore runs once per Git value: it clears clones interrupted by a crash
// and re-adopts the revision a previous process published, so a restart
// neither re-clones an unchanged ref nor loses the offline fallback.
func (g *Git) restore() error {
	if err := os.MkdirAll(g.workDir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(g.workDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			os.RemoveAll(filepath.Join(g.workDir, e.Name()))
		}
	}
	b, err := os.ReadFile(filepath.Join(g.workDir, lastCommitFile))
	if err != nil {
		return nil // nothing to adopt
	}
	commit := strings.TrimSpace(string(b))
	hash := git.ExtractHashFromRevision(commit).String()
	if !fullSHA1.MatchString(hash) || !isDir(g.revDir(hash)) {
		return nil
	}
	// Whatever happens below, keep the revision on disk as the fallback
	// of last resort.
	g.prevHash = hash
	if !g.tracks(commit) {
		// Written for another branch, tag or commit: serving it as "last
		// good" would run a ref the operator no longer asks for.
		return nil
	}
	g.observed = commit
	snap, err := g.snapshot(hash, commit)
	if err != nil {
		// Path may have changed since; the next clone decides.
		return nil
	}
	g.cur = &published{commit: commit, hash: hash, snap: snap}
	return nil
}

// tracks reports whether a commit string names the configured ref.
func (g *Git) tracks(commit string) bool {
	name := git.ExtractNamedPointerFromRevision(commit)
	switch c := g.checkout; {
	case c.Commit != "":
		return name == c.Branch && git.ExtractHashFromRevision(commit).String() == c.Commit
	case c.Tag != "":
		return name == c.Tag
	default:
		return name == c.Branch
	}
}

func (g *Git) allSecrets() []string {
	return append(append([]string(nil), g.secrets...), g.fileSecrets...)
}

func (g *Git) revDir(hash string) string { return filepath.Join(g.workDir, revPrefix+hash) }

func (g *Git) fetch(ctx context.Context) (Snapshot, error) {
	// A commit is immutable: once published it never needs the network.
	if c := g.checkout.Commit; c != "" {
		// The same string gogit's clone would report: the branch, when one
		// was given, names the reference.
		commit := git.Hash(c).Digest()
		if g.checkout.Branch != "" {
			commit = g.checkout.Branch + "@" + commit
		}
		if g.cur != nil && g.cur.commit == commit {
			return g.cur.snap, nil
		}
		if isDir(g.revDir(c)) {
			return g.publish(c, commit, "")
		}
	}

	tmp, err := os.MkdirTemp(g.workDir, tmpPrefix)
	if err != nil {
		return Snapshot{}, err
	}
	// After a successful rename tmp no longer exists and this is a no-op.
	defer os.RemoveAll(tmp)

	auth, err := g.authOptions()
	if err != nil {
		return Snapshot{}, err
	}
	client, err := gogit.NewClient(tmp, auth, gogit.WithDiskStorage())
	if err != nil {
		return Snapshot{}, err
	}
	defer client.Close()

	// prev is the last accepted commit the new tip must descend from.
	var prev string
	if g.observed != "" {
		prev = git.ExtractHashFromRevision(g.observed).String()
	}
	cfg := repository.CloneConfig{CheckoutStrategy: g.checkout, ShallowClone: true}
	// Only short-circuit when the revision it stands for is still on disk.
	var observedHash string
	if g.observed != "" && g.checkout.Commit == "" {
		observedHash = prev
		if isDir(g.revDir(observedHash)) {
			cfg.LastObservedCommit = g.observed
		}
	}
	refused := g.refused
	if refused != nil && refused.keys != g.keysSum() {
		refused = nil // the trusted keys changed: check the tip again
	}
	if refused != nil && g.checkout.Commit == "" {
		cfg.LastObservedCommit = refused.commit
	}
	c, err := client.Clone(ctx, g.url, cfg)
	if err != nil {
		return Snapshot{}, g.cloneError(err)
	}
	if c == nil {
		// gogit's answer for an empty remote repository.
		return Snapshot{}, fmt.Errorf("%s has no commits: %w", g.refDesc(), ErrRefNotFound)
	}
	if !git.IsConcreteCommit(*c) {
		// The ref did not move: gogit listed the remote refs and stopped.
		if refused != nil && c.Hash.String() == refused.hash {
			return Snapshot{}, refused.err
		}
		if g.cur != nil && c.Hash.String() == g.cur.hash {
			return g.cur.snap, nil
		}
		if c.Hash.String() == observedHash {
			// Still the commit that failed to snapshot: repeat its error
			// from disk instead of cloning it again.
			return g.publish(observedHash, g.observed, "")
		}
		return Snapshot{}, fmt.Errorf("unexpected partial commit %s from the short-circuit", c)
	}
	g.clones++
	r := g.verify(c)
	if r == nil && g.checksRewind(prev) && c.Hash.String() != prev && !hasParent(tmp, c, prev) {
		// The shallow clone proves one commit on top of prev, the usual
		// case; anything else needs the history.
		full, err := g.cloneFull(ctx, auth, c)
		if full != "" {
			defer os.RemoveAll(full)
		}
		if err != nil {
			return Snapshot{}, err
		}
		tmp = full
		r = checkRewind(tmp, prev, c)
	}
	if r != nil {
		g.refused = &refusal{commit: c.String(), hash: c.Hash.String(), keys: g.keysSum(), err: r}
		return Snapshot{}, r
	}
	g.refused = nil
	return g.publish(c.Hash.String(), c.String(), tmp)
}

// cloneFull clones the ref again with its whole history, for the rewind
// check; the ref must still point at c (else the next poll sees the move).
func (g *Git) cloneFull(ctx context.Context, auth *git.AuthOptions, c *git.Commit) (string, error) {
	dir, err := os.MkdirTemp(g.workDir, tmpPrefix)
	if err != nil {
		return "", err
	}
	client, err := gogit.NewClient(dir, auth, gogit.WithDiskStorage())
	if err != nil {
		return dir, err
	}
	defer client.Close()
	full, err := client.Clone(ctx, g.url, repository.CloneConfig{CheckoutStrategy: g.checkout})
	if err != nil {
		return dir, g.cloneError(err)
	}
	if full == nil || full.Hash.String() != c.Hash.String() {
		return dir, fmt.Errorf("%s moved from %s while its history was fetched; the next fetch tries again", g.refDesc(), c.Hash)
	}
	return dir, nil
}

// publish makes rev-<hash> current. clone is the fresh checkout to rename
// into place, or "" when rev-<hash> already exists.
func (g *Git) publish(hash, commit, clone string) (Snapshot, error) {
	rev := g.revDir(hash)
	// When the ref comes back to a revision still on disk (a revert, or a
	// restart without last-commit) the clone is dropped: rev-<hash> is
	// complete, since only a finished clone is ever renamed to rev-*.
	if clone != "" {
		if !isDir(rev) {
			if err := pruneTree(clone); err != nil {
				return Snapshot{}, fmt.Errorf("prepare checkout of %s: %w", commit, err)
			}
			if err := os.Rename(clone, rev); err != nil {
				return Snapshot{}, fmt.Errorf("publish checkout of %s: %w", commit, err)
			}
		}
		g.observed = commit
	}
	snap, err := g.snapshot(hash, commit)
	if err != nil {
		return Snapshot{}, err
	}
	if err := writeFileAtomic(filepath.Join(g.workDir, lastCommitFile), []byte(commit+"\n")); err != nil {
		return Snapshot{}, fmt.Errorf("record %s: %w", lastCommitFile, err)
	}
	if g.cur != nil && g.cur.hash != hash {
		g.prevHash = g.cur.hash
	}
	g.cur = &published{commit: commit, hash: hash, snap: snap}
	g.removeStale()
	return snap, nil
}

func (g *Git) snapshot(hash, commit string) (Snapshot, error) {
	rev := g.revDir(hash)
	dir, err := resolveSub(rev, g.sub)
	if err != nil {
		return Snapshot{}, fmt.Errorf("revision %s: %w", commit, err)
	}
	digest, err := digestTree(rev, g.sub)
	if err != nil {
		return Snapshot{}, fmt.Errorf("revision %s: %w", commit, err)
	}
	// Only a revision that passed verify is ever snapshotted.
	return Snapshot{Revision: commit, Dir: dir, Digest: digest, Verified: g.verifyCfg != nil, root: rev}, nil
}

// removeStale deletes every rev-* but the current and the previous one.
// Failures are ignored: a leftover directory wastes space but must not fail
// a good fetch, and the next publish tries again.
func (g *Git) removeStale() {
	entries, err := os.ReadDir(g.workDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, revPrefix) {
			continue
		}
		h := strings.TrimPrefix(name, revPrefix)
		if (g.cur != nil && h == g.cur.hash) || h == g.prevHash {
			continue
		}
		os.RemoveAll(filepath.Join(g.workDir, name))
	}
}

func (g *Git) refDesc() string {
	switch c := g.checkout; {
	case c.Commit != "":
		return fmt.Sprintf("commit %q", c.Commit)
	case c.Tag != "":
		return fmt.Sprintf("tag %q", c.Tag)
	default:
		return fmt.Sprintf("branch %q", c.Branch)
	}
}

// cloneError turns gogit's error into one that names the missing ref. The
// file transport reports a missing branch as a plain error, the network
// transports as git.ErrRepositoryNotFound; both are matched.
func (g *Git) cloneError(err error) error {
	msg := err.Error()
	var notFound git.ErrRepositoryNotFound
	switch {
	case strings.Contains(msg, "couldn't find remote ref"),
		g.checkout.Commit != "" && errors.Is(err, plumbing.ErrObjectNotFound):
		return &refNotFoundError{what: g.refDesc(), err: err}
	case errors.As(err, &notFound):
		return fmt.Errorf("repository or %s not found: %w", g.refDesc(), err)
	}
	return fmt.Errorf("clone %s: %w", g.refDesc(), err)
}

// refNotFoundError names the missing ref once and matches both
// ErrRefNotFound and gogit's own error.
type refNotFoundError struct {
	what string
	err  error
}

func (e *refNotFoundError) Error() string   { return e.what + " not found (" + e.err.Error() + ")" }
func (e *refNotFoundError) Unwrap() []error { return []error{ErrRefNotFound, e.err} }

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// writeFileAtomic replaces path so a crash leaves either the old or the new
// content, never a torn file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
