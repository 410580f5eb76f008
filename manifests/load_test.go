package manifests

import (
	"errors"
	"github.com/nodevirt/nodevirt/internal/testenv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// corpusRejected lists the upstream examples KubeVirt itself rejects, with
// the rule. vm-windows-clarge-windows.yaml inherits memory.guest: 128Mi from
// the generator's base VM and references clarge, which sets memory.guest:
// KubeVirt's instancetype admission answers "VM field(s)
// spec.template.spec.domain.memory.guest conflicts with selected instance
// type" (kubevirt pkg/instancetype/apply/memory.go, admitter_test.go).
var corpusRejected = map[string]error{
	"vm-windows-clarge-windows.yaml": ErrInstancetypeConflict,
}

// corpusNeedsCompanions lists examples that reference objects in other
// files of the corpus, so they cannot load alone.
var corpusNeedsCompanions = map[string]bool{
	"vm-windows-clarge-windows.yaml": true,
}

// Every upstream example must load without a single diagnostic, except the
// ones KubeVirt rejects too (corpusRejected), which fail with that rule only.
func TestLoad_corpus(t *testing.T) {
	entries, err := os.ReadDir(testenv.KubeVirtExamples(t))
	if err != nil {
		t.Fatalf("corpus missing (it is part of the project's shared tree): %v", err)
	}
	var yamlFiles []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") {
			yamlFiles = append(yamlFiles, e.Name())
		}
	}
	if len(yamlFiles) < 20 {
		t.Fatalf("corpus has %d YAML files, want at least 20", len(yamlFiles))
	}
	for _, name := range yamlFiles {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(testenv.KubeVirtExamples(t), name))
			if err != nil {
				t.Fatal(err)
			}
			s := Parse(name, data, Options{})
			if corpusNeedsCompanions[name] {
				for _, d := range s.Diags {
					if !errors.Is(d, ErrInstancetypeNotFound) && !errors.Is(d, ErrPreferenceNotFound) {
						t.Errorf("%v", d)
					}
				}
				return
			}
			for _, d := range s.Diags {
				t.Errorf("%v", d)
			}
			if s.Incomplete || len(s.Objects) == 0 {
				t.Errorf("Incomplete=%v, %d objects", s.Incomplete, len(s.Objects))
			}
			for _, o := range s.Objects {
				if !o.Valid || o.Value == nil {
					t.Errorf("%s: Valid=%v, Value=%T", o.Ref, o.Valid, o.Value)
				}
			}
		})
	}

	s, err := Load(testenv.KubeVirtExamples(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Files != len(yamlFiles) || s.Incomplete {
		t.Errorf("Load: Files=%d (want %d), Incomplete=%v", s.Files, len(yamlFiles), s.Incomplete)
	}
	rejected := map[string]bool{}
	for _, d := range s.Diags {
		want, ok := corpusRejected[d.File]
		if !ok || !errors.Is(d, want) {
			t.Errorf("unexpected diagnostic: %v", d)
			continue
		}
		rejected[d.File] = true
	}
	for file := range corpusRejected {
		if !rejected[file] {
			t.Errorf("%s: loads, but KubeVirt rejects it with %v", file, corpusRejected[file])
		}
	}
	if got := len(s.OfKind("VirtualMachine")); got != 6 {
		t.Errorf("OfKind(VirtualMachine) = %d objects, want 6", got)
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func configMap(name string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n"
}

func TestLoad_walk(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"b.yaml":                   configMap("b1") + "---\n" + configMap("b2"),
		"a/z.yml":                  configMap("az"),
		"a.yaml":                   configMap("a"),
		"host/fcos.bu":             "variant: fcos\nversion: 1.5.0\n",
		"README.md":                "not yaml",
		".git/config.yaml":         "kind: nonsense",
		".github/workflows/ci.yml": "on: push",
		".pre-commit-config.yaml":  "repos: []",
		"deep/er/c.yaml":           configMap("c"),
	})
	s, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	type fileRef struct{ File, Ref string }
	var got []fileRef
	for _, o := range s.Objects {
		got = append(got, fileRef{o.File, o.Ref.String()})
	}
	want := []fileRef{
		{"a.yaml", "ConfigMap default/a"},
		{"a/z.yml", "ConfigMap default/az"},
		{"b.yaml", "ConfigMap default/b1"},
		{"b.yaml", "ConfigMap default/b2"},
		{"deep/er/c.yaml", "ConfigMap default/c"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	if s.Files != 4 || len(s.Diags) != 0 || s.Incomplete || s.Root != dir {
		t.Errorf("Files=%d Diags=%v Incomplete=%v Root=%q", s.Files, s.Diags, s.Incomplete, s.Root)
	}
}

// Diagnostics from several files come back together and sorted, and a broken
// file does not hide the objects of the others (SPEC M-3).
func TestLoad_partial(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"good.yaml":   configMap("good"),
		"broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n",
		"dup.yaml":    configMap("good"),
	})
	s, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Incomplete {
		t.Error("Incomplete = false with a syntax error")
	}
	var files []string
	for _, d := range s.Diags {
		files = append(files, d.File)
	}
	if diff := cmp.Diff([]string{"broken.yaml", "good.yaml"}, files); diff != "" {
		t.Errorf("diagnostic files (-want +got):\n%s", diff)
	}
	if !errors.Is(s.Diags[1], ErrDuplicateObject) {
		t.Errorf("second diagnostic = %v, want the duplicate across files", s.Diags[1])
	}
}

func TestLoad_missingDir(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want ErrNotExist", err)
	}
}
