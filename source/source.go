package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Snapshot is one published state of a source. Compare snapshots by
// Revision and Digest: the unexported field only remembers where the
// .sourceignore file lives.
type Snapshot struct {
	// Revision names what was fetched: "<ref>@sha1:<hex>" for a branch or
	// tag (git.Commit.String(), e.g. "main@sha1:…"), "sha1:<hex>" for a
	// commit pinned without a branch, and the Digest for a local directory.
	Revision string
	// Dir is the absolute directory holding the manifests, with the
	// configured Path already applied.
	Dir string
	// Digest is "sha256:<hex>" over the manifest tree below Dir (see the
	// package doc): each file's slash-separated path relative to Dir and the
	// SHA-256 of its content, and each symlink's path, text and the SHA-256
	// of the file it leads to inside the tree, in sorted path order.
	Digest string
	// Verified says the revision's signature was checked against the
	// trusted keys and passed (false when no verification is configured).
	Verified bool

	// root is the directory whose .sourceignore applies (the repository
	// root); empty means Dir.
	root string
}

// Root is the directory of the whole source tree: the repository root (or
// local directory) that Dir lies in. Readers resolve symlinks inside it
// (internal/srctree); it is Dir when no Path is configured.
func (s Snapshot) Root() string {
	if s.root == "" {
		return s.Dir
	}
	return s.root
}

// Files lists the manifest tree of the snapshot: the slash-separated paths,
// relative to Dir and sorted, of exactly the files and symlinks the Digest
// covers. For a
// Git snapshot the tree is immutable; for a Dir snapshot it is read again
// from the live directory.
func (s Snapshot) Files() ([]string, error) {
	root := s.root
	if root == "" {
		root = s.Dir
	}
	sub, err := filepath.Rel(root, s.Dir)
	if err != nil {
		return nil, err
	}
	var out []string
	err = walkTree(root, sub, func(rel, _ string, _ bool) error {
		out = append(out, rel)
		return nil
	})
	return out, err
}

// Excluded returns the rule Files follows, for readers that walk Dir
// themselves: it reports whether the entry d at rel (slash-separated,
// relative to Dir) is outside the manifest tree, by .sourceignore or as an
// editor's scratch file. For a Git snapshot the checkout holds no such
// entry; for a Dir snapshot the live directory may.
func (s Snapshot) Excluded() (func(rel string, d fs.DirEntry) bool, error) {
	root := s.Root()
	sub, err := filepath.Rel(root, s.Dir)
	if err != nil {
		return nil, err
	}
	m, err := loadIgnore(root)
	if err != nil {
		return nil, err
	}
	var subComps []string
	if sub != "." {
		subComps = strings.Split(filepath.ToSlash(sub), "/")
	}
	return func(rel string, d fs.DirEntry) bool {
		return excluded(m, append(slices.Clone(subComps), strings.Split(rel, "/")...), d)
	}, nil
}

// Source produces Snapshots. Implementations are safe for concurrent use.
type Source interface {
	// Fetch returns the current snapshot. When nothing changed since the
	// last Fetch it returns the same snapshot cheaply (for git: one ls-remote
	// and no clone). On error the Snapshot is the last good one when the
	// source still has it on disk (a Git source keeps its previous checkout,
	// so an offline host can keep operating), otherwise the zero Snapshot.
	Fetch(ctx context.Context) (Snapshot, error)
	// String describes the source for logs, with credentials removed.
	String() string
}

// Auth holds the credentials of a git remote. File fields are read on every
// Fetch, so a rotated key or CA bundle is picked up without a restart.
type Auth struct {
	// IdentityFile is the SSH private key (ssh:// only).
	IdentityFile string
	// KnownHostsFile is mandatory with ssh://: host keys are never trusted
	// on first use.
	KnownHostsFile string
	// Username and Password are HTTPS basic auth; with ssh:// Password is
	// the identity's passphrase. Credentials in the URL's user-info are used
	// when these are empty.
	Username, Password string
	// PasswordFile holds the password instead (trailing newline removed),
	// so it stays out of the command line and the process environment.
	PasswordFile string
	// BearerToken is sent as "Authorization: Bearer" over HTTPS; it cannot
	// be combined with basic auth. BearerTokenFile holds it instead.
	BearerToken, BearerTokenFile string
	// CAFile is a PEM bundle trusted for the HTTPS server certificate.
	CAFile string
}

func (a Auth) empty() bool { return a == Auth{} }

// Options configures Open.
type Options struct {
	// URL is a local directory (watched, see Dir), a path to a bare git
	// repository (a directory holding HEAD and objects/), or a git URL with
	// scheme https, http, ssh or file. The scp-like form "git@host:repo" is
	// rejected; write ssh://git@host/repo instead.
	URL string
	// Branch, Tag and Commit select what to check out from git; precedence
	// is Commit > Tag > Branch. With none set the branch is "main" (not the
	// remote's HEAD, so a change of the remote's default branch never
	// silently changes what a host runs). Commit is a full 40-hex SHA-1; when
	// Branch is also set the commit is fetched from that branch only and the
	// revision reads "<branch>@sha1:…".
	Branch, Tag, Commit string
	// Path is the sub-directory holding the manifests, relative to the
	// repository (or directory) root. It must not leave the root and must
	// not be inside a dot-directory, which is never part of a snapshot.
	Path string
	// WorkDir holds the git checkouts (rev-<hash>, tmp-*, last-commit);
	// required for git, unused for a local directory. One source per
	// WorkDir: two agents sharing one would remove each other's revisions.
	WorkDir string
	// Auth is for https and ssh remotes; it must be empty for local
	// repositories.
	Auth Auth
	// Verify, when set, refuses git revisions not signed by a trusted key
	// (see Verify); it does not apply to a local directory.
	Verify *Verify
	// AllowRewind accepts a branch tip that does not descend from the last
	// accepted commit (a force-push or reset). Without it such a tip is
	// refused unless it carries a RewindMarker naming that commit.
	AllowRewind bool
	// Timeout bounds one Fetch (ls-remote plus clone); default 60s, Flux's
	// default.
	Timeout time.Duration
}

// DefaultBranch is the branch checked out when Options names no ref.
const DefaultBranch = "main"

// DefaultTimeout is the per-Fetch timeout when Options.Timeout is zero.
const DefaultTimeout = 60 * time.Second

// ErrRefNotFound is wrapped by Fetch errors when the configured branch, tag
// or commit does not exist in the remote.
var ErrRefNotFound = errors.New("reference not found")

// Open validates opt and returns a *Git or a *Dir. It does no network I/O;
// the first Fetch does.
func Open(opt Options) (Source, error) {
	if opt.URL == "" {
		return nil, errors.New("source: URL is empty")
	}
	sub, err := cleanSubPath(opt.Path)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", displayURL(opt.URL), err)
	}
	if opt.Timeout == 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Timeout < 0 {
		return nil, fmt.Errorf("source %s: negative timeout %s", displayURL(opt.URL), opt.Timeout)
	}

	if scpLike.MatchString(opt.URL) {
		return nil, fmt.Errorf("source %s: scp-like git addresses are not supported; write it as ssh://%s",
			displayURL(opt.URL), strings.Replace(opt.URL, ":", "/", 1))
	}
	if strings.Contains(opt.URL, "://") {
		u, err := url.Parse(opt.URL)
		if err != nil {
			// url.Error repeats the raw URL, which may hold a password.
			return nil, fmt.Errorf("source %s: malformed URL", displayURL(opt.URL))
		}
		switch strings.ToLower(u.Scheme) {
		case "https", "http", "ssh":
			return newGit(opt, sub, u)
		case "file":
			return newGit(opt, sub, nil)
		default:
			return nil, fmt.Errorf("source %s: unsupported scheme %q (use https, http, ssh, file or a local path)",
				displayURL(opt.URL), u.Scheme)
		}
	}

	abs, err := filepath.Abs(opt.URL)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", opt.URL, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("source %s: not a directory", abs)
	}
	opt.URL = abs
	if isBareRepo(abs) {
		return newGit(opt, sub, nil)
	}
	if !opt.Auth.empty() {
		return nil, fmt.Errorf("source %s: credentials are set but a local directory needs none", abs)
	}
	if opt.Verify != nil {
		return nil, fmt.Errorf("source %s: signature verification applies to git repositories; this is a plain directory", abs)
	}
	if opt.Branch != "" || opt.Tag != "" || opt.Commit != "" {
		return nil, fmt.Errorf("source %s: branch, tag and commit apply to git repositories; this is a plain directory (use a file:// URL to read it as git)", abs)
	}
	return newDir(abs, sub), nil
}

// scpLike matches "user@host:path", which url.Parse cannot read and which
// gogit does not support either.
var scpLike = regexp.MustCompile(`^[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:[^/]`)

// isBareRepo tells a bare repository (served over go-git's file transport)
// from a plain directory (watched): git itself recognises a repository by
// HEAD plus objects/.
func isBareRepo(dir string) bool {
	head, err := os.Stat(filepath.Join(dir, "HEAD"))
	if err != nil || !head.Mode().IsRegular() {
		return false
	}
	obj, err := os.Stat(filepath.Join(dir, "objects"))
	return err == nil && obj.IsDir()
}

// cleanSubPath returns Path in clean, slash-free-of-tricks form ("" for the
// root) or an error when it could leave the root.
func cleanSubPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if filepath.IsAbs(p) {
		return "", fmt.Errorf("path %q must be relative to the repository root", p)
	}
	c := filepath.Clean(p)
	if !filepath.IsLocal(c) {
		return "", fmt.Errorf("path %q escapes the repository root (\"..\" is not allowed to leave it)", p)
	}
	if c == "." {
		return "", nil
	}
	for _, part := range strings.Split(filepath.ToSlash(c), "/") {
		if strings.HasPrefix(part, ".") {
			return "", fmt.Errorf("path %q is inside the hidden directory %q, which is never part of a snapshot", p, part)
		}
	}
	return c, nil
}

// displayURL removes secrets from a URL for logs and errors: the whole
// user-info of http(s) URLs (tokens often sit in the user name), the
// password of any other URL.
func displayURL(raw string) string {
	if !strings.Contains(raw, "://") {
		return raw // a path, or scp-like "user@host:repo" with no password
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Unparseable: cut everything between "://" and the last "@" of
		// the authority rather than risk printing a password.
		i := strings.Index(raw, "://") + 3
		rest := raw[i:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
			return raw[:i] + "***@" + rest[at+1:]
		}
		return raw
	}
	return redact(u).String()
}

func redact(u *url.URL) *url.URL {
	c := *u
	if c.User == nil {
		return &c
	}
	switch strings.ToLower(c.Scheme) {
	case "http", "https":
		c.User = nil
	default:
		c.User = url.User(c.User.Username())
	}
	return &c
}

// scrubError hides secrets that a lower layer may have put into an error
// text (go-git quotes URLs and server replies verbatim) while keeping the
// chain for errors.Is and errors.As.
type scrubError struct {
	msg string
	err error
}

func (e *scrubError) Error() string { return e.msg }
func (e *scrubError) Unwrap() error { return e.err }

func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		// Values this short are not worth hiding and would blank out
		// ordinary words.
		if len(s) >= 4 && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "***")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &scrubError{msg: msg, err: err}
}
