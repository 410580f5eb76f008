package fleet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	fluxgit "github.com/fluxcd/pkg/git"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/crypto/ssh"
)

// bareRepo makes an empty bare repository, the shared remote of the tests.
func bareRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := git.PlainInit(dir, true); err != nil {
		t.Fatal(err)
	}
	return dir
}

func branchFor(t *testing.T, remote string) *Branch {
	return &Branch{Remote: remote, Name: "nodevirt-status", Dir: t.TempDir(), Attempts: 20}
}

func report(node, applied string, vms ...string) Report {
	r := Report{APIVersion: APIVersion, Kind: Kind, Node: node, Time: time.Now().UTC().Truncate(time.Second),
		Revisions: Revisions{Fetched: applied, Applied: applied}, VMs: []VM{}, Volumes: []Volume{}}
	for _, v := range vms {
		r.VMs = append(r.VMs, VM{Namespace: "default", Name: v, State: "Running", Running: true})
	}
	return r
}

// history walks the first-parent chain of the branch tip on remote,
// failing on a merge: the branch is linear.
func history(t *testing.T, remote, branch string) (*git.Repository, []*object.Commit) {
	t.Helper()
	repo, err := git.PlainOpen(remote)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		t.Fatal(err)
	}
	var out []*object.Commit
	for h := ref.Hash(); ; {
		c, err := repo.CommitObject(h)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
		if len(c.ParentHashes) > 1 {
			t.Fatalf("commit %s is a merge: the status branch must be linear", c.Hash)
		}
		if len(c.ParentHashes) == 0 {
			return repo, out
		}
		h = c.ParentHashes[0]
	}
}

// changedFiles lists the paths c changes against its parent.
func changedFiles(t *testing.T, c *object.Commit) []string {
	t.Helper()
	to, err := c.Tree()
	if err != nil {
		t.Fatal(err)
	}
	from := &object.Tree{}
	if len(c.ParentHashes) == 1 {
		p, err := c.Parent(0)
		if err != nil {
			t.Fatal(err)
		}
		if from, err = p.Tree(); err != nil {
			t.Fatal(err)
		}
	}
	changes, err := from.Diff(to)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ch := range changes {
		name := ch.To.Name
		if name == "" {
			name = ch.From.Name
		}
		out = append(out, name)
	}
	return out
}

func TestPublish_createsTheBranchAndReadsBack(t *testing.T) {
	remote := bareRepo(t)
	b := branchFor(t, remote)
	want := report("n1", "main@sha1:1111111111111111111111111111111111111111", "web")
	commit, err := b.Publish(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	got, rev, err := Read(context.Background(), remote, "nodevirt-status", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rev != commit {
		t.Errorf("Read revision %s, Publish pushed %s", rev, commit)
	}
	if len(got) != 1 || !Equal(got["n1"], want) || !got["n1"].Time.Equal(want.Time) {
		t.Fatalf("Read = %+v, want n1: %+v", got, want)
	}
	_, hist := history(t, remote, "nodevirt-status")
	if len(hist) != 1 {
		t.Fatalf("%d commits, want the one orphan commit", len(hist))
	}
	c := hist[0]
	if c.Author.Name != "nodevirt n1" || !strings.Contains(c.Message, want.Revisions.Applied) {
		t.Errorf("commit by %q with message %q: want nodevirt n1 naming the applied revision", c.Author.Name, c.Message)
	}
	if files := changedFiles(t, c); strings.Join(files, ",") != "README.md,nodes/n1.json" {
		t.Errorf("first commit holds %v, want README.md and nodes/n1.json", files)
	}
	// The same report again commits nothing.
	again, err := b.Publish(context.Background(), want)
	if err != nil || again != commit {
		t.Errorf("unchanged report: Publish = %s, %v; want the tip %s unchanged", again, err, commit)
	}
}

func TestPublish_concurrentNodesKeepEachOthersFiles(t *testing.T) {
	remote := bareRepo(t)
	const rounds = 4
	nodes := []string{"n1", "n2", "n3"}
	var mu sync.Mutex
	pushed := map[string]string{} // commit → node
	last := map[string]Report{}
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes)*rounds)
	for _, n := range nodes {
		b := branchFor(t, remote)
		wg.Go(func() {
			for i := range rounds {
				r := report(n, fmt.Sprintf("main@sha1:%040d", i), fmt.Sprintf("vm-%s-%d", n, i))
				c, err := b.Publish(context.Background(), r)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				pushed[c], last[n] = n, r
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, _, err := Read(context.Background(), remote, "nodevirt-status", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if !Equal(got[n], last[n]) {
			t.Errorf("%s's report on the branch is %+v, want its last one %+v", n, got[n], last[n])
		}
	}
	_, hist := history(t, remote, "nodevirt-status")
	if len(hist) != len(nodes)*rounds {
		t.Errorf("%d commits on the branch, want %d: one per publish, none lost", len(hist), len(nodes)*rounds)
	}
	onBranch := map[string]bool{}
	for _, c := range hist {
		onBranch[c.Hash.String()] = true
		node := strings.TrimPrefix(c.Author.Name, "nodevirt ")
		for _, f := range changedFiles(t, c) {
			if f != Path(node) && f != "README.md" {
				t.Errorf("commit %s by %s changed %s", c.Hash, node, f)
			}
		}
	}
	// A forced push would have dropped commits already pushed.
	for c, n := range pushed {
		if !onBranch[c] {
			t.Errorf("commit %s pushed by %s is not in the branch's history", c, n)
		}
	}
}

func TestPublish_rejectedPushIsRetriedOnTheNewTip(t *testing.T) {
	remote := bareRepo(t)
	a, other := branchFor(t, remote), branchFor(t, remote)
	if _, err := other.Publish(context.Background(), report("n2", "main@sha1:a")); err != nil {
		t.Fatal(err)
	}
	var raced string
	attempts := 0
	a.beforePush = func(attempt int) {
		attempts++
		if attempt == 0 {
			// n2 pushes between n1's fetch and push: n1's push is not a
			// fast-forward any more.
			c, err := other.Publish(context.Background(), report("n2", "main@sha1:b", "db"))
			if err != nil {
				t.Error(err)
			}
			raced = c
		}
	}
	commit, err := a.Publish(context.Background(), report("n1", "main@sha1:b", "web"))
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 2 {
		t.Errorf("%d push attempts, want 2: the first rejected, the second on the new tip", attempts)
	}
	repo, hist := history(t, remote, "nodevirt-status")
	if hist[0].Hash.String() != commit || hist[0].ParentHashes[0].String() != raced {
		t.Errorf("tip %s with parent %s, want n1's %s on top of n2's %s", hist[0].Hash, hist[0].ParentHashes[0], commit, raced)
	}
	// n2's file is byte for byte what n2 pushed.
	want, err := fileAt(repo, raced, Path("n2"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := fileAt(repo, commit, Path("n2"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("n2's file changed under n1's commit:\n%s\nwant\n%s", got, want)
	}
}

func fileAt(repo *git.Repository, commit, path string) ([]byte, error) {
	c, err := repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return nil, err
	}
	f, err := c.File(path)
	if err != nil {
		return nil, err
	}
	s, err := f.Contents()
	return []byte(s), err
}

func TestPublish_giveUpAfterAttempts(t *testing.T) {
	remote := bareRepo(t)
	a, other := branchFor(t, remote), branchFor(t, remote)
	a.Attempts = 2
	n := 0
	a.beforePush = func(int) {
		n++
		if _, err := other.Publish(context.Background(), report("n2", fmt.Sprintf("main@sha1:%d", n))); err != nil {
			t.Error(err)
		}
	}
	_, err := a.Publish(context.Background(), report("n1", "main@sha1:x"))
	if err == nil || !strings.Contains(err.Error(), "after 2 attempts") {
		t.Fatalf("Publish = %v, want an error after 2 attempts", err)
	}
	got, _, err := Read(context.Background(), remote, "nodevirt-status", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["n1"]; ok || got["n2"].Revisions.Applied != "main@sha1:2" {
		t.Errorf("branch holds %v: want n2's last report and no n1", got)
	}
}

func TestRead_malformedFileIsNamedOthersAreRead(t *testing.T) {
	remote := bareRepo(t)
	b := branchFor(t, remote)
	for _, n := range []string{"n1", "n2"} {
		if _, err := b.Publish(context.Background(), report(n, "main@sha1:a")); err != nil {
			t.Fatal(err)
		}
	}
	// n3's file is broken: commit it through the same plumbing.
	repo, err := b.open()
	if err != nil {
		t.Fatal(err)
	}
	tip, err := b.fetch(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	commit, _, err := b.commit(repo, tip, Report{Node: "n3"}, []byte(`{"apiVersion": "nodevirt.io/v1alpha1", "kind": "NodeReport", "node": "n3", "colour": "red"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.push(context.Background(), repo, tip, commit); err != nil {
		t.Fatal(err)
	}
	for name, read := range map[string]func() (map[string]Report, string, error){
		"Read": func() (map[string]Report, string, error) {
			return Read(context.Background(), remote, "nodevirt-status", nil, nil)
		},
		"Branch.Read": func() (map[string]Report, string, error) { return branchFor(t, remote).Read(context.Background()) },
	} {
		got, rev, err := read()
		if err == nil || !strings.Contains(err.Error(), "nodes/n3.json") || !strings.Contains(err.Error(), "colour") {
			t.Errorf("%s error = %v, want one naming nodes/n3.json and its unknown field", name, err)
		}
		if len(got) != 2 || got["n1"].Node != "n1" || got["n2"].Node != "n2" || rev != commit.String() {
			t.Errorf("%s = %v at %s, want n1 and n2 at %s", name, got, rev, commit)
		}
	}
}

func TestRead_missingBranch(t *testing.T) {
	remote := bareRepo(t)
	if _, _, err := Read(context.Background(), remote, "nodevirt-status", nil, nil); !errors.Is(err, ErrNoBranch) {
		t.Errorf("Read of an empty repository = %v, want ErrNoBranch", err)
	}
	if _, _, err := branchFor(t, remote).Read(context.Background()); !errors.Is(err, ErrNoBranch) {
		t.Errorf("Branch.Read of an empty repository = %v, want ErrNoBranch", err)
	}
}

// Signed reports verify with Flux's verifiers, the ones the agents use
// on the source, for both key kinds; an unrelated key does not verify them.
func TestPublish_signedCommitsVerify(t *testing.T) {
	pgpKey, err := openpgp.NewEntity("nodevirt n1", "", "n1@nodevirt.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	otherPGP, err := openpgp.NewEntity("someone", "", "x@example.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	armored := func(e *openpgp.Entity) string {
		var b bytes.Buffer
		if err := armorPublic(&b, e); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	sshKey, sshPub := sshKeyPair(t)
	_, otherSSH := sshKeyPair(t)

	for name, tc := range map[string]struct {
		signer       Signer
		verify       func(c *fluxgit.Commit, key string) (string, error)
		right, wrong string
	}{
		"openpgp": {OpenPGPSigner(pgpKey), func(c *fluxgit.Commit, k string) (string, error) { return c.VerifyPGP(k) }, armored(pgpKey), armored(otherPGP)},
		"ssh":     {SSHSigner(sshKey), func(c *fluxgit.Commit, k string) (string, error) { return c.VerifySSH(k) }, sshPub, otherSSH},
	} {
		remote := bareRepo(t)
		b := branchFor(t, remote)
		b.Signer = tc.signer
		if _, err := b.Publish(context.Background(), report("n1", "main@sha1:a")); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, hist := history(t, remote, "nodevirt-status")
		c := hist[0]
		if c.PGPSignature == "" {
			t.Fatalf("%s: commit is not signed", name)
		}
		enc := &plumbing.MemoryObject{}
		if err := c.EncodeWithoutSignature(enc); err != nil {
			t.Fatal(err)
		}
		rd, err := enc.Reader()
		if err != nil {
			t.Fatal(err)
		}
		payload, err := io.ReadAll(rd)
		if err != nil {
			t.Fatal(err)
		}
		fc := &fluxgit.Commit{Signature: c.PGPSignature, Encoded: payload}
		if _, err := tc.verify(fc, tc.right); err != nil {
			t.Errorf("%s: signature does not verify with the signing key: %v", name, err)
		}
		if _, err := tc.verify(fc, tc.wrong); err == nil {
			t.Errorf("%s: signature verifies with an unrelated key", name)
		}
	}
}

// sshKeyPair is a new ed25519 key as an ssh.Signer and its authorized_keys
// line.
func sshKeyPair(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, string(ssh.MarshalAuthorizedKey(s.PublicKey()))
}

func TestPublish_badInput(t *testing.T) {
	remote := bareRepo(t)
	for name, tc := range map[string]struct {
		b    *Branch
		r    Report
		want string
	}{
		"node with a slash": {branchFor(t, remote), report("../n1", "x"), `node name "../n1"`},
		"no branch name":    {&Branch{Remote: remote, Dir: t.TempDir()}, report("n1", "x"), "branch name"},
		"bad branch name":   {&Branch{Remote: remote, Name: "a..b", Dir: t.TempDir()}, report("n1", "x"), `"a..b"`},
	} {
		if _, err := tc.b.Publish(context.Background(), tc.r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Publish = %v, want an error naming %s", name, err, tc.want)
		}
	}
}

// The status branch starts as an orphan beside the source's branches and
// leaves them alone.
func TestPublish_besideTheSourceBranch(t *testing.T) {
	dir := t.TempDir()
	remote, work := filepath.Join(dir, "repo.git"), filepath.Join(dir, "work")
	gitCLI := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@nodevirt.invalid", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	gitCLI(dir, "init", "-q", "--bare", "-b", "main", remote)
	gitCLI(dir, "init", "-q", "-b", "main", work)
	if err := os.WriteFile(filepath.Join(work, "vm.yaml"), []byte("kind: VirtualMachine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCLI(work, "add", "-A")
	gitCLI(work, "commit", "-q", "-m", "source")
	gitCLI(work, "push", "-q", remote, "main")
	main := gitCLI(remote, "rev-parse", "main")

	if _, err := branchFor(t, remote).Publish(context.Background(), report("n1", "main@sha1:"+main)); err != nil {
		t.Fatal(err)
	}
	if got := gitCLI(remote, "rev-parse", "main"); got != main {
		t.Errorf("main moved from %s to %s", main, got)
	}
	if files := gitCLI(remote, "ls-tree", "-r", "--name-only", "nodevirt-status"); files != "README.md\nnodes/n1.json" {
		t.Errorf("status branch holds %q, want only the README and n1's report", files)
	}
	if base, err := exec.Command("git", "-C", remote, "merge-base", "main", "nodevirt-status").Output(); err == nil {
		t.Errorf("status branch shares history with main (merge base %s): want an orphan", base)
	}
}
