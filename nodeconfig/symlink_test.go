package nodeconfig

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/internal/srctree"
	"github.com/nodevirt/nodevirt/manifests"
)

const localBu = `variant: fcos
version: 1.5.0
storage:
  files:
    - path: /etc/nodevirt-test.conf
      mode: 0644
      contents:
        local: files/app.conf
`

// renderTree writes files and symlinks into a source directory and renders it.
func renderTree(t *testing.T, files, links map[string]string) *HostConfig {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range links {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	set, err := manifests.Load(dir, manifests.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := Render(set, dir, NodeFor(set, "n1", "intel"))
	return h
}

func hostSecret(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(p, []byte("root:$6$SECRETHASH:19000::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A contents.local that is a symlink to a host file is refused by name; the
// host file is neither read nor installed, and the config counts as invalid
// (what it applied earlier is kept).
func TestRender_butaneLocalSymlinkToHostFileRefused(t *testing.T) {
	secret := hostSecret(t)
	for name, links := range map[string]map[string]string{
		"file link":      {"host/files/app.conf": secret},
		"directory link": {"host/files": filepath.Dir(secret)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, ok := links["host/files"]; ok {
				// The link replaces the directory: the .bu names files/app.conf
				// through it, so put the host file there.
				os.Rename(secret, filepath.Join(filepath.Dir(secret), "app.conf"))
				defer os.Rename(filepath.Join(filepath.Dir(secret), "app.conf"), secret)
			}
			h := renderTree(t, map[string]string{"host/app.bu": localBu}, links)
			for _, f := range h.Files {
				if strings.Contains(string(f.Contents), "SECRETHASH") {
					t.Fatalf("host file installed as %s", f.Path)
				}
			}
			var refused bool
			for _, d := range h.Diags {
				if strings.Contains(d.Error(), "SECRETHASH") {
					t.Errorf("diagnostic echoes the host file: %s", d.Error())
				}
				refused = refused || (errors.Is(d, ErrLocalFile) && errors.Is(d, srctree.ErrEscapes) &&
					d.File == "host/app.bu" && d.Path == "storage.files[0].contents.local")
			}
			if !refused || len(h.Invalid) != 1 {
				t.Fatalf("want the local file refused with its path and the config invalid, got %v (invalid %v)", h.Diags, h.Invalid)
			}
		})
	}
}

// Inside the tree the same link is followed.
func TestRender_butaneLocalSymlinkInsideTreeFollowed(t *testing.T) {
	h := renderTree(t, map[string]string{"host/app.bu": localBu, "shared/app.conf": "x=1\n"},
		map[string]string{"host/files/app.conf": "../../shared/app.conf"})
	if len(h.Diags.Errors()) != 0 || len(h.Files) != 1 || string(h.Files[0].Contents) != "x=1\n" {
		t.Fatalf("in-tree link must be followed: files %+v, diags %v", h.Files, h.Diags)
	}
}

// A Butane file symlinked out of the tree is not read.
func TestLoadButane_symlinkOutOfTreeRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(hostSecret(t), filepath.Join(dir, "x.bu")); err != nil {
		t.Fatal(err)
	}
	bus, diags := LoadButane(dir)
	if len(bus) != 0 || !errors.Is(diags.Err(), srctree.ErrEscapes) || diags[0].File != "x.bu" {
		t.Fatalf("LoadButane = %v, %v; want x.bu refused", bus, diags)
	}
}

// Butane expands aliases itself: a bomb is refused before it is handed over.
func TestRender_butaneAliasBombRefused(t *testing.T) {
	bu := "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /etc/a\n      contents:\n        inline: &s \"" +
		strings.Repeat("x", 1<<20) + "\"\n"
	for i := range 100 {
		bu += "    - path: /etc/b" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + "\n      contents:\n        inline: *s\n"
	}
	h := renderTree(t, map[string]string{"host/bomb.bu": bu}, nil)
	if !errors.Is(h.Diags.Err(), manifests.ErrDocumentTooLarge) || len(h.Files) != 0 {
		t.Fatalf("want the Butane file refused as too large, got %d files, %v", len(h.Files), h.Diags)
	}
}
