package source

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkGitFetch_unchanged measures a poll of a ref that did not move:
// gogit's ls-remote short-circuit, with no clone and no rehash.
func BenchmarkGitFetch_unchanged(b *testing.B) {
	r := newGitRepo(b)
	files := map[string]string{}
	for i := range 50 {
		files[fmt.Sprintf("vms/vm%02d.yaml", i)] = "kind: VirtualMachine\n"
	}
	r.commit(files)
	g := openGit(b, Options{URL: r.bare, WorkDir: b.TempDir()})
	ctx := context.Background()
	first, err := g.Fetch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := g.Fetch(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if s != first {
			b.Fatalf("snapshot changed: %+v", s)
		}
	}
	if g.clones != 1 {
		b.Fatalf("clones = %d, want 1: the short-circuit did not hold", g.clones)
	}
}

// BenchmarkDirDigest measures a Dir Fetch (walk + hash) of 1,000 small
// manifests in 10 directories.
func BenchmarkDirDigest(b *testing.B) {
	root := b.TempDir()
	for i := range 1000 {
		writeFile(b, filepath.Join(root, fmt.Sprintf("d%d/vm%04d.yaml", i%10, i)),
			fmt.Sprintf("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: vm%04d\n", i))
	}
	d := openDir(b, Options{URL: root})
	ctx := context.Background()
	for b.Loop() {
		if _, err := d.Fetch(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
