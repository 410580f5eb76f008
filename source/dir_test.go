package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func openDir(tb testing.TB, opt Options) *Dir {
	tb.Helper()
	s, err := Open(opt)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	d, ok := s.(*Dir)
	if !ok {
		tb.Fatalf("Open(%q) = %T, want *Dir", opt.URL, s)
	}
	return d
}

func TestDigest_format(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a.yaml"), "one\n")
	writeFile(t, filepath.Join(root, "a/b.yaml"), "two\n")
	// Plain sorted paths: "a.yaml" < "a/b.yaml" because '.' < '/', although
	// a directory walk visits a/ first.
	h := sha256.New()
	for _, f := range []struct{ path, content string }{{"a.yaml", "one\n"}, {"a/b.yaml", "two\n"}} {
		sum := sha256.Sum256([]byte(f.content))
		h.Write([]byte(f.path + "\x00" + hex.EncodeToString(sum[:]) + "\n"))
	}
	want := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if got, err := digestTree(root, ""); err != nil || got != want {
		t.Errorf("digestTree = %s, %v; want %s", got, err, want)
	}
}

func TestDir_Fetch(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "vms/vm1.yaml"), "kind: VirtualMachine\n")
	writeFile(t, filepath.Join(root, ".sourceignore"), "*.md\n")
	d := openDir(t, Options{URL: root})
	ctx := context.Background()

	s1, err := d.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s1.Revision != s1.Digest || !digestRE.MatchString(s1.Digest) {
		t.Errorf("Revision %q, Digest %q: want both sha256:<hex> and equal", s1.Revision, s1.Digest)
	}
	if s1.Dir != root {
		t.Errorf("Dir = %q, want %q", s1.Dir, root)
	}
	if s2, err := d.Fetch(ctx); err != nil || s2 != s1 {
		t.Errorf("unchanged Fetch = %+v, %v; want %+v", s2, err, s1)
	}

	// None of these is part of the tree.
	writeFile(t, filepath.Join(root, "vms/notes.md"), "ignored\n")
	writeFile(t, filepath.Join(root, "vms/.vm1.yaml.swp"), "swap\n")
	writeFile(t, filepath.Join(root, "vms/vm1.yaml~"), "backup\n")
	writeFile(t, filepath.Join(root, "4913"), "probe\n")
	writeFile(t, filepath.Join(root, ".git/config"), "[core]\n")
	if s2, err := d.Fetch(ctx); err != nil || s2.Digest != s1.Digest {
		t.Errorf("Digest changed to %s (%v) by ignored, temporary or hidden files", s2.Digest, err)
	}
	files, err := s1.Files()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{".sourceignore", "vms/vm1.yaml"}, files); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}

	writeFile(t, filepath.Join(root, "vms/vm1.yaml"), "kind: VirtualMachine\nv: 2\n")
	if s3, err := d.Fetch(ctx); err != nil || s3.Digest == s1.Digest || s3.Revision != s3.Digest {
		t.Errorf("after an edit: %+v, %v; want a new digest as revision", s3, err)
	}
}

// Symlinks are part of the tree: adding one, changing its target, and
// changing the file it leads to are each a new revision; one that leaves the
// tree counts by its text alone, and nothing behind it is read.
func TestDir_digestCoversSymlinks(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "vms/vm1.yaml"), "kind: VirtualMachine\n")
	writeFile(t, filepath.Join(root, "base/a.yaml"), "a\n")
	writeFile(t, filepath.Join(root, "base/b.yaml"), "b\n")
	d := openDir(t, Options{URL: root, Path: "vms"})
	ctx := context.Background()
	digest := func() string {
		t.Helper()
		s, err := d.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s.Digest
	}
	seen := map[string]string{}
	step := func(what string) {
		t.Helper()
		got := digest()
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: digest unchanged (same as after %s)", what, prev)
		}
		seen[got] = what
	}
	link := filepath.Join(root, "vms/shared.yaml")
	step("start")
	if err := os.Symlink("../base/a.yaml", link); err != nil {
		t.Fatal(err)
	}
	step("link added")
	writeFile(t, filepath.Join(root, "base/a.yaml"), "a2\n") // outside Path
	step("file behind the link edited")
	os.Remove(link)
	if err := os.Symlink("../base/b.yaml", link); err != nil {
		t.Fatal(err)
	}
	step("link retargeted")
	os.Remove(link)
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	step("link out of the tree")
	os.Remove(link)
	if err := os.Symlink("/etc/hostname", link); err != nil {
		t.Fatal(err)
	}
	step("link out of the tree retargeted")

	s, err := d.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	files, err := s.Files()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"shared.yaml", "vm1.yaml"}, files); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
}

func TestDir_Fetch_path(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "clusters/edge/vm.yaml"), "a\n")
	writeFile(t, filepath.Join(root, "clusters/edge/skip.yaml"), "b\n")
	writeFile(t, filepath.Join(root, ".sourceignore"), "clusters/edge/skip.yaml\n")
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	// A symlinked root is followed (deploy directories are swapped that way).
	link := filepath.Join(t.TempDir(), "current")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}

	s, err := openDir(t, Options{URL: link, Path: "clusters/edge"}).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(link, "clusters/edge"); s.Dir != want {
		t.Errorf("Dir = %q, want %q", s.Dir, want)
	}
	files, err := s.Files()
	if err != nil {
		t.Fatal(err)
	}
	// .sourceignore at the root, above Path, still applies.
	if diff := cmp.Diff([]string{"vm.yaml"}, files); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}

	for path, want := range map[string]string{
		"missing": `path "missing" does not exist`,
		"escape":  `outside the root`,
	} {
		_, err := openDir(t, Options{URL: root, Path: path}).Fetch(context.Background())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Path %q: err = %v, want %q", path, err, want)
		}
	}
}
