package agent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/internal/srctree"
	"github.com/nodevirt/nodevirt/source"
)

// A commit whose manifest is a symlink to /etc/shadow: the checkout keeps
// the link, the digest covers it, and rendering refuses it by name without
// reading the host file, suspending pruning (Incomplete) like a parse
// failure. An in-tree link in the same commit is followed.
func TestRender_gitSymlinkOutOfTreeRefused(t *testing.T) {
	if _, err := os.Stat("/etc/shadow"); err != nil {
		t.Skip("needs /etc/shadow as the host file a link points to")
	}
	dir := t.TempDir()
	bare, work := filepath.Join(dir, "repo.git"), filepath.Join(dir, "work")
	git(t, dir, "init", "-q", "--bare", "-b", "main", bare)
	git(t, dir, "init", "-q", "-b", "main", work)
	if err := os.MkdirAll(filepath.Join(work, "clusters/edge"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "base-web.yaml"), []byte(vmYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"clusters/edge/shadow.yaml": "/etc/shadow",
		"clusters/edge/up.yaml":     "../../../../../../../../etc/shadow",
		"clusters/edge/web.yaml":    "../../base-web.yaml",
	} {
		if err := os.Symlink(target, filepath.Join(work, link)); err != nil {
			t.Fatal(err)
		}
	}
	git(t, work, "add", "-A")
	git(t, work, "commit", "-q", "-m", "links")
	git(t, work, "push", "-q", bare, "main")

	src, err := source.Open(source.Options{URL: "file://" + bare, WorkDir: filepath.Join(dir, "wd"), Path: "clusters/edge"})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatalf("a commit with symlinks must still be fetched (readers refuse them): %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(snap.Dir, "shadow.yaml")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("checkout must keep the committed link: %v", err)
	}
	r, err := agent.Render(context.Background(), snap, agent.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Set.Incomplete {
		t.Error("Incomplete = false; a refused link must suspend pruning")
	}
	refused := map[string]bool{}
	for _, d := range r.VMs.Diags {
		if strings.Contains(d.Error(), "root:") {
			t.Errorf("diagnostic echoes /etc/shadow: %s", d.Error())
		}
		if errors.Is(d, srctree.ErrEscapes) {
			refused[d.File] = true
		}
	}
	if !refused["shadow.yaml"] || !refused["up.yaml"] {
		t.Errorf("want shadow.yaml and up.yaml refused by name, got %v", r.VMs.Diags)
	}
	if len(r.Set.Objects) != 1 || r.Set.Objects[0].File != "web.yaml" {
		t.Errorf("the in-tree link web.yaml must be read: objects %v", r.Set.Objects)
	}
}
