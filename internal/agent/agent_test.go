package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/host"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/snapshot"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/disks"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
	"github.com/nodevirt/nodevirt/runtime/statedb"
	"github.com/nodevirt/nodevirt/source"
)

const vmYAML = `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: web, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices: {}
`

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@nodevirt.invalid", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// An agent restarted while its git remote is unreachable converges on the
// last revision it fetched, instead of doing nothing.
func TestAgent_offlineRestartUsesLastGoodRevision(t *testing.T) {
	dir := t.TempDir()
	bare, work, state := filepath.Join(dir, "repo.git"), filepath.Join(dir, "work"), filepath.Join(dir, "state")
	git(t, dir, "init", "-q", "--bare", "-b", "main", bare)
	git(t, dir, "init", "-q", "-b", "main", work)
	if err := os.WriteFile(filepath.Join(work, "web.yaml"), []byte(vmYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, work, "add", "-A")
	git(t, work, "commit", "-q", "-m", "web")
	git(t, work, "push", "-q", bare, "main")

	node := filepath.Join(dir, "node.xml")
	if err := os.WriteFile(node, []byte(`<node><cpu><mhz>2000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads></cpu><memory>4194304</memory></node>`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, err := virt.Open(ctx, "test://"+node)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	d, err := disks.New(state, filepath.Join(state, "images"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := statedb.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := agent.Config{Desired: desired.Options{Node: "n1", Context: domain.Context{Type: "kvm", Arch: "x86_64",
		DiskDir: filepath.Join(state, "disks"), VolumeDir: filepath.Join(state, "volumes")}}}
	newAgent := func() *agent.Agent {
		src, err := source.Open(source.Options{URL: "file://" + bare, WorkDir: filepath.Join(state, "source")})
		if err != nil {
			t.Fatal(err)
		}
		return agent.New(cfg, src, vm.New(vm.Config{SelfHeal: true, DiskDir: filepath.Join(state, "disks")}, h, d, db), h)
	}

	if _, err := newAgent().Once(ctx); err != nil {
		t.Fatalf("first run: %v", err)
	}
	if err := os.RemoveAll(bare); err != nil {
		t.Fatal(err)
	}
	// The domain is destroyed while the host is offline; the restarted agent
	// must still heal it from the revision it has on disk.
	if err := h.Destroy(ctx, "default_web"); err != nil {
		t.Fatal(err)
	}
	a := newAgent()
	rep, err := a.Once(ctx)
	if err != nil {
		t.Fatalf("offline restart: %v", err)
	}
	if a.Node() == nil || len(a.Node().VMs.VMs) != 1 {
		t.Fatalf("offline restart must load the last good revision, got %v", a.Node())
	}
	if len(rep.Outcomes) != 1 || rep.Outcomes[0].Action != "start" || rep.Outcomes[0].Result != "done" {
		t.Fatalf("want the destroyed VM started again, got %+v", rep.Outcomes)
	}
}

// The node-level views list every stage's steps and results in apply
// order (host, storage, VMs), an empty plan as an empty list.
func TestNodePlan_stepsInStageOrder(t *testing.T) {
	if s := (agent.NodePlan{}).Steps(); s == nil || len(s) != 0 {
		t.Fatalf("empty plan: %#v", s)
	}
	step := func(st plan.Stage, a plan.Action) plan.Step {
		return plan.Step{Stage: st, Action: a, Object: string(st)}
	}
	np := agent.NodePlan{
		VMs:     &vm.Planned{Plan: vm.Plan{Actions: []plan.Step{step(plan.StageVM, vm.Create)}}},
		Storage: &storage.Plan{Actions: []storage.Action{{Step: step(plan.StageStorage, storage.ActBind), Claim: "default/disk"}}},
		Host:    &host.Plan{Actions: []host.Action{{Step: step(plan.StageHost, host.WriteFile)}, {Step: step(plan.StageHost, host.StartUnit)}}},
		// Snapshots copy the disks of stopped VMs: after storage, before VMs.
		Snapshots: &snapshot.Plan{Steps: []snapshot.Step{{Step: step(snapshot.Stage, snapshot.ActRestore), Restore: "default/r"}}},
	}
	var got []string
	for _, s := range np.Steps() {
		got = append(got, string(s.Stage)+" "+string(s.Action))
	}
	if want := "host write-file, host start-unit, storage bind, snapshot restore, vm create"; strings.Join(got, ", ") != want {
		t.Fatalf("steps: %s, want %s", strings.Join(got, ", "), want)
	}
	var rep agent.NodeReport
	rep.VMs.Add(plan.Outcome{Step: step(plan.StageVM, vm.Start), Result: plan.Done})
	rep.Storage.Add(plan.Outcome{Step: step(plan.StageStorage, storage.ActImport), Result: plan.Failed})
	rep.Host.Add(plan.Outcome{Step: step(plan.StageHost, host.EnableUnit), Result: plan.Done})
	rep.Snapshots.Add(plan.Outcome{Step: step(snapshot.Stage, snapshot.ActSnapshot), Result: plan.Done})
	got = got[:0]
	for _, o := range rep.Results() {
		got = append(got, string(o.Stage)+" "+string(o.Result))
	}
	if want := "host done, storage failed, snapshot done, vm done"; strings.Join(got, ", ") != want || rep.Err() == nil {
		t.Fatalf("results: %s, want %s (err %v)", strings.Join(got, ", "), want, rep.Err())
	}
}

// VMs are bound to the node's resources before conversion, and bound again
// within one revision when those change: the agent pins a dedicated VM from
// the pool, persists the pins at define, keeps them on the next iteration,
// and moves them when the pool no longer holds them.
func TestAgent_bindsResourcesBeforeConversion(t *testing.T) {
	dir := t.TempDir()
	repo, state := filepath.Join(dir, "repo"), filepath.Join(dir, "state")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	dedicated := `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: pinned, namespace: default}
spec:
  runStrategy: Halted
  template:
    spec:
      domain:
        cpu: {cores: 1, dedicatedCpuPlacement: true}
        memory: {guest: 64Mi}
        devices: {}
`
	if err := os.WriteFile(filepath.Join(repo, "vm.yaml"), []byte(dedicated), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, err := virt.Open(ctx, "test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	d, err := disks.New(state, filepath.Join(state, "images"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := statedb.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pool := []uint{1, 2}
	cfg := agent.Config{
		Desired: desired.Options{Node: "n1", NodeLabels: map[string]string{"cpumanager": "true"}, Context: domain.Context{Type: "kvm", Arch: "x86_64",
			DiskDir: filepath.Join(state, "disks"), VolumeDir: filepath.Join(state, "volumes")}},
		Resources: agent.Resources{CPUPool: func() ([]uint, error) { return pool, nil }},
	}
	src, err := source.Open(source.Options{URL: repo, WorkDir: filepath.Join(state, "source")})
	if err != nil {
		t.Fatal(err)
	}
	a := agent.New(cfg, src, vm.New(vm.Config{SelfHeal: true, DiskDir: filepath.Join(state, "disks")}, h, d, db), h)
	pinnedTo := func() []uint {
		t.Helper()
		cpus, _, err := vm.Allocations(db)
		if err != nil {
			t.Fatal(err)
		}
		x, err := h.Domains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, dom := range x {
			if dom.Name == "default_pinned" {
				if want := `<vcpupin vcpu='0' cpuset='` + fmt.Sprint(cpus["default_pinned"].VCPUs[0]) + `'/>`; !strings.Contains(dom.XML, want) {
					t.Fatalf("defined domain lacks %s:\n%s", want, dom.XML)
				}
			}
		}
		return cpus["default_pinned"].VCPUs
	}
	if _, err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if got := pinnedTo(); !slices.Equal(got, []uint{1}) {
		t.Fatalf("pinned to %v, want [1]", got)
	}
	// CPU 1 leaves the pool: the persisted pin no longer fits.
	pool = []uint{2, 3}
	rep, err := a.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Outcomes) != 1 || rep.Outcomes[0].Action != "update" {
		t.Fatalf("want the domain redefined with the new pin, got %+v", rep.Outcomes)
	}
	if got := pinnedTo(); !slices.Equal(got, []uint{2}) {
		t.Fatalf("pinned to %v, want [2]", got)
	}
	// Nothing changed: the pin is kept, nothing to do.
	if rep, err := a.Once(ctx); err != nil || len(rep.Outcomes) != 0 {
		t.Fatalf("third run: %+v, %v", rep.Outcomes, err)
	}
}

// A drift or held step is logged as a warning with its field diff; other
// steps at info.
func TestLogPlan_driftAndHoldsWarn(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	agent.LogPlanForTest(log, []plan.Step{
		{Stage: plan.StageVM, Action: vm.Update, Object: "VirtualMachine default/web", Target: "default_web", Drift: true,
			Changes: []plan.Change{{Path: "vcpu", From: "1", To: "3"}}},
		{Stage: plan.StageHost, Action: plan.Hold, Object: "MachineConfig x", Target: "/etc/x"},
		{Stage: plan.StageVM, Action: vm.Create, Object: "VirtualMachine default/db", Target: "default_db"},
	})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], `changes="[vcpu: 1 -> 3]"`) ||
		!strings.Contains(lines[1], "level=WARN") || !strings.Contains(lines[2], "level=INFO") {
		t.Fatalf("log:\n%s", buf.String())
	}
}
