package manifests

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/internal/srctree"
)

// A manifest symlinked to a host file is refused by name and never read: its
// content appears in no diagnostic, and the set is Incomplete so pruning
// waits, as for a file that does not parse.
func TestLoad_symlinkOutOfTheTreeRefused(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secret, []byte("root:$6$SECRETHASH:19000::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, map[string]string{"vms/ok.yaml": configMap("ok")})
	for link, target := range map[string]string{
		"vms/vm.yaml":  secret,
		"vms/rel.yaml": "../../" + filepath.Base(filepath.Dir(secret)) + "/shadow",
		"vms/outside":  filepath.Dir(secret), // a directory, any name
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Incomplete {
		t.Error("Incomplete = false; a refused link may hold objects, pruning must wait")
	}
	got := map[string]bool{}
	for _, d := range s.Diags {
		if strings.Contains(d.Error(), "SECRETHASH") {
			t.Errorf("diagnostic echoes the host file: %s", d.Error())
		}
		if errors.Is(d, srctree.ErrEscapes) {
			got[d.File] = true
		}
	}
	for _, f := range []string{"vms/vm.yaml", "vms/rel.yaml", "vms/outside"} {
		if !got[f] {
			t.Errorf("no refusal naming %s in %v", f, s.Diags)
		}
	}
	if len(s.Objects) != 1 {
		t.Errorf("objects = %d, want the one regular file's", len(s.Objects))
	}
}

// Inside the tree a symlinked manifest is read like the file; with Root set,
// it may point anywhere in the repository, not only below the directory.
func TestLoad_symlinkInsideTheTreeFollowed(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"base/shared.yaml":       configMap("shared"),
		"clusters/edge/own.yaml": configMap("own"),
	})
	if err := os.Symlink("../../base/shared.yaml", filepath.Join(root, "clusters/edge/shared.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../edge", filepath.Join(root, "clusters/edge/loop")); err != nil {
		t.Fatal(err)
	}
	s, err := Load(filepath.Join(root, "clusters/edge"), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Objects) != 2 {
		t.Fatalf("objects = %d, want own and shared: %v", len(s.Objects), s.Diags)
	}
	errs := s.Diags.Errors()
	if len(errs) != 1 || !errors.Is(errs[0], srctree.ErrDirLink) || errs[0].File != "loop" || !s.Incomplete {
		t.Fatalf("a directory symlink must be refused by name: %v", s.Diags)
	}
	// Without Root the directory is the tree and the link leaves it.
	s, err = Load(filepath.Join(root, "clusters/edge"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(s.Diags.Err(), srctree.ErrEscapes) {
		t.Fatalf("link out of the directory must be refused without Root: %v", s.Diags)
	}
}
