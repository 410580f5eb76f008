package agent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/disks"
	"github.com/nodevirt/nodevirt/runtime/hv"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
	"github.com/nodevirt/nodevirt/runtime/statedb"
	"github.com/nodevirt/nodevirt/source"
)

// vmDoc is a VirtualMachine manifest; annotations go into its metadata.
func vmDoc(name, memory, runStrategy, annotations string) string {
	meta := "{name: " + name + ", namespace: default}"
	if annotations != "" {
		meta = "{name: " + name + ", namespace: default, annotations: {" + annotations + "}}"
	}
	return `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: ` + meta + `
spec:
  runStrategy: ` + runStrategy + `
  template:
    spec:
      terminationGracePeriodSeconds: 0
      domain:
        memory: {guest: ` + memory + `}
        devices: {}
`
}

// node is a source directory, a libvirt test-driver connection and a state
// database that agents are built over: agents built one after the other on
// it are one agent restarted.
type node struct {
	t     *testing.T
	dir   string
	src   string
	state string
	hv    *virt.Driver
	db    *statedb.DB
}

func newNode(t *testing.T) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{t: t, dir: dir, src: filepath.Join(dir, "src"), state: filepath.Join(dir, "state")}
	if err := os.MkdirAll(n.src, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	if n.hv, err = virt.Open(context.Background(), testNode(t, filepath.Join(dir, "node.xml"))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.hv.Close() })
	if n.db, err = statedb.Open(filepath.Join(dir, "state.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.db.Close() })
	return n
}

func (n *node) write(name, content string) {
	n.t.Helper()
	if err := os.WriteFile(filepath.Join(n.src, name), []byte(content), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

// agent builds an agent over the node, as a fresh process would.
func (n *node) agent() *agent.Agent {
	n.t.Helper()
	d, err := disks.New(n.state, filepath.Join(n.state, "images"))
	if err != nil {
		n.t.Fatal(err)
	}
	src, err := source.Open(source.Options{URL: n.src, WorkDir: filepath.Join(n.state, "source")})
	if err != nil {
		n.t.Fatal(err)
	}
	cfg := agent.Config{Desired: desired.Options{Node: "n1", Context: domain.Context{Type: "kvm", Arch: "x86_64",
		DiskDir: filepath.Join(n.state, "disks"), VolumeDir: filepath.Join(n.state, "volumes")}}}
	rec := vm.New(vm.Config{SelfHeal: true, DiskDir: filepath.Join(n.state, "disks")}, n.hv, d, n.db)
	return agent.New(cfg, src, rec, n.hv).WithState(n.db)
}

func (n *node) domain(name string) hv.Domain {
	n.t.Helper()
	doms, err := n.hv.Domains(context.Background())
	if err != nil {
		n.t.Fatal(err)
	}
	for _, d := range doms {
		if d.Name == name {
			return d
		}
	}
	n.t.Fatalf("no domain %s", name)
	return hv.Domain{}
}

func once(t *testing.T, a *agent.Agent) vm.Report {
	t.Helper()
	rep, err := a.Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func stepsOf(steps []plan.Step, target string) []plan.Step {
	var out []plan.Step
	for _, s := range steps {
		if s.Target == target {
			out = append(out, s)
		}
	}
	return out
}

// A stop of an Always VM turns it off and keeps it off: the next
// reconcile, and an agent restarted on the same state, do not start it,
// nor call it drift; a start (here from a one-shot agent that loaded
// nothing yet) clears it. Pause and unpause suspend and resume the domain,
// and a reconcile leaves a paused domain paused.
func TestAgent_vmActions(t *testing.T) {
	n := newNode(t)
	n.write("web.yaml", vmDoc("web", "64Mi", "Always", ""))
	ctx := context.Background()
	a := n.agent()
	once(t, a)
	if st := n.domain("default_web").State; st != hv.Running {
		t.Fatalf("after the first reconcile: %s", st)
	}

	res, err := a.VMAction(ctx, "stop", "default", "web")
	if err != nil || !res.Changed || res.Object != "VirtualMachine default/web" || res.Action != "stop" {
		t.Fatalf("stop: %+v, %v", res, err)
	}
	if st := n.domain("default_web").State; st != hv.Shutoff {
		t.Fatalf("after stop: %s", st)
	}
	if rep := once(t, a); len(rep.Outcomes) != 0 {
		t.Fatalf("a reconcile after the stop: %+v", rep.Outcomes)
	}
	reqs, err := a.RunRequests()
	if err != nil || reqs["default_web"].Action != kubevirtv1.StopRequest {
		t.Fatalf("run requests: %+v, %v", reqs, err)
	}
	if res, err := a.VMAction(ctx, "stop", "", "web"); err != nil || res.Changed {
		t.Fatalf("second stop: %+v, %v", res, err)
	}

	restarted := n.agent()
	once(t, restarted)
	if st := n.domain("default_web").State; st != hv.Shutoff {
		t.Fatalf("a restarted agent started the stopped VM: %s", st)
	}
	np, err := restarted.Plan(ctx, restarted.Node())
	if err != nil {
		t.Fatal(err)
	}
	if s := stepsOf(np.Steps(), "default_web"); len(s) != 0 || !strings.Contains(strings.Join(np.VMs.InSync, ","), "default_web") {
		t.Fatalf("the stopped VM must be in sync, not drift: %+v", s)
	}

	oneShot := n.agent()
	if res, err := oneShot.VMAction(ctx, "start", "default", "web"); err != nil || !res.Changed {
		t.Fatalf("start: %+v, %v", res, err)
	}
	if st := n.domain("default_web").State; st != hv.Running {
		t.Fatalf("after start: %s", st)
	}
	if reqs, err := oneShot.RunRequests(); err != nil || len(reqs) != 0 {
		t.Fatalf("start must clear the stop: %+v, %v", reqs, err)
	}

	if res, err := oneShot.VMAction(ctx, "pause", "default", "web"); err != nil || !res.Changed {
		t.Fatalf("pause: %+v, %v", res, err)
	}
	if res, err := oneShot.VMAction(ctx, "pause", "default", "web"); err != nil || res.Changed {
		t.Fatalf("second pause: %+v, %v", res, err)
	}
	if rep := once(t, oneShot); len(rep.Outcomes) != 0 {
		t.Fatalf("a reconcile of a paused VM: %+v", rep.Outcomes)
	}
	if st := n.domain("default_web").State; st != hv.Paused {
		t.Fatalf("after pause and a reconcile: %s", st)
	}
	if res, err := oneShot.VMAction(ctx, "unpause", "default", "web"); err != nil || !res.Changed {
		t.Fatalf("unpause: %+v, %v", res, err)
	}
	if st := n.domain("default_web").State; st != hv.Running {
		t.Fatalf("after unpause: %s", st)
	}

	if _, err := oneShot.VMAction(ctx, "stop", "default", "nope"); !errors.Is(err, agent.ErrUnknownVM) || !strings.Contains(err.Error(), "default/nope") {
		t.Fatalf("unknown VM: %v", err)
	}
	if _, err := oneShot.VMAction(ctx, "reboot", "default", "web"); err == nil || !strings.Contains(err.Error(), `unknown VM action "reboot"`) {
		t.Fatalf("unknown action: %v", err)
	}
	if _, err := oneShot.VMAction(ctx, "stop", "default", "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := oneShot.VMAction(ctx, "pause", "default", "web"); !errors.Is(err, vm.ErrRefused) || err.Error() != "VM is not running" {
		t.Fatalf("pause of a stopped VM: %v", err)
	}
}

// A start of a Manual VM whose domain is not defined yet defines and starts
// it at once.
func TestAgent_startDefinesAnUndefinedVM(t *testing.T) {
	n := newNode(t)
	n.write("web.yaml", vmDoc("web", "64Mi", "Manual", ""))
	a := n.agent()
	res, err := a.VMAction(context.Background(), "start", "default", "web")
	if err != nil || !res.Changed || !strings.HasPrefix(res.Message, "defined") {
		t.Fatalf("start: %+v, %v", res, err)
	}
	if st := n.domain("default_web").State; st != hv.Running {
		t.Fatalf("after start: %s", st)
	}
}

func memoryKiB(d hv.Domain) string {
	_, rest, _ := strings.Cut(d.XML, "<memory unit='KiB'>")
	v, _, _ := strings.Cut(rest, "<")
	return v
}

// A suspended node plans a changed manifest and applies nothing until it
// is resumed; a suspended object, by command or by annotation, has its
// steps planned (drift included) and skipped while the others apply.
func TestAgent_suspendAndResume(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(docs ...string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(src, "vms.yaml"), []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(vmDoc("web", "64Mi", "Always", ""))
	ctx := context.Background()
	rt, err := agent.Open(ctx, openConfig(dir, src, testNode(t, filepath.Join(dir, "node.xml")), agent.AllStages))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	a := rt.Agent
	apply := func() agent.NodeReport {
		t.Helper()
		st, err := a.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rep := a.Apply(ctx, st)
		if err := rep.Err(); err != nil {
			t.Fatalf("apply: %v", err)
		}
		return rep
	}
	dom := func(name string) hv.Domain {
		t.Helper()
		doms, err := rt.HV.Domains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range doms {
			if d.Name == name {
				return d
			}
		}
		return hv.Domain{}
	}
	apply()
	if m := memoryKiB(dom("default_web")); m != "65536" {
		t.Fatalf("first apply: memory %s", m)
	}

	// The whole node.
	if res, err := a.Suspend(ctx, ""); err != nil || !res.Changed || res.Action != "suspend" {
		t.Fatalf("suspend: %+v, %v", res, err)
	}
	if res, err := a.Suspend(ctx, ""); err != nil || res.Changed {
		t.Fatalf("second suspend: %+v, %v", res, err)
	}
	write(vmDoc("web", "128Mi", "Always", ""))
	rep := apply()
	steps := stepsOf(rep.Plan.Steps(), "default_web")
	if len(steps) == 0 || steps[0].Action != vm.Update || !steps[0].Suspended {
		t.Fatalf("a suspended node still plans the change: %+v", steps)
	}
	for _, o := range rep.Results() {
		if o.Result != plan.Skipped || o.Error != plan.SkipSuspended {
			t.Fatalf("a suspended node applied %+v", o)
		}
	}
	if m := memoryKiB(dom("default_web")); m != "65536" {
		t.Fatalf("a suspended node changed the domain: memory %s", m)
	}
	if global, objs, err := a.Suspensions(); err != nil || !global || len(objs) != 0 {
		t.Fatalf("suspensions: %v %v %v", global, objs, err)
	}
	if res, err := a.Resume(ctx, ""); err != nil || !res.Changed {
		t.Fatalf("resume: %+v, %v", res, err)
	}
	apply()
	if m := memoryKiB(dom("default_web")); m != "131072" {
		t.Fatalf("after resume: memory %s", m)
	}

	// One object, by command: the other VM still converges.
	res, err := a.Suspend(ctx, "vm/web")
	if err != nil || !res.Changed || res.Object != "VirtualMachine default/web" {
		t.Fatalf("suspend vm/web: %+v, %v", res, err)
	}
	write(vmDoc("web", "256Mi", "Always", ""), vmDoc("db", "64Mi", "Always", ""))
	rep = apply()
	for _, o := range rep.VMs.Outcomes {
		suspended := o.Result == plan.Skipped && o.Error == plan.SkipSuspended
		if (o.Target == "default_web") != suspended {
			t.Fatalf("outcome %+v", o)
		}
	}
	if m := memoryKiB(dom("default_web")); m != "131072" {
		t.Fatalf("a suspended VM changed: memory %s", m)
	}
	if d := dom("default_db"); d.State != hv.Running {
		t.Fatalf("the other VM must converge: %+v", d)
	}
	if global, objs, err := a.Suspensions(); err != nil || global || strings.Join(objs, ",") != "VirtualMachine default/web" {
		t.Fatalf("suspensions: %v %v %v", global, objs, err)
	}

	// By annotation: resuming the command's suspension leaves it suspended.
	write(vmDoc("web", "256Mi", "Always", desired.AnnotationReconcile+": disabled"), vmDoc("db", "64Mi", "Always", ""))
	if _, err := a.Load(ctx); err != nil {
		t.Fatal(err)
	}
	res, err = a.Resume(ctx, "VirtualMachine/default/web")
	if err != nil || !res.Changed || !strings.Contains(res.Message, "stays suspended by its "+desired.AnnotationReconcile) {
		t.Fatalf("resume of an annotated VM: %+v, %v", res, err)
	}
	rep = apply()
	if s := stepsOf(rep.Plan.Steps(), "default_web"); len(s) == 0 || !s[0].Suspended {
		t.Fatalf("annotated VM steps: %+v", s)
	}
	if m := memoryKiB(dom("default_web")); m != "131072" {
		t.Fatalf("an annotated VM changed: memory %s", m)
	}
	list, err := a.SuspensionList()
	if err != nil || len(list) != 1 || list[0].Source != agent.SuspendedByAnnotation || list[0].Object != "VirtualMachine default/web" {
		t.Fatalf("suspension list: %+v, %v", list, err)
	}
	write(vmDoc("web", "256Mi", "Always", desired.AnnotationReconcile+": enabled"), vmDoc("db", "64Mi", "Always", ""))
	apply()
	if m := memoryKiB(dom("default_web")); m != "262144" {
		t.Fatalf("after the annotation went: memory %s", m)
	}
	if _, err := a.Suspend(ctx, "foo/web"); err == nil || !strings.Contains(err.Error(), `unknown kind "foo"`) {
		t.Fatalf("unknown kind: %v", err)
	}
}

// Objects are read as commands name them and returned as plan steps do.
func TestParseObject(t *testing.T) {
	for in, want := range map[string]string{
		"vm/web":                     "VirtualMachine ns1/web",
		"VM/other/web":               "VirtualMachine other/web",
		"virtualmachineinstance/x":   "VirtualMachineInstance ns1/x",
		"dv/a/disk":                  "DataVolume a/disk",
		"PersistentVolumeClaim/data": "PersistentVolumeClaim ns1/data",
		"pv/vol1":                    "PersistentVolume vol1",
		"VirtualMachine default/web": "VirtualMachine default/web",
	} {
		if got, err := agent.ParseObject(in, "ns1"); err != nil || got != want {
			t.Errorf("ParseObject(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"foo/web":  "want vm, vmi, dv, pvc, pv",
		"vm/":      "want KIND/NAME or KIND/NAMESPACE/NAME",
		"vm/a/b/c": "want KIND/NAME or KIND/NAMESPACE/NAME",
		"pv/a/b":   "cluster-scoped",
		"web":      "unknown kind",
	} {
		if _, err := agent.ParseObject(in, "ns1"); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseObject(%q): %v, want an error saying %q", in, err, why)
		}
	}
}

// API calls arrive beside the running loop: they never run the VM stage at
// the same time as a reconcile (the race detector watches), and a stop
// asked for while the loop runs holds through the reconciles that follow.
func TestAgent_actionsBesideTheLoop(t *testing.T) {
	n := newNode(t)
	n.write("web.yaml", vmDoc("web", "64Mi", "Always", ""))
	a := n.agent()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	go func() {
		for a.Node() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		close(ready)
	}()
	<-ready
	for range 3 {
		a.Kick()
		if _, err := a.VMAction(ctx, "stop", "default", "web"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Suspensions(); err != nil {
			t.Fatal(err)
		}
	}
	a.Kick()
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := n.domain("default_web").State; st != hv.Shutoff {
		t.Fatalf("the loop started the stopped VM: %s", st)
	}
}

// A suspended DataVolume's storage steps are planned and skipped: its
// volume is not provisioned until it is resumed.
func TestAgent_suspendedDataVolume(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "storage.yaml"), []byte(storageManifests+"---\n"+blankDV), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt, err := agent.Open(ctx, openConfig(dir, src, testNode(t, filepath.Join(dir, "node.xml")), agent.Stages{Storage: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if _, err := rt.Agent.Suspend(ctx, "dv/data"); err != nil {
		t.Fatal(err)
	}
	st, err := rt.Agent.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep := rt.Agent.Apply(ctx, st)
	n := 0
	for _, o := range rep.Storage.Outcomes {
		if o.Object == "DataVolume default/data" {
			n++
			if o.Result != plan.Skipped || o.Error != plan.SkipSuspended {
				t.Fatalf("suspended DataVolume step: %+v", o)
			}
		}
	}
	if n == 0 {
		t.Fatalf("no step of the DataVolume was planned: %+v", rep.Storage.Outcomes)
	}
	if err := rt.Storage.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	c, _ := rt.Storage.Claim("default", "data")
	if c.Ready || c.Path == "" {
		t.Fatalf("a suspended DataVolume is planned, not bound: %+v", c)
	}
	if _, err := os.Stat(c.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a suspended DataVolume's disk was made: %v", err)
	}
	if _, err := rt.Agent.Resume(ctx, "dv/data"); err != nil {
		t.Fatal(err)
	}
	if rep := rt.Agent.Apply(ctx, st); rep.Err() != nil {
		t.Fatal(rep.Err())
	}
	if err := rt.Storage.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if c, ok := rt.Storage.Claim("default", "data"); !ok || !c.Ready {
		t.Fatalf("after resume the DataVolume is imported: %+v %v", c, ok)
	}
	if _, err := os.Stat(c.Path); err != nil {
		t.Fatalf("after resume the disk exists: %v", err)
	}
}
