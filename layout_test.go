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

// layers says, for every package of the module (by the longest matching
// path), which of the module's packages it may import: the flow is one way,
// source → manifests → desired state → plan → runtime. Pure stages do no
// host I/O through drivers; the stages declare their interfaces and never
// import a driver; drivers never import a stage. A package missing here
// fails the test, so a new one has to say where it belongs.
var layers = map[string][]string{
	"":               {"internal/testenv"}, // the module's own tests (layout, support matrix, packaging)
	"cmd/nodevirt":   {"*"},
	"e2e":            {"*"},
	"internal/agent": {"internal", "manifests", "nodeconfig", "reconciler", "runtime", "source"},
	// The node description reads the host (sysfs, libvirt) beside the rendered
	// configuration: wiring, like the agent.
	"internal/nodedesc":   {"manifests", "nodeconfig", "reconciler", "runtime"},
	"internal/metrics":    {}, // takes plain values from the agent
	"internal/flagconfig": {},
	"internal/pathelem":   {},
	// Secrets kept outside git, and SOPS decryption of those in it.
	"internal/secrets": {"internal/pathelem"},
	"internal/pki":     {"runtime/atomicfile"},
	"internal/report":  {"reconciler"},
	// The API serves and drives an agent through the interface it declares;
	// it never imports the agent.
	"internal/api":    {"internal/nodedesc", "internal/report", "internal/status"},
	"internal/status": {},
	// The fleet's status branch: reports built from the status model.
	"internal/fleet": {"internal/status"},
	// Moving a local disk between nodes: trust from the fleet's reports.
	"internal/diskmove":    {"internal/fleet", "internal/pki"},
	"internal/srctree":     {},
	"internal/token":       {"runtime/atomicfile"},
	"internal/testenv":     {},
	"internal/webhook":     {},
	"internal/web":         {"internal/status", "internal/nodedesc"},
	"internal/web/webtest": {"internal/testenv"},
	"internal/staterepair": {"internal/pathelem", "reconciler", "runtime"},
	"source":               {"internal/srctree"},
	"manifests":            {"manifests", "internal/srctree"},
	"nodeconfig":           {"nodeconfig", "manifests", "internal/srctree"},
	"reconciler/placement": {},
	"reconciler/desired":   {"reconciler/desired", "reconciler/placement", "manifests", "internal/pathelem"},
	// The one plan vocabulary (steps, results, the apply loop) every
	// stage shares: it knows no stage.
	"reconciler/plan": {},
	// The stages: plan and apply over interfaces they declare; runtime/hv
	// is the hypervisor's vocabulary (domains, events, errors), not a driver.
	"reconciler": {"reconciler", "manifests", "nodeconfig", "internal/pathelem", "runtime/hv"},
	// Snapshots read the rendered VMs and the storage state beside their
	// own records; like every stage they copy through an interface.
	"reconciler/snapshot": {"reconciler/plan", "reconciler/desired", "reconciler/storage", "manifests", "runtime/hv"},
	"runtime":             {"runtime", "internal/pathelem", "nodeconfig/cmdline"},
	"runtime/statedb":     {"runtime/atomicfile"},
	"runtime/hv":          {},
	// The files that install nodevirt as a service (the systemd unit).
	"packaging": {},
}

// layerOf returns the rule of the longest path in layers that holds pkg.
func layerOf(pkg string) (string, []string, bool) {
	best, found := "", false
	for p := range layers {
		if (p == "" && pkg == "") || (p != "" && (pkg == p || strings.HasPrefix(pkg, p+"/"))) {
			if !found || len(p) > len(best) {
				best, found = p, true
			}
		}
	}
	return best, layers[best], found
}

func TestLayout_importsFlowOneWay(t *testing.T) {
	const mod = "github.com/nodevirt/nodevirt"
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], mod), "/")
		pkgs++
		layer, allowed, ok := layerOf(pkg)
		if !ok {
			t.Errorf("package %q has no layer: add it to layers in layout_test.go", pkg)
			continue
		}
		if len(allowed) == 1 && allowed[0] == "*" {
			continue
		}
		for _, imp := range fields[1:] {
			if imp != mod && !strings.HasPrefix(imp, mod+"/") {
				if imp == "libvirt.org/go/libvirt" && !strings.HasPrefix(pkg, "runtime/") {
					t.Errorf("%s imports %s: only runtime drivers talk to libvirt", pkg, imp)
				}
				continue
			}
			dep := strings.TrimPrefix(imp, mod+"/")
			fine := false
			for _, a := range allowed {
				if dep == a || strings.HasPrefix(dep, a+"/") {
					fine = true
				}
			}
			if !fine {
				t.Errorf("%s (layer %q) must not import %s", pkg, layer, dep)
			}
		}
	}
	if pkgs < 20 {
		t.Fatalf("go list found only %d packages", pkgs)
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
