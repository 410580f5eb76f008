package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// ErrNoBranch is returned by Read when the remote has no status branch yet.
var ErrNoBranch = errors.New("status branch not found")

// Branch is one node's view of the status branch: a working clone (bare:
// commits are built from objects, no checkout) in Dir, kept between
// publishes so each fetch brings only what other nodes pushed since.
type Branch struct {
	// Remote is the repository URL (no credentials in it: go-git quotes it
	// in errors); Name is the branch.
	Remote, Name string
	// Dir is the working clone, under the agent's state directory.
	Dir string
	// Auth is how to reach Remote; nil for a local repository.
	Auth transport.AuthMethod
	// CABundle is the PEM bundle an https Remote's certificate is checked
	// against instead of the system's roots; nil for the system's.
	CABundle []byte
	// Signer, when set, signs every commit (OpenPGPSigner, SSHSigner).
	Signer Signer
	// Attempts bounds the fetch-rebase-push rounds of one Publish (5 when
	// zero).
	Attempts int

	mu sync.Mutex
	// beforePush lets tests push from another node between fetch and push.
	beforePush func(attempt int)
}

const remoteName = "origin"

func (b *Branch) localRef() plumbing.ReferenceName { return plumbing.NewBranchReferenceName(b.Name) }
func (b *Branch) trackRef() plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName(remoteName, b.Name)
}

// open opens the working clone, making it on first use.
func (b *Branch) open() (*git.Repository, error) {
	if b.Remote == "" || b.Name == "" || b.Dir == "" {
		return nil, errors.New("status branch: remote, branch name and working directory are required")
	}
	if err := b.localRef().Validate(); err != nil {
		return nil, fmt.Errorf("status branch name %q: %w", b.Name, err)
	}
	repo, err := git.PlainOpen(b.Dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		if err := os.MkdirAll(b.Dir, 0o700); err != nil {
			return nil, err
		}
		repo, err = git.PlainInit(b.Dir, true)
	}
	if err != nil {
		return nil, fmt.Errorf("status clone %s: %w", b.Dir, err)
	}
	rc := &config.RemoteConfig{Name: remoteName, URLs: []string{b.Remote},
		Fetch: []config.RefSpec{config.RefSpec("+" + b.localRef().String() + ":" + b.trackRef().String())}}
	if r, err := repo.Remote(remoteName); err == nil {
		if slices.Equal(r.Config().URLs, rc.URLs) {
			return repo, nil
		}
		if err := repo.DeleteRemote(remoteName); err != nil {
			return nil, err
		}
	}
	if _, err := repo.CreateRemote(rc); err != nil {
		return nil, fmt.Errorf("status clone %s: %w", b.Dir, err)
	}
	return repo, nil
}

// fetch brings the remote's branch into the tracking ref and returns its
// tip (zero when the remote has no such branch yet).
func (b *Branch) fetch(ctx context.Context, repo *git.Repository) (plumbing.Hash, error) {
	err := repo.FetchContext(ctx, &git.FetchOptions{RemoteName: remoteName, Auth: b.Auth, CABundle: b.CABundle, Tags: git.NoTags,
		RefSpecs: []config.RefSpec{config.RefSpec("+" + b.localRef().String() + ":" + b.trackRef().String())}})
	switch {
	case err == nil || errors.Is(err, git.NoErrAlreadyUpToDate):
	case isNoRef(err):
		// The tracking ref of a branch someone deleted must not be
		// rebased on.
		_ = repo.Storer.RemoveReference(b.trackRef())
		return plumbing.ZeroHash, nil
	default:
		return plumbing.ZeroHash, fmt.Errorf("fetch status branch %s: %w", b.Name, err)
	}
	ref, err := repo.Reference(b.trackRef(), true)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("fetch status branch %s: %w", b.Name, err)
	}
	return ref.Hash(), nil
}

// isNoRef says the remote has no such branch (or no branch at all).
func isNoRef(err error) bool {
	return errors.Is(err, git.NoMatchingRefSpecError{}) || errors.Is(err, transport.ErrEmptyRemoteRepository)
}

// Publish writes r as nodes/<node>.json on the branch and pushes it,
// fast-forward only: when another node pushed first, it fetches the new
// tip, writes its file again on top of it and retries after a random
// pause. It never forces and never changes another node's file. It
// returns the commit pushed, or the tip when the file already said the
// same.
func (b *Branch) Publish(ctx context.Context, r Report) (string, error) {
	if err := ValidNode(r.Node); err != nil {
		return "", fmt.Errorf("publish report: %w", err)
	}
	data, err := Marshal(r)
	if err != nil {
		return "", fmt.Errorf("publish report of %s: %w", r.Node, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	repo, err := b.open()
	if err != nil {
		return "", err
	}
	attempts := b.Attempts
	if attempts <= 0 {
		attempts = 5
	}
	var last error
	for i := range attempts {
		if i > 0 {
			// Nodes that raced back off by different amounts, so the next
			// round is usually won by one and joined by the other.
			pause := time.Duration(50+rand.IntN(200*i)) * time.Millisecond
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("publish report of %s: %w (after: %w)", r.Node, ctx.Err(), last)
			case <-time.After(pause):
			}
		}
		tip, err := b.fetch(ctx, repo)
		if err != nil {
			return "", err
		}
		commit, changed, err := b.commit(repo, tip, r, data)
		if err != nil {
			return "", fmt.Errorf("publish report of %s: %w", r.Node, err)
		}
		if !changed {
			return tip.String(), nil
		}
		if b.beforePush != nil {
			b.beforePush(i)
		}
		if err := b.push(ctx, repo, tip, commit); err != nil {
			last = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		return commit.String(), nil
	}
	return "", fmt.Errorf("publish report of %s to %s after %d attempts: %w", r.Node, b.Name, attempts, last)
}

// push sends commit as the branch, refusing unless the remote's branch is
// still tip (go-git also refuses a non-fast-forward on its own).
func (b *Branch) push(ctx context.Context, repo *git.Repository, tip, commit plumbing.Hash) error {
	if err := repo.Storer.SetReference(plumbing.NewHashReference(b.localRef(), commit)); err != nil {
		return err
	}
	opts := &git.PushOptions{RemoteName: remoteName, Auth: b.Auth, CABundle: b.CABundle,
		RefSpecs: []config.RefSpec{config.RefSpec(b.localRef().String() + ":" + b.localRef().String())}}
	if !tip.IsZero() {
		opts.RequireRemoteRefs = []config.RefSpec{config.RefSpec(tip.String() + ":" + b.localRef().String())}
	}
	err := repo.PushContext(ctx, opts)
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("push status branch %s: %w", b.Name, err)
	}
	return nil
}

// commit builds the commit writing data as node's file on top of tip (an
// orphan commit with a README when tip is zero). Every other entry of the
// tree is carried over by hash, so other nodes' files stay byte-identical.
func (b *Branch) commit(repo *git.Repository, tip plumbing.Hash, r Report, data []byte) (plumbing.Hash, bool, error) {
	s := repo.Storer
	blob, err := putBlob(s, data)
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	var root, nodes []object.TreeEntry
	var parents []plumbing.Hash
	if tip.IsZero() {
		readme, err := putBlob(s, []byte(readme))
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
		root = []object.TreeEntry{{Name: "README.md", Mode: filemode.Regular, Hash: readme}}
	} else {
		c, err := repo.CommitObject(tip)
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
		t, err := c.Tree()
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
		for _, e := range t.Entries {
			if e.Name != "nodes" {
				root = append(root, e)
				continue
			}
			if e.Mode != filemode.Dir {
				return plumbing.ZeroHash, false, fmt.Errorf("commit %s: nodes is not a directory", tip)
			}
			sub, err := repo.TreeObject(e.Hash)
			if err != nil {
				return plumbing.ZeroHash, false, err
			}
			nodes = slices.Clone(sub.Entries)
		}
		parents = []plumbing.Hash{tip}
	}
	name := r.Node + ".json"
	i := slices.IndexFunc(nodes, func(e object.TreeEntry) bool { return e.Name == name })
	switch {
	case i >= 0 && nodes[i].Hash == blob:
		return tip, false, nil
	case i >= 0:
		nodes[i] = object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: blob}
	default:
		nodes = append(nodes, object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: blob})
	}
	nodesTree, err := putTree(s, nodes)
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	root = slices.DeleteFunc(root, func(e object.TreeEntry) bool { return e.Name == "nodes" })
	root = append(root, object.TreeEntry{Name: "nodes", Mode: filemode.Dir, Hash: nodesTree})
	rootTree, err := putTree(s, root)
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	who := object.Signature{Name: "nodevirt " + r.Node, Email: r.Node + "@nodevirt.invalid", When: time.Now()}
	applied := r.Revisions.Applied
	if applied == "" {
		applied = "nothing applied yet"
	}
	c := &object.Commit{Author: who, Committer: who, TreeHash: rootTree, ParentHashes: parents,
		Message: fmt.Sprintf("%s: report at %s\n\nApplied: %s\n", r.Node, r.Time.UTC().Format(time.RFC3339), applied)}
	if b.Signer != nil {
		if err := sign(c, b.Signer); err != nil {
			return plumbing.ZeroHash, false, fmt.Errorf("sign status commit: %w", err)
		}
	}
	obj := s.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, false, err
	}
	h, err := s.SetEncodedObject(obj)
	return h, true, err
}

const readme = `# nodevirt status

Each nodevirt agent of the fleet commits its own report here as
nodes/<node>.json, fast-forward only. Read them with
` + "`nodevirt fleet status --source URL --status-branch NAME`" + `.
`

// Signer signs a commit's bytes (without its signature) and returns the
// armored signature git stores in the commit's gpgsig header; go-git's
// Signer has the same shape.
type Signer interface {
	Sign(message io.Reader) ([]byte, error)
}

// OpenPGPSigner signs with an OpenPGP private key, as `git commit -S` does.
func OpenPGPSigner(key *openpgp.Entity) Signer { return pgpSigner{key} }

type pgpSigner struct{ key *openpgp.Entity }

func (s pgpSigner) Sign(message io.Reader) ([]byte, error) {
	var sig bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&sig, s.key, message, nil); err != nil {
		return nil, err
	}
	return sig.Bytes(), nil
}

// SSHSigner signs with an SSH key, as git does with gpg.format ssh: an
// SSHSIG over SHA-512 in the "git" namespace.
func SSHSigner(key ssh.Signer) Signer { return sshSigner{key} }

type sshSigner struct{ key ssh.Signer }

func (s sshSigner) Sign(message io.Reader) ([]byte, error) {
	sig, err := sshsig.Sign(message, s.key, sshsig.HashSHA512, "git")
	if err != nil {
		return nil, err
	}
	return sshsig.Armor(sig), nil
}

// sign signs c as git does: over the commit without its signature.
func sign(c *object.Commit, s Signer) error {
	enc := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(enc); err != nil {
		return err
	}
	rd, err := enc.Reader()
	if err != nil {
		return err
	}
	sig, err := s.Sign(rd)
	if err != nil {
		return err
	}
	c.PGPSignature = string(sig)
	return nil
}

func putBlob(s storer.EncodedObjectStorer, data []byte) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(data)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// putTree stores entries in git's order: by name, a directory compared
// as if its name ended in a slash.
func putTree(s storer.EncodedObjectStorer, entries []object.TreeEntry) (plumbing.Hash, error) {
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	slices.SortFunc(entries, func(a, b object.TreeEntry) int { return strings.Compare(key(a), key(b)) })
	obj := s.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// Read fetches the branch into the working clone and reads every node's
// report at its tip, like the package's Read.
func (b *Branch) Read(ctx context.Context) (map[string]Report, string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	repo, err := b.open()
	if err != nil {
		return nil, "", err
	}
	tip, err := b.fetch(ctx, repo)
	if err != nil {
		return nil, "", err
	}
	if tip.IsZero() {
		return nil, "", fmt.Errorf("%w: %s", ErrNoBranch, b.Name)
	}
	return readTip(repo, tip)
}

// Read reads every nodes/*.json at the tip of branch on remote, with no
// working clone (it clones into memory): for `fleet status` on any
// machine. The revision is the tip's commit hash. A file that does not
// decode is named in the error, and the reports of the others are
// returned with it.
func Read(ctx context.Context, remote, branch string, auth transport.AuthMethod, caBundle []byte) (map[string]Report, string, error) {
	if err := plumbing.NewBranchReferenceName(branch).Validate(); err != nil {
		return nil, "", fmt.Errorf("status branch name %q: %w", branch, err)
	}
	repo, err := git.CloneContext(ctx, memory.NewStorage(), nil, &git.CloneOptions{URL: remote, Auth: auth, CABundle: caBundle,
		ReferenceName: plumbing.NewBranchReferenceName(branch), SingleBranch: true, Depth: 1, Tags: git.NoTags})
	if err != nil {
		if isNoRef(err) {
			return nil, "", fmt.Errorf("%w: %s", ErrNoBranch, branch)
		}
		return nil, "", fmt.Errorf("read status branch %s of %s: %w", branch, remote, err)
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		return nil, "", fmt.Errorf("read status branch %s: %w", branch, err)
	}
	return readTip(repo, ref.Hash())
}

func readTip(repo *git.Repository, tip plumbing.Hash) (map[string]Report, string, error) {
	c, err := repo.CommitObject(tip)
	if err != nil {
		return nil, "", fmt.Errorf("status commit %s: %w", tip, err)
	}
	t, err := c.Tree()
	if err != nil {
		return nil, "", fmt.Errorf("status commit %s: %w", tip, err)
	}
	out := map[string]Report{}
	sub, err := t.Tree("nodes")
	if errors.Is(err, object.ErrDirectoryNotFound) {
		return out, tip.String(), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("status commit %s: nodes: %w", tip, err)
	}
	var bad []error
	for _, e := range sub.Entries {
		name, ok := strings.CutSuffix(e.Name, ".json")
		if !ok || !e.Mode.IsFile() {
			continue
		}
		file := path.Join("nodes", e.Name)
		data, err := readBlob(repo, e.Hash)
		if err == nil {
			var r Report
			if r, err = Decode(data, name); err == nil {
				out[name] = r
				continue
			}
		}
		bad = append(bad, fmt.Errorf("%s: %w", file, err))
	}
	return out, tip.String(), errors.Join(bad...)
}

func readBlob(repo *git.Repository, h plumbing.Hash) ([]byte, error) {
	blob, err := repo.BlobObject(h)
	if err != nil {
		return nil, err
	}
	rd, err := blob.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(io.LimitReader(rd, 4<<20))
}
