package srctree

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func tree(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "tree"), filepath.Join(base, "secret")
	for _, d := range []string{root + "/vms", root + "/.git", outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, s := range map[string]string{
		root + "/vms/a.yaml":  "kind: A\n",
		root + "/.git/config": "token\n",
		outside + "/shadow":   "root:HASH\n",
	} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"vms/abs.yaml":    outside + "/shadow",
		"vms/up.yaml":     "../../secret/shadow",
		"vms/in.yaml":     "a.yaml",
		"vms/chain.yaml":  "in.yaml",
		"vms/git.yaml":    "../.git/config",
		"vms/dir":         ".",
		"out":             "../secret",
		"vms/via.yaml":    "../out/shadow",
		"vms/loop.yaml":   "loop.yaml",
		"vms/climb.yaml":  "dir/../../../secret/shadow",
		"vms/back.yaml":   "../vms/a.yaml",
		"vms/absin.yaml":  root + "/vms/a.yaml",
		"vms/dangle.yaml": "nothere.yaml",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root, outside
}

func TestReadFile_limitAtEverySize(t *testing.T) {
	root := t.TempDir()
	// Sizes around the read buffer's own steps, and past the stat-sized
	// buffer's slack, so neither the limit nor the content depends on them.
	for _, tc := range []struct {
		size, limit int
		refused     bool
	}{
		{0, 0, false},
		{1, 1, false},
		{511, 512, false},
		{512, 512, false},
		{513, 512, true},
		{100_000, 0, false},
		{100_000, 100_000, false},
		{100_001, 100_000, true},
	} {
		data := make([]byte, tc.size)
		for i := range data {
			data[i] = byte('a' + i%26)
		}
		if err := os.WriteFile(filepath.Join(root, "f.yaml"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := ReadFile(root, "f.yaml", int64(tc.limit))
		switch {
		case tc.refused && (err == nil || !strings.Contains(err.Error(), "larger than")):
			t.Errorf("size %d, limit %d: ReadFile = %d bytes, %v; want it refused as too large", tc.size, tc.limit, len(b), err)
		case !tc.refused && (err != nil || string(b) != string(data)):
			t.Errorf("size %d, limit %d: ReadFile = %d bytes, %v; want the whole file", tc.size, tc.limit, len(b), err)
		}
	}
}

func TestReadFile_followsLinksInsideTheTree(t *testing.T) {
	root, _ := tree(t)
	for _, rel := range []string{"vms/a.yaml", "vms/in.yaml", "vms/chain.yaml", "vms/back.yaml"} {
		b, err := ReadFile(root, rel, 0)
		if err != nil || string(b) != "kind: A\n" {
			t.Errorf("ReadFile(%s) = %q, %v; want the in-tree file", rel, b, err)
		}
	}
}

func TestReadFile_refusesLinksThatLeave(t *testing.T) {
	root, _ := tree(t)
	for rel, want := range map[string]struct {
		link string
		err  error
	}{
		"vms/abs.yaml":   {"vms/abs.yaml", ErrEscapes},
		"vms/up.yaml":    {"vms/up.yaml", ErrEscapes},
		"vms/via.yaml":   {"vms/via.yaml", ErrEscapes},
		"out/shadow":     {"out", ErrEscapes},
		"vms/climb.yaml": {"vms/climb.yaml", ErrEscapes},
		"vms/git.yaml":   {"vms/git.yaml", ErrHidden},
		"vms/loop.yaml":  {"vms/loop.yaml", ErrLoop},
		"vms/dir":        {"vms/dir", ErrDirLink},
		// Absolute links are refused even into the tree: a checkout moves.
		"vms/absin.yaml": {"vms/absin.yaml", ErrEscapes},
	} {
		b, err := ReadFile(root, rel, 0)
		var le *LinkError
		if !errors.As(err, &le) || le.Link != want.link || !errors.Is(err, want.err) {
			t.Errorf("ReadFile(%s) = %q, %v; want a LinkError naming %s: %v", rel, b, err, want.link, want.err)
			continue
		}
		if strings.Contains(err.Error(), "HASH") || strings.Contains(err.Error(), "token") {
			t.Errorf("error echoes the target's content: %v", err)
		}
	}
	if _, err := ReadFile(root, "vms/dangle.yaml", 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dangling link: %v, want not exist", err)
	}
	if _, err := ReadFile(root, "../secret/shadow", 0); !errors.Is(err, ErrEscapes) {
		t.Errorf("path with ..: %v, want ErrEscapes", err)
	}
}

func TestReadFile_limit(t *testing.T) {
	root, _ := tree(t)
	if _, err := ReadFile(root, "vms/a.yaml", 4); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("ReadFile over the limit: %v", err)
	}
}
