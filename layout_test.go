package nodevirt_test

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type goPackage struct {
	ImportPath string
	Dir        string
	Deps       []string
	GoFiles    []string
}

func listPackages(t *testing.T) []goPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps=false", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []goPackage
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// Every package says once what it owns (Tailscale's pkgdoc_test).
func TestLayout_onePackageDoc(t *testing.T) {
	for _, p := range listPackages(t) {
		docs := 0
		for _, f := range p.GoFiles {
			file, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if file.Doc != nil {
				docs++
			}
		}
		if docs != 1 && len(p.GoFiles) > 0 {
			t.Errorf("%s has %d package doc comments, want exactly 1", p.ImportPath, docs)
		}
	}
}

// The flow is one way: source → manifests → desired → plan → runtime.
// Pure stages do no host I/O through drivers; the reconciler declares its
// interfaces and never imports a driver; drivers never import the reconciler.
func TestLayout_importsFlowOneWay(t *testing.T) {
	const mod = "github.com/nodevirt/nodevirt/"
	rules := map[string][]string{
		"manifests":                 {mod + "reconciler", mod + "runtime", mod + "source", "libvirt.org/go/libvirt"},
		"reconciler/desired":        {mod + "runtime/libvirt", mod + "runtime/disks", mod + "runtime/statedb", mod + "source", "libvirt.org/go/libvirt", "os/exec"},
		"reconciler/desired/domain": {mod + "runtime", mod + "source", "libvirt.org/go/libvirt", "os/exec"},
		"reconciler/plan":           {mod + "runtime/libvirt", mod + "runtime/disks", mod + "runtime/statedb", mod + "source", "libvirt.org/go/libvirt", "os/exec"},
		"reconciler":                {mod + "runtime/libvirt", mod + "runtime/disks", mod + "runtime/statedb", mod + "source", "libvirt.org/go/libvirt", "github.com/fluxcd"},
		"runtime/libvirt":           {mod + "reconciler", mod + "manifests", mod + "source"},
		"runtime/disks":             {mod + "reconciler", mod + "manifests", mod + "source"},
		"runtime/statedb":           {mod + "reconciler", mod + "manifests", mod + "source"},
		"runtime/hostfacts":         {mod + "reconciler", mod + "manifests", mod + "source"},
		"source":                    {mod + "reconciler", mod + "manifests", mod + "runtime"},
	}
	for pkg, banned := range rules {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps ./%s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == mod+pkg {
				continue
			}
			for _, b := range banned {
				if dep == b || strings.HasPrefix(dep, b+"/") {
					t.Errorf("%s must not depend on %s (via %s)", pkg, b, dep)
				}
			}
		}
	}
}

func TestLayout_readmeStartsWithTheTwoCommands(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	head := string(b)
	if len(head) > 400 {
		head = head[:400]
	}
	if !strings.Contains(head, "make demo") || !strings.Contains(head, "make test") {
		t.Fatalf("README.md must start with `make demo` and `make test`:\n%s", head)
	}
}
