package source

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fluxcd/pkg/git"
	extgogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// Verification modes, Flux's GitRepository spec.verify.mode in lower case.
const (
	// VerifyHead verifies the commit at the tip of the ref.
	VerifyHead = "head"
	// VerifyTag verifies the annotated tag named by Options.Tag.
	VerifyTag = "tag"
	// VerifyTagAndHead verifies both the tag and the commit it points to.
	VerifyTagAndHead = "tagandhead"
)

// Reasons a revision is refused (RefusedError.Reason).
const (
	ReasonUnsigned  = "unsigned"
	ReasonUntrusted = "untrusted"
	ReasonRewind    = "rewind"
)

// RewindMarker is the file, at the repository root of a new tip, that
// confirms a rewind: each line names (by full or abbreviated hash, at
// least 7 hex digits) a commit the branch may rewind from. Naming the old
// commit means a marker left in history cannot bless a later rewind.
const RewindMarker = ".nodevirt/allow-rewind"

// Verify configures signature verification of git revisions.
type Verify struct {
	// Mode is VerifyHead (the default when empty), VerifyTag or
	// VerifyTagAndHead; the tag modes need Options.Tag.
	Mode string
	// KeysDir holds the trusted keys: every *.asc file is an armored
	// OpenPGP key ring, every *.pub (or Flux's *.sshpub) file SSH public
	// keys in authorized_keys form. It is read again at each new revision,
	// so keys can be rotated without a restart; it must hold at least one
	// key, or Open fails: an empty trust store would refuse every revision.
	KeysDir string
}

// RefusedError is returned by Fetch for a revision that must not be
// applied. The Snapshot returned with it is the last accepted one.
type RefusedError struct {
	// Revision is the refused commit ("main@sha1:…").
	Revision string
	// Author is the commit's author, "Name <email>".
	Author string
	// Reason is ReasonUnsigned, ReasonUntrusted or ReasonRewind.
	Reason string
	// Detail says what exactly is wrong.
	Detail string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("revision %s by %s refused (%s): %s", e.Revision, e.Author, e.Reason, e.Detail)
}

// keys is the content of a Verify.KeysDir.
type keys struct {
	pgp, ssh []string
	sum      string // identifies the key set, so a rotation re-checks a refusal
}

func validMode(m string) error {
	switch m {
	case "", VerifyHead, VerifyTag, VerifyTagAndHead:
		return nil
	}
	return fmt.Errorf("verify mode %q: want %s, %s or %s", m, VerifyHead, VerifyTag, VerifyTagAndHead)
}

func loadKeys(dir string) (keys, error) {
	if dir == "" {
		return keys{}, errors.New("signature verification needs a keys directory")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return keys{}, fmt.Errorf("keys directory: %w", err)
	}
	var k keys
	h := sha256.New()
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		if e.IsDir() || (ext != ".asc" && ext != ".pub" && ext != ".sshpub") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return keys{}, fmt.Errorf("keys directory: %w", err)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			return keys{}, fmt.Errorf("keys directory: %s is empty", name)
		}
		fmt.Fprintf(h, "%s\x00%x\x00", name, sha256.Sum256(b))
		if ext == ".asc" {
			k.pgp = append(k.pgp, string(b))
		} else {
			k.ssh = append(k.ssh, string(b))
		}
	}
	if len(k.pgp)+len(k.ssh) == 0 {
		return keys{}, fmt.Errorf("keys directory %s holds no *.asc (OpenPGP) or *.pub (SSH) key: every revision would be refused", dir)
	}
	k.sum = fmt.Sprintf("%x", h.Sum(nil))
	return k, nil
}

// signed is what git.Commit and git.Tag have in common.
type signed interface {
	SignatureType() string
	VerifyPGP(keyRings ...string) (string, error)
	VerifySSH(authorizedKeys ...string) (string, error)
}

// checkSignature returns the reason and detail of a refusal, or "" when
// the object is signed by a trusted key.
func checkSignature(what string, s signed, k keys) (reason, detail string) {
	var err error
	switch t := s.SignatureType(); t {
	case "empty":
		return ReasonUnsigned, what + " is not signed"
	case "openpgp":
		if len(k.pgp) == 0 {
			return ReasonUntrusted, what + " has an OpenPGP signature but no *.asc key is trusted"
		}
		_, err = s.VerifyPGP(k.pgp...)
	case "ssh":
		if len(k.ssh) == 0 {
			return ReasonUntrusted, what + " has an SSH signature but no *.pub key is trusted"
		}
		_, err = s.VerifySSH(k.ssh...)
	default:
		return ReasonUntrusted, fmt.Sprintf("%s has a signature of unsupported type %q", what, t)
	}
	if err != nil {
		return ReasonUntrusted, fmt.Sprintf("%s: %v", what, err)
	}
	return "", ""
}

// verify checks c against the configured keys and mode.
func (g *Git) verify(c *git.Commit) *RefusedError {
	if g.verifyCfg == nil {
		return nil
	}
	k, err := loadKeys(g.verifyCfg.KeysDir)
	refuse := func(reason, detail string) *RefusedError {
		return &RefusedError{Revision: c.String(), Author: author(c), Reason: reason, Detail: detail}
	}
	if err != nil {
		return refuse(ReasonUntrusted, err.Error())
	}
	mode := g.verifyCfg.Mode
	if mode == VerifyTag || mode == VerifyTagAndHead {
		t := c.ReferencingTag
		if t == nil || !git.IsAnnotatedTag(*t) {
			return refuse(ReasonUnsigned, fmt.Sprintf("tag %q is not an annotated (signable) tag", g.checkout.Tag))
		}
		if r, d := checkSignature("tag "+t.Name, t, k); r != "" {
			return refuse(r, d)
		}
	}
	if mode != VerifyTag {
		if r, d := checkSignature("commit "+c.Hash.String(), c, k); r != "" {
			return refuse(r, d)
		}
	}
	return nil
}

func author(c *git.Commit) string {
	return fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email)
}

func (g *Git) keysSum() string {
	if g.verifyCfg == nil {
		return ""
	}
	k, err := loadKeys(g.verifyCfg.KeysDir)
	if err != nil {
		return ""
	}
	return k.sum
}

// checksRewind reports whether a new clone must prove that it descends
// from prev: only a branch can be rewound; a tag or commit is chosen by
// the operator.
func (g *Git) checksRewind(prev string) bool {
	return prev != "" && !g.allowRewind && g.checkout.Commit == "" && g.checkout.Tag == ""
}

// checkRewind refuses c unless it descends from prev (a full hash) or the
// clone in dir carries a RewindMarker naming prev.
func checkRewind(dir, prev string, c *git.Commit) *RefusedError {
	now := c.Hash.String()
	if now == prev {
		return nil
	}
	refuse := func(detail string) *RefusedError {
		return &RefusedError{Revision: c.String(), Author: author(c), Reason: ReasonRewind, Detail: detail}
	}
	repo, err := extgogit.PlainOpen(dir)
	if err != nil {
		return refuse(fmt.Sprintf("cannot open the clone to check ancestry: %v", err))
	}
	tip, err := repo.CommitObject(plumbing.NewHash(now))
	if err != nil {
		return refuse(fmt.Sprintf("cannot read commit %s: %v", now, err))
	}
	old, err := repo.CommitObject(plumbing.NewHash(prev))
	switch {
	case err == nil:
		ok, err := old.IsAncestor(tip)
		if err != nil {
			return refuse(fmt.Sprintf("cannot walk the history from %s to %s: %v", now, prev, err))
		}
		if ok {
			return nil
		}
	case !errors.Is(err, plumbing.ErrObjectNotFound):
		return refuse(fmt.Sprintf("cannot read commit %s: %v", prev, err))
	}
	if markerAllows(filepath.Join(dir, RewindMarker), prev) {
		return nil
	}
	return refuse(fmt.Sprintf("%s does not descend from the last applied commit %s (force-push or reset?); confirm with --allow-rewind or a %s file naming %s",
		now, prev, RewindMarker, prev))
}

// hasParent reports whether prev is a parent of c in the clone at dir; a
// shallow clone holds c itself, and so its parents' hashes.
func hasParent(dir string, c *git.Commit, prev string) bool {
	repo, err := extgogit.PlainOpen(dir)
	if err != nil {
		return false
	}
	tip, err := repo.CommitObject(plumbing.NewHash(c.Hash.String()))
	if err != nil {
		return false
	}
	return slices.Contains(tip.ParentHashes, plumbing.NewHash(prev))
}

// markerAllows reports whether the marker file names prev.
func markerAllows(path, prev string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.ToLower(strings.TrimSpace(sc.Text()))
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if len(line) >= 7 && len(line) <= 40 && strings.HasPrefix(prev, line) &&
			!slices.ContainsFunc([]byte(line), func(b byte) bool { return !strings.ContainsRune("0123456789abcdef", rune(b)) }) {
			return true
		}
	}
	return false
}
