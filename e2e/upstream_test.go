package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/internal/secrets"
	"github.com/nodevirt/nodevirt/internal/testenv"
	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/nodeconfig"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/runtime/loop"
	"github.com/nodevirt/nodevirt/runtime/statedb"
	"github.com/nodevirt/nodevirt/runtime/volumes"
)

// This file has no build tag: TestUpstreamManifests runs with `go test ./...`
// (no root, no libvirt), so a regression in decoding, admission or rendering
// of a published manifest shows without the e2e set-up. The e2e variant,
// TestUpstreamManifests_libvirt, adds virt-xml-validate and a VALIDATE define
// on qemu:///system for every rendered domain.

// upstreamDir holds the published manifests (see its README.md for where
// each comes from).
const upstreamDir = "testdata/upstream"

// upstreamNode is the node the manifests are rendered for: the seeds' and
// CDI's local PersistentVolumes are pinned to node01.
const upstreamNode = "node01"

// upstreamWant is what a file must come to when the issue on real-world
// manifests is done. A file that is not in upstreamExpect must load without
// an error, and every VirtualMachine and VirtualMachineInstance in it must
// render.
type upstreamWant struct {
	// refused are the errors the file must get, and the only ones: each
	// names the field and says why.
	refused []upstreamDiag
	// warns are warnings the file must get beside whatever else it gets.
	warns []upstreamDiag
	// domainHas are strings every rendered domain's XML must hold: the
	// fields the file is about reach libvirt.
	domainHas []string
	// artifactHas are strings some file of the rendered domain's artifacts
	// (its cloud-init and ConfigMap/Secret images) must hold: the data
	// reaches the guest.
	artifactHas []string
	// pending says which part of the work, not merged yet, the file waits
	// for: while it does not come out as wanted the test logs it and goes
	// on; once it does, the log says so and the mark should be dropped.
	pending string
}

// upstreamDiag matches a diagnostic: path is a substring of its field path,
// reason a substring of its message, and line, when set, its line.
type upstreamDiag struct {
	path, reason string
	line         int
}

func (u upstreamDiag) matches(d diag.Diagnostic) bool {
	return strings.Contains(d.Path, u.path) && strings.Contains(d.Message, u.reason) && (u.line == 0 || u.line == d.Line)
}

func (u upstreamDiag) String() string {
	s := fmt.Sprintf("%s: …%s…", u.path, u.reason)
	if u.line > 0 {
		s += fmt.Sprintf(" at line %d", u.line)
	}
	return s
}

// upstreamGroup is what one Load reads: a whole directory (file == "") or
// one file of it alone. Companion objects (a claim beside its VM) share a
// directory; a lone file stands for a user who applies just that file.
type upstreamGroup struct {
	label string // key prefix: project (and sub-directory)
	dir   string
	file  string
}

// upstreamGroups lists the groups: every *.yaml or *.bu file directly under
// a project of upstreamDir alone, every sub-directory as a whole; and the
// seed snippets manifests' tests keep (one repository). KubeVirt's examples
// in the shared corpus are corpusGroup.
func upstreamGroups(t *testing.T) []upstreamGroup {
	t.Helper()
	projects, err := os.ReadDir(upstreamDir)
	if err != nil {
		t.Fatal(err)
	}
	var groups []upstreamGroup
	for _, p := range projects {
		if !p.IsDir() {
			continue
		}
		dir := filepath.Join(upstreamDir, p.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			switch ext := filepath.Ext(e.Name()); {
			case e.IsDir():
				groups = append(groups, upstreamGroup{label: p.Name() + "/" + e.Name(), dir: filepath.Join(dir, e.Name())})
			case ext == ".yaml" || ext == ".bu":
				groups = append(groups, upstreamGroup{label: p.Name(), dir: dir, file: e.Name()})
			}
		}
	}
	groups = append(groups,
		upstreamGroup{label: "seed-8.14", dir: filepath.Join("..", "manifests", "testdata", "seed")},
		upstreamGroup{label: "manifests-testdata", dir: filepath.Join("..", "manifests", "testdata"), file: "host-kinds.yaml"},
		upstreamGroup{label: "manifests-testdata", dir: filepath.Join("..", "manifests", "testdata"), file: "seed-examples.yaml"},
	)
	return groups
}

// corpusGroup is KubeVirt's examples in the shared corpus, read in place as
// one repository (as TestCorpus does), or ends the test through
// testenv.Missing when the shared tree is not there.
func corpusGroup(t *testing.T) []upstreamGroup {
	return []upstreamGroup{{label: "kubevirt-examples", dir: testenv.KubeVirtExamples(t)}}
}

// upstreamFile is the outcome of one file of a group.
type upstreamFile struct {
	key     string // label/file, the upstreamExpect key
	kinds   []string
	vms     []*manifests.Object // VirtualMachines and VirtualMachineInstances
	errs    diag.List
	warns   diag.List
	domains map[string]*desired.VM // by object, the rendered ones
	// held says why a VM without an error was not rendered here
	// (unschedulable, placed on another node), by object.
	held map[string]string
}

// upstreamContext is the host layout the manifests render for: scratch
// directories, host files under a scratch root, the directories KubeVirt's
// and the user guide's hostDisk examples use allowed as an operator would
// allow them with --allowed-host-dirs.
func upstreamContext(t *testing.T, domainType, arch string) domain.Context {
	state := t.TempDir()
	return domain.Context{
		Type:      domainType,
		Arch:      arch,
		DiskDir:   filepath.Join(state, "disks"),
		VolumeDir: filepath.Join(state, "volumes"),
		Root:      filepath.Join(state, "root"),
		HostDirs:  []string{"/var/data", "/data"},
		// A two-node host with the daemon Debian 12 ships, so guest NUMA
		// and virtiofs examples render the same on any machine.
		HostNUMA:  []domain.NUMANode{{ID: 0, CPUs: []uint{0, 1, 2, 3}}, {ID: 1, CPUs: []uint{4, 5, 6, 7}}},
		Virtiofsd: "/usr/lib/qemu/virtiofsd",
	}
}

// runUpstream loads one group and renders it as the agent does (host
// configuration, storage, then the VMs) and splits the outcome by file.
func runUpstream(t *testing.T, g upstreamGroup, ctx domain.Context) []upstreamFile {
	t.Helper()
	opt := manifests.Options{}
	if g.file != "" {
		opt.Exclude = func(rel string, d fs.DirEntry) bool { return d.IsDir() || rel != g.file }
	}
	set, err := manifests.Load(g.dir, opt)
	if err != nil {
		t.Fatalf("%s: %v", g.label, err)
	}
	node := nodeconfig.NodeFor(set, upstreamNode, "intel")
	var hostDiags diag.List
	if strings.HasSuffix(g.file, ".bu") {
		data, err := os.ReadFile(filepath.Join(g.dir, g.file))
		if err != nil {
			t.Fatal(err)
		}
		hostDiags = nodeconfig.RenderFrom(set, g.dir, []nodeconfig.ButaneFile{{File: g.file, Data: data}}, node).Diags
	} else if g.file != "" {
		hostDiags = nodeconfig.RenderFrom(set, g.dir, nil, node).Diags
	} else {
		_, hostDiags = nodeconfig.Render(set, g.dir, node)
	}
	ss := storage.Build(set, storage.Options{Node: upstreamNode})
	st := desired.Build(set, "upstream", desired.Options{
		Node:    upstreamNode,
		Context: ctx,
		// The node runs the CPU manager (--cpu-manager), so dedicated-CPU
		// examples get their CPUs from this pool.
		NodeLabels: map[string]string{"cpumanager": "true"},
		Resources:  desired.Resources{CPUPool: []uint{0, 1, 2, 3, 4, 5, 6, 7}, Claims: upstreamClaims(t, ctx, ss)},
	})

	// The stages report the manifests' own diagnostics more than once.
	seen := map[string]bool{}
	var all diag.List
	for _, l := range []diag.List{st.Diags, ss.Diags, hostDiags} {
		for _, d := range l {
			if k := string(d.Severity) + d.Error(); !seen[k] {
				seen[k] = true
				all = append(all, d)
			}
		}
	}

	var files []string
	if g.file != "" {
		files = []string{g.file}
	} else {
		err := filepath.WalkDir(g.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if ext := filepath.Ext(p); !d.IsDir() && (ext == ".yaml" || ext == ".bu") {
				rel, _ := filepath.Rel(g.dir, p)
				files = append(files, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	byFile := map[string]*upstreamFile{}
	var out []*upstreamFile
	for _, f := range files {
		uf := &upstreamFile{key: g.label + "/" + f, domains: map[string]*desired.VM{}, held: map[string]string{}}
		byFile[f] = uf
		out = append(out, uf)
		if strings.HasSuffix(f, ".bu") {
			uf.kinds = append(uf.kinds, "Butane")
		}
	}
	objectFile := map[string]string{}
	for _, o := range set.Objects {
		uf := byFile[o.File]
		if uf == nil {
			t.Fatalf("%s: object %s from %q, a file the group does not list", g.label, o.Ref, o.File)
		}
		objectFile[o.Ref.String()] = o.File
		uf.kinds = append(uf.kinds, o.Ref.Kind)
		if o.Ref.Kind == "VirtualMachine" || o.Ref.Kind == "VirtualMachineInstance" {
			uf.vms = append(uf.vms, o)
			name := domain.DomainName(o.Ref.Namespace, o.Ref.Name)
			if vm := st.Lookup(name); vm != nil {
				uf.domains[o.Ref.String()] = vm
			}
			if why := st.Unschedulable[name] + st.OtherNode[name]; why != "" {
				uf.held[o.Ref.String()] = why
			}
		}
	}
	for _, d := range all {
		f := d.File
		if f == "" {
			f = objectFile[d.Object]
		}
		uf := byFile[f]
		if uf == nil {
			// Nothing in the group to pin it on: it belongs to every file.
			for _, u := range out {
				u.add(d)
			}
			continue
		}
		uf.add(d)
	}
	result := make([]upstreamFile, len(out))
	for i, u := range out {
		result[i] = *u
	}
	return result
}

func (u *upstreamFile) add(d diag.Diagnostic) {
	if d.Severity == diag.Error {
		u.errs = append(u.errs, d)
	} else {
		u.warns = append(u.warns, d)
	}
}

// artifactsHold reports whether a file of one of vm's artifacts holds s.
func artifactsHold(vm *desired.VM, s string) bool {
	for _, a := range vm.Artifacts {
		// A Secret's values travel apart from the other files, never in
		// JSON; they reach the same image.
		for _, files := range []map[string][]byte{a.Files, a.SecretFiles} {
			for _, data := range files {
				if strings.Contains(string(data), s) {
					return true
				}
			}
		}
	}
	return false
}

// upstreamClaims plans storage as the agent's first run on a fresh state
// directory would, and says where each claim's disk goes (a file, or the
// block device of the PersistentVolume it binds), so disks render as the
// agent renders them. The plan's own diagnostics are left to apply time, as
// in `nodevirt validate`. Loop devices are read from a scratch /sys and
// /dev: what other tests attached on this host must not change the outcome.
func upstreamClaims(t *testing.T, ctx domain.Context, ss *storage.State) map[string]domain.ClaimDisk {
	t.Helper()
	state := t.TempDir()
	db, err := statedb.Open(filepath.Join(state, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	loops := upstreamLoops{&loop.Loops{Sys: filepath.Join(ctx.Root, "sys"), Dev: filepath.Join(ctx.Root, "dev")}}
	m, err := storage.NewManager(storage.Config{Root: ctx.Root, StateDir: state}, nil, loops, volumes.Files{},
		secrets.Dir{Dir: filepath.Join(state, "secrets")}, db)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	plan, err := m.Plan(context.Background(), ss)
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]domain.ClaimDisk{}
	for key, c := range plan.Claims {
		if c.Path != "" {
			claims[key] = domain.ClaimDisk{Path: c.Path, Block: c.Block}
		}
	}
	return claims
}

// upstreamLoops reads loop devices for the plan; planning attaches none,
// and this test never may.
type upstreamLoops struct{ l *loop.Loops }

func (u upstreamLoops) AttachAt(dev, _ string) error {
	return fmt.Errorf("attach %s: the upstream manifests test attaches no loop device", dev)
}
func (u upstreamLoops) Backing(dev string) (string, bool, error) { return u.l.Backing(dev) }
func (u upstreamLoops) Find(backing string) ([]string, error)    { return u.l.Find(backing) }
func (u upstreamLoops) Detach(dev string) error {
	return fmt.Errorf("detach %s: the upstream manifests test detaches no loop device", dev)
}

// upstreamRow is one line of the outcome table.
type upstreamRow struct{ key, kinds, result, detail string }

// judge compares one file's outcome with what upstreamExpect wants; define,
// when set, validates and defines each rendered domain. It returns the
// table row and the problems (empty when the file is as wanted).
func (u upstreamFile) judge(want upstreamWant, define func(name, xml string) error) (upstreamRow, []string) {
	row := upstreamRow{key: u.key, kinds: strings.Join(u.kinds, ",")}
	var problems []string
	if len(u.kinds) == 0 && len(want.refused) == 0 {
		problems = append(problems, "no object loaded")
	}
	for _, d := range u.errs {
		if !slices.ContainsFunc(want.refused, func(w upstreamDiag) bool { return w.matches(d) }) {
			problems = append(problems, "unexpected error: "+d.Error())
		}
	}
	for _, w := range want.refused {
		if !slices.ContainsFunc(u.errs, w.matches) {
			problems = append(problems, "not refused as wanted: "+w.String())
		}
	}
	for _, w := range want.warns {
		if !slices.ContainsFunc(u.warns, w.matches) {
			problems = append(problems, "no warning "+w.String())
		}
	}
	rendered := 0
	for _, o := range u.vms {
		vm := u.domains[o.Ref.String()]
		if vm == nil {
			if len(want.refused) == 0 {
				why := u.held[o.Ref.String()]
				if why == "" {
					why = "no diagnostic says why"
				}
				problems = append(problems, o.Ref.String()+" was not rendered: "+why)
			}
			continue
		}
		rendered++
		for _, want := range want.domainHas {
			if !strings.Contains(vm.XML, want) {
				problems = append(problems, fmt.Sprintf("%s: the domain has no %q", o.Ref, want))
			}
		}
		for _, want := range want.artifactHas {
			if !artifactsHold(vm, want) {
				problems = append(problems, fmt.Sprintf("%s: no artifact file holds %q", o.Ref, want))
			}
		}
		if define != nil {
			if err := define(strings.ReplaceAll(strings.TrimSuffix(u.key, filepath.Ext(u.key)), "/", "-")+"-"+o.Ref.Name, vm.XML); err != nil {
				problems = append(problems, o.Ref.String()+": "+err.Error())
			}
		}
	}
	switch {
	case len(problems) > 0:
		row.result = "FAILS"
		row.detail = strings.Join(problems, "; ")
	case len(want.refused) > 0:
		row.result = "refused"
		var why []string
		for _, d := range u.errs {
			why = append(why, d.Path+": "+d.Message)
		}
		row.detail = strings.Join(why, "; ")
	case len(u.vms) > 0:
		row.result = "rendered"
		row.detail = fmt.Sprintf("%d domain(s)", rendered)
		if define != nil {
			row.detail += ", passed virt-xml-validate and a VALIDATE define"
		}
	default:
		row.result = "loaded"
	}
	if len(u.warns) > 0 && row.result != "FAILS" {
		var ws []string
		for _, d := range u.warns {
			ws = append(ws, d.Path+": "+d.Message)
		}
		row.detail = strings.TrimPrefix(row.detail+"; warnings: "+strings.Join(ws, "; "), "; ")
	}
	return row, problems
}

// checkUpstream runs every group, judges every file and logs the table.
// Files marked pending are logged, not failed; the log says which of them
// now come out as wanted.
// It returns the keys of the files it saw.
func checkUpstream(t *testing.T, groups []upstreamGroup, ctx domain.Context, define func(name, xml string) error, atLeast int) map[string]bool {
	t.Helper()
	var rows []upstreamRow
	keys := map[string]bool{}
	var pendingNow, pendingStill []string
	for _, g := range groups {
		for _, f := range runUpstream(t, g, ctx) {
			keys[f.key] = true
			want := upstreamExpect[f.key]
			row, problems := f.judge(want, define)
			switch {
			case want.pending != "" && len(problems) == 0:
				pendingNow = append(pendingNow, fmt.Sprintf("%s (pending: %s)", f.key, want.pending))
				row.result = "PASSES, pending mark to drop (" + want.pending + ")"
			case want.pending != "":
				pendingStill = append(pendingStill, fmt.Sprintf("%s (pending: %s): %s", f.key, want.pending, strings.Join(problems, "; ")))
				row.result = "pending: " + want.pending
			default:
				for _, p := range problems {
					t.Errorf("%s: %s", f.key, p)
				}
			}
			rows = append(rows, row)
		}
	}
	if len(rows) < atLeast {
		t.Errorf("%d files, want at least %d", len(rows), atLeast)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].key < rows[j].key })
	var b strings.Builder
	b.WriteString("\n| file | kinds | result | detail |\n| --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.key, r.kinds, r.result, strings.ReplaceAll(r.detail, "|", `\|`))
	}
	t.Log(b.String())
	sort.Strings(pendingNow)
	sort.Strings(pendingStill)
	t.Logf("pending entries that now pass (drop their mark): %d\n%s", len(pendingNow), strings.Join(pendingNow, "\n"))
	t.Logf("pending entries that still fail: %d\n%s", len(pendingStill), strings.Join(pendingStill, "\n"))
	return keys
}

// checkExpectKeys fails for an upstreamExpect entry no file has: a renamed
// or removed file must take its entry along.
func checkExpectKeys(t *testing.T, keys map[string]bool) {
	t.Helper()
	for k := range upstreamExpect {
		if !keys[k] && !strings.HasPrefix(k, "kubevirt-examples/") {
			t.Errorf("upstreamExpect names %s, a file no group holds", k)
		}
	}
}

// TestUpstreamManifests renders every published manifest of upstreamDir (and
// the seed snippets manifests keeps) as the agent does, without libvirt, and
// holds each file to upstreamExpect.
func TestUpstreamManifests(t *testing.T) {
	ctx := upstreamContext(t, "kvm", "x86_64")
	checkExpectKeys(t, checkUpstream(t, upstreamGroups(t), ctx, nil, 80))
	t.Run("kubevirt-examples", func(t *testing.T) {
		checkUpstream(t, corpusGroup(t), ctx, nil, 20)
	})
}
