package vm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/disks"
	"github.com/nodevirt/nodevirt/runtime/hv"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
	"github.com/nodevirt/nodevirt/runtime/statedb"
)

// host is a reconciler on libvirt's in-process test driver (a private node
// per test), real disk artifacts under a temp dir and a real bbolt state.
type host struct {
	t     testing.TB
	hv    *virt.Driver
	rec   *vm.Reconciler
	state string
	opt   desired.Options
}

const testNode = `<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads></cpu>
  <memory>16777216</memory>
</node>`

func newHost(t *testing.T, cfg vm.Config) *host { return newHostTB(t, cfg) }

func newHostTB(t testing.TB, cfg vm.Config) *host {
	t.Helper()
	dir := t.TempDir()
	nodeXML := filepath.Join(dir, "node.xml")
	if err := os.WriteFile(nodeXML, []byte(testNode), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, err := virt.Open(ctx, "test://"+nodeXML)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	state := filepath.Join(dir, "state")
	d, err := disks.New(state, filepath.Join(state, "images"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := statedb.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg.DiskDir = filepath.Join(state, "disks")
	return &host{
		t: t, hv: h, state: state,
		rec: vm.New(cfg, h, d, db),
		opt: desired.Options{Node: "node1", NodeLabels: map[string]string{"cpumanager": "true"}, Context: domain.Context{Type: "kvm", Arch: "x86_64",
			DiskDir: filepath.Join(state, "disks"), VolumeDir: filepath.Join(state, "volumes")}},
	}
}

// stateDB opens a state database of its own, closed when the test ends: a
// second agent on the same node, or the same agent across restarts.
func (h *host) stateDB() *statedb.DB {
	h.t.Helper()
	db, err := statedb.Open(filepath.Join(h.t.TempDir(), "state.db"))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { db.Close() })
	return db
}

// agentWith builds a reconciler on h's node and disks with cfg and db.
func (h *host) agentWith(cfg vm.Config, db *statedb.DB) *vm.Reconciler {
	h.t.Helper()
	d, err := disks.New(h.state, filepath.Join(h.state, "images"))
	if err != nil {
		h.t.Fatal(err)
	}
	cfg.DiskDir = filepath.Join(h.state, "disks")
	return vm.New(cfg, h.hv, d, db)
}

// render decodes YAML documents as one revision.
func (h *host) render(rev string, docs ...string) *desired.State {
	h.t.Helper()
	set := manifests.Parse("vms.yaml", []byte(strings.Join(docs, "\n---\n")), manifests.Options{})
	return desired.Build(set, rev, h.opt)
}

// renderBound renders like render, with the node resources res plus the
// allocations persisted in db: what the agent binds before conversion.
func (h *host) renderBound(db *statedb.DB, res desired.Resources, rev string, docs ...string) *desired.State {
	h.t.Helper()
	var err error
	if res.CPUs, res.HostDevices, err = vm.Allocations(db); err != nil {
		h.t.Fatal(err)
	}
	opt := h.opt
	opt.Resources = res
	set := manifests.Parse("vms.yaml", []byte(strings.Join(docs, "\n---\n")), manifests.Options{})
	return desired.Build(set, rev, opt)
}

func (h *host) apply(st *desired.State) (vm.Plan, vm.Report) {
	h.t.Helper()
	p, err := h.rec.Plan(context.Background(), st)
	if err != nil {
		h.t.Fatal(err)
	}
	rep := h.rec.Apply(context.Background(), p)
	if rep.Failed > 0 {
		h.t.Fatalf("apply failed: %+v", rep.Outcomes)
	}
	return p.Plan, rep
}

func (h *host) domains() map[string]hv.Domain {
	h.t.Helper()
	ds, err := h.hv.Domains(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]hv.Domain{}
	for _, d := range ds {
		out[d.Name] = d
	}
	return out
}

func kinds(p vm.Plan) string {
	var s []string
	for _, a := range p.Actions {
		s = append(s, string(a.Action)+" "+a.Target)
	}
	return strings.Join(s, ", ")
}

func vmYAML(name, memory, runStrategy string) string {
	return `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: ` + name + `, namespace: default}
spec:
  runStrategy: ` + runStrategy + `
  template:
    spec:
      terminationGracePeriodSeconds: 0
      domain:
        memory: {guest: ` + memory + `}
        devices:
          disks: [{name: data, disk: {bus: virtio}}, {name: seed, disk: {bus: virtio}}]
      volumes:
        - {name: data, emptyDisk: {capacity: 16Mi}}
        - name: seed
          cloudInitNoCloud: {userData: "#cloud-config\nhostname: ` + name + `\n"}
`
}

func TestReconciler_createThenNoop(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true})
	p, _ := h.apply(h.render("r1", vmYAML("web", "64Mi", "Always"), vmYAML("db", "64Mi", "Halted")))
	if got, want := kinds(p), "create default_db, create default_web, start default_web"; got != want {
		t.Fatalf("first plan: %s, want %s", got, want)
	}
	doms := h.domains()
	if doms["default_web"].State != hv.Running || doms["default_db"].State != hv.Shutoff {
		t.Fatalf("states: web %s, db %s", doms["default_web"].State, doms["default_db"].State)
	}
	if _, ok := desired.OwnerOf(doms["default_web"].XML); !ok {
		t.Fatalf("defined domain carries no ownership metadata:\n%s", doms["default_web"].XML)
	}
	for _, f := range []string{"disks/default/web/data.qcow2", "disks/default/web/seed.iso"} {
		if _, err := os.Stat(filepath.Join(h.state, f)); err != nil {
			t.Fatalf("artifact %s: %v", f, err)
		}
	}
	p, _ = h.apply(h.render("r1", vmYAML("web", "64Mi", "Always"), vmYAML("db", "64Mi", "Halted")))
	if !p.Empty() || len(p.InSync) != 2 {
		t.Fatalf("second plan must be a no-op with both in sync: %s (in sync %v)", kinds(p), p.InSync)
	}
}

func TestReconciler_changeRestartsRunningVM(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true})
	h.apply(h.render("r1", vmYAML("web", "64Mi", "Always")))
	p, _ := h.apply(h.render("r2", vmYAML("web", "128Mi", "Always")))
	if got, want := kinds(p), "update default_web, restart default_web"; got != want {
		t.Fatalf("plan: %s, want %s", got, want)
	}
	found := false
	for _, c := range p.Actions[0].Changes {
		if c.Path == "memory" && c.From == "65536" && c.To == "131072" {
			found = true
		}
	}
	if !found {
		t.Fatalf("update must carry the memory change, got %v", p.Actions[0].Changes)
	}
	if !strings.Contains(h.domains()["default_web"].XML, "131072") {
		t.Fatal("definition not updated")
	}
}

func TestReconciler_driftIsHealedUnlessSelfHealOff(t *testing.T) {
	for _, heal := range []bool{true, false} {
		h := newHost(t, vm.Config{SelfHeal: heal})
		st := h.render("r1", vmYAML("web", "64Mi", "Always"))
		h.apply(st)
		if err := h.hv.Destroy(context.Background(), "default_web"); err != nil {
			t.Fatal(err)
		}
		p, rep := h.apply(st)
		if len(p.Actions) != 1 || p.Actions[0].Action != vm.Start || !p.Actions[0].Drift {
			t.Fatalf("self-heal %v: want one drift start, got %s", heal, kinds(p))
		}
		wantState, wantResult := hv.Running, plan.Done
		if !heal {
			wantState, wantResult = hv.Shutoff, plan.Skipped
		}
		if got := h.domains()["default_web"].State; got != wantState {
			t.Fatalf("self-heal %v: state %s, want %s", heal, got, wantState)
		}
		if rep.Outcomes[0].Result != wantResult {
			t.Fatalf("self-heal %v: outcome %+v", heal, rep.Outcomes[0])
		}
	}
}

func TestReconciler_invalidObjectKeepsLastGood(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true})
	h.apply(h.render("r1", vmYAML("web", "64Mi", "Always"), vmYAML("db", "64Mi", "Always")))
	before := h.domains()["default_web"].XML

	bad := strings.Replace(vmYAML("web", "64Mi", "Always"), "guest: 64Mi", "guest: lots", 1)
	st := h.render("r2", bad, vmYAML("db", "96Mi", "Always"))
	if !st.Diags.HasErrors() {
		t.Fatal("the invalid quantity must be reported")
	}
	p, err := h.rec.Plan(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := kinds(p.Plan), "keep default_web, update default_db, restart default_db"; got != want {
		t.Fatalf("plan: %s, want %s", got, want)
	}
	h.rec.Apply(context.Background(), p)
	if h.domains()["default_web"].XML != before {
		t.Fatal("the invalid VM's domain changed")
	}
	// Destroyed while its manifest is broken: healed from the last good state.
	if err := h.hv.Destroy(context.Background(), "default_web"); err != nil {
		t.Fatal(err)
	}
	h.apply(st)
	if h.domains()["default_web"].State != hv.Running {
		t.Fatal("last good state not healed")
	}
}

func TestReconciler_pruneAndGuard(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true})
	h.apply(h.render("r1", vmYAML("web", "64Mi", "Always"), vmYAML("db", "64Mi", "Always")))
	p, _ := h.apply(h.render("r2", vmYAML("web", "64Mi", "Always")))
	if got, want := kinds(p), "delete default_db"; got != want {
		t.Fatalf("plan: %s, want %s", got, want)
	}
	if _, ok := h.domains()["default_db"]; ok {
		t.Fatal("pruned domain still defined")
	}
	if _, err := os.Stat(filepath.Join(h.state, "disks/default/db")); !os.IsNotExist(err) {
		t.Fatalf("disks of the pruned VM remain: %v", err)
	}
	// An empty revision would delete everything: held.
	p, _ = h.apply(h.render("r3"))
	if got, want := kinds(p), "hold default_web"; got != want {
		t.Fatalf("plan: %s, want %s", got, want)
	}
	if _, ok := h.domains()["default_web"]; !ok {
		t.Fatal("held delete was executed")
	}
	// A parse failure suspends pruning.
	st := h.render("r4", vmYAML("web", "64Mi", "Always"))
	broken := manifests.Parse("broken.yaml", []byte("kind: [\n"), manifests.Options{})
	if !broken.Incomplete {
		t.Fatal("a YAML syntax error must make the set incomplete")
	}
	st.PruneSuspended = true
	p, _ = h.apply(st)
	if !p.Empty() {
		t.Fatalf("nothing may change: %s", kinds(p))
	}
}

func TestReconciler_foreignDomainIsNeverTouched(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true, AllowPruneAll: true})
	foreign := `<domain type="test"><name>default_web</name><memory unit="MiB">32</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`
	if err := h.hv.Define(context.Background(), foreign); err != nil {
		t.Fatal(err)
	}
	before := h.domains()["default_web"].XML
	p, _ := h.apply(h.render("r1", vmYAML("web", "64Mi", "Always")))
	if got, want := kinds(p), "conflict default_web"; got != want {
		t.Fatalf("plan: %s, want %s", got, want)
	}
	h.apply(h.render("r2"))
	if h.domains()["default_web"].XML != before {
		t.Fatal("foreign domain modified")
	}
}

func TestReconciler_onceStartsOnlyOnce(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true})
	st := h.render("r1", vmYAML("job", "64Mi", "Once"))
	h.apply(st)
	if err := h.hv.Shutdown(context.Background(), "default_job", 0); err != nil {
		t.Fatal(err)
	}
	p, _ := h.apply(st)
	if !p.Empty() {
		t.Fatalf("a finished Once VM must not start again: %s", kinds(p))
	}
}

// failingStarts is the test driver with starts that fail, as QEMU's do when
// the host cannot run the guest (e.g. an unsupported CPU feature).
type failingStarts struct {
	*virt.Driver
	tries int
}

func (f *failingStarts) Start(ctx context.Context, name string) error {
	f.tries++
	return fmt.Errorf("qemu-system-x86_64: error: failed to set MSR 0x10a")
}

func TestReconciler_startFailuresBackOff(t *testing.T) {
	base := newHost(t, vm.Config{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hv := &failingStarts{Driver: base.hv}
	d, err := disks.New(base.state, filepath.Join(base.state, "images"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := statedb.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := vm.New(vm.Config{SelfHeal: true, DiskDir: filepath.Join(base.state, "disks"), Now: func() time.Time { return now }}, hv, d, db)
	st := base.render("r1", vmYAML("web", "64Mi", "Always"))
	apply := func() plan.Outcome {
		p, err := rec.Plan(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		rep := rec.Apply(context.Background(), p)
		return rep.Outcomes[len(rep.Outcomes)-1]
	}
	if o := apply(); o.Action != vm.Start || o.Result != "failed" {
		t.Fatalf("first start: %+v", o)
	}
	if o := apply(); o.Result != "skipped" || !strings.Contains(o.Error, "start failed 1 times") || hv.tries != 1 {
		t.Fatalf("within the backoff the start must be skipped: %+v (tries %d)", o, hv.tries)
	}
	now = now.Add(11 * time.Second)
	if o := apply(); o.Result != "failed" || hv.tries != 2 {
		t.Fatalf("after 10 s the start is tried again: %+v (tries %d)", o, hv.tries)
	}
	now = now.Add(39 * time.Second)
	if o := apply(); o.Result != "skipped" || hv.tries != 2 {
		t.Fatalf("second failure backs off 40 s: %+v (tries %d)", o, hv.tries)
	}
}

func dedicatedVM(name string, vcpus int) string {
	return fmt.Sprintf(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: %s, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        cpu: {cores: %d, dedicatedCpuPlacement: true}
        memory: {guest: 64Mi}
        devices: {}
`, name, vcpus)
}

// VM-8: exclusive CPUs from the pool, kept across agent restarts, never
// shared, released with the VM.
func TestReconciler_dedicatedCPUs(t *testing.T) {
	h := newHost(t, vm.Config{})
	db := h.stateDB()
	agent := func() *vm.Reconciler {
		return h.agentWith(vm.Config{SelfHeal: true, AllowPruneAll: true}, db)
	}
	render := func(rev string, docs ...string) *desired.State {
		return h.renderBound(db, desired.Resources{CPUPool: []uint{1, 2, 3}}, rev, docs...)
	}
	apply := func(rec *vm.Reconciler, st *desired.State) vm.Plan {
		p, err := rec.Plan(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		if rep := rec.Apply(context.Background(), p); rep.Failed > 0 {
			t.Fatalf("apply: %+v", rep.Outcomes)
		}
		return p.Plan
	}
	pins := func(name string) string {
		x := h.domains()[name].XML
		var out []string
		for _, line := range strings.Split(x, "\n") {
			if strings.Contains(line, "vcpupin") {
				out = append(out, strings.TrimSpace(line))
			}
		}
		return strings.Join(out, " ")
	}

	both := func() *desired.State { return render("r1", dedicatedVM("a", 2), dedicatedVM("b", 2)) }
	p := apply(agent(), both())
	if got := kinds(p); got != "create default_a, start default_a, create default_b, wait default_b" {
		t.Fatalf("plan: %s", got)
	}
	if !strings.Contains(p.Actions[3].Reason, "needs 2 dedicated CPUs; the CPU-manager pool 1-3 has 1 free") {
		t.Fatalf("wait reason: %q", p.Actions[3].Reason)
	}
	want := `<vcpupin vcpu='0' cpuset='1'/> <vcpupin vcpu='1' cpuset='2'/>`
	if got := pins("default_a"); got != want {
		t.Fatalf("pins of a: %s, want %s", got, want)
	}
	// A restarted agent keeps a's CPUs and sees nothing to change.
	if p := apply(agent(), both()); len(p.Actions) != 1 || p.Actions[0].Action != vm.Wait {
		t.Fatalf("after restart: %s", kinds(p))
	}
	if got := pins("default_a"); got != want {
		t.Fatalf("pins of a after restart: %s", got)
	}
	// a goes. Its CPUs stay taken while the plan that deletes it runs
	// (deletes come last), so b gets them on the next iteration.
	if p := apply(agent(), render("r2", dedicatedVM("b", 2))); kinds(p) != "wait default_b, delete default_a" {
		t.Fatalf("plan: %s", kinds(p))
	}
	if p := apply(agent(), render("r2", dedicatedVM("b", 2))); kinds(p) != "update default_b, start default_b" {
		t.Fatalf("plan: %s", kinds(p))
	}
	if got := pins("default_b"); got != want {
		t.Fatalf("b must get the freed CPUs: %s", got)
	}
}

// Prune follows this agent's inventory: after its state is lost, domains the
// source still wants are adopted (and pruned later as usual), while marked
// domains nothing here wants are orphans, reported and left alone.
func TestReconciler_inventoryAdoptAndOrphan(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true})
	h.apply(h.render("r1", vmYAML("web", "64Mi", "Always"), vmYAML("db", "64Mi", "Always"), vmYAML("old", "64Mi", "Always")))

	// A second agent with an empty state directory on the same host.
	db := h.stateDB()
	fresh := h.agentWith(vm.Config{SelfHeal: true}, db)
	apply := func(st *desired.State) vm.Plan {
		p, err := fresh.Plan(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		if rep := fresh.Apply(context.Background(), p); rep.Failed > 0 {
			t.Fatalf("apply: %+v", rep.Outcomes)
		}
		return p.Plan
	}
	if got := kinds(apply(h.render("r1", vmYAML("web", "64Mi", "Always"), vmYAML("db", "64Mi", "Always")))); got != "orphan default_old" {
		t.Fatalf("plan: %s", got)
	}
	if _, ok := h.domains()["default_old"]; !ok {
		t.Fatal("an orphan must never be deleted")
	}
	// web and db were adopted: removing db from the source prunes it.
	if got := kinds(apply(h.render("r2", vmYAML("web", "64Mi", "Always")))); got != "orphan default_old, delete default_db" {
		t.Fatalf("plan: %s", got)
	}
}

func gpuVM(name string) string {
	return fmt.Sprintf(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: %s, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          gpus: [{name: gpu1, deviceName: nvidia.com/GA100}]
`, name)
}

// VM-10: a free permitted device per request, persisted, never shared; a
// resource that is not permitted, or has no free device, makes the VM wait.
func TestReconciler_hostDevices(t *testing.T) {
	h := newHost(t, vm.Config{})
	db := h.stateDB()
	permitted := map[string][]string{"nvidia.com/GA100": {"0000:3b:00.0"}}
	agent := func() *vm.Reconciler {
		return h.agentWith(vm.Config{SelfHeal: true}, db)
	}
	render := func(rev string, docs ...string) *desired.State {
		return h.renderBound(db, desired.Resources{Devices: permitted}, rev, docs...)
	}
	apply := func(st *desired.State) vm.Plan {
		rec := agent()
		p, err := rec.Plan(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		if rep := rec.Apply(context.Background(), p); rep.Failed > 0 {
			t.Fatalf("apply: %+v", rep.Outcomes)
		}
		return p.Plan
	}
	p := apply(render("r1", gpuVM("a"), gpuVM("b")))
	if got := kinds(p); got != "create default_a, start default_a, create default_b, wait default_b" {
		t.Fatalf("plan: %s", got)
	}
	if !strings.Contains(p.Actions[3].Reason, "no free device of resource nvidia.com/GA100") {
		t.Fatalf("wait reason: %q", p.Actions[3].Reason)
	}
	x := h.domains()["default_a"].XML
	for _, want := range []string{"<hostdev mode='subsystem' type='pci' managed='no'>", "<address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/>", "ua-gpu-gpu1"} {
		if !strings.Contains(x, want) {
			t.Fatalf("missing %s in\n%s", want, x)
		}
	}
	// A restarted agent keeps the allocation: nothing changes.
	if p := apply(render("r1", gpuVM("a"), gpuVM("b"))); len(p.Actions) != 1 || p.Actions[0].Action != vm.Wait {
		t.Fatalf("after restart: %s", kinds(p))
	}
	// The resource leaves the permitted list: a new VM asking for it waits
	// with the reason.
	permitted = map[string][]string{}
	p = apply(render("r2", gpuVM("a"), gpuVM("c")))
	waited := false
	for _, a := range p.Actions {
		if a.Target == "default_c" && a.Action == vm.Wait {
			waited = true
			if !strings.Contains(a.Reason, "resource nvidia.com/GA100 is not permitted on this node") {
				t.Fatalf("wait reason: %q", a.Reason)
			}
		}
	}
	if !waited {
		t.Fatalf("c must wait: %s", kinds(p))
	}
}

// A domain whose owner metadata was edited to name ".." must not take the
// whole namespace's disk directory with it when it is deleted: the
// directory is refused, other VMs' disks stay.
func TestReconciler_deleteRefusesOwnerThatIsNotAPathElement(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true, AllowPruneAll: true})
	h.apply(h.render("r1", vmYAML("web", "64Mi", "Halted"), vmYAML("db", "64Mi", "Halted")))
	dbDisk := filepath.Join(h.state, "disks", "default", "db", "data.qcow2")
	if _, err := os.Stat(dbDisk); err != nil {
		t.Fatalf("db's disk was not made: %v", err)
	}
	// Someone with libvirt access rewrites web's owner to name "..".
	xml := h.domains()["default_web"].XML
	edited := strings.Replace(xml, `name="web"`, `name=".."`, 1)
	if edited == xml {
		t.Fatalf("owner element not found in:\n%s", xml)
	}
	if err := h.hv.Define(context.Background(), edited); err != nil {
		t.Fatal(err)
	}
	p, err := h.rec.Plan(context.Background(), h.render("r2", vmYAML("db", "64Mi", "Halted")))
	if err != nil {
		t.Fatal(err)
	}
	rep := h.rec.Apply(context.Background(), p)
	if _, err := os.Stat(dbDisk); err != nil {
		t.Fatalf("deleting the edited domain removed another VM's disk: %v (outcomes %+v)", err, rep.Outcomes)
	}
	if rep.Failed == 0 {
		t.Fatalf("the refused removal must be reported: %+v", rep.Outcomes)
	}
}

// unreachableStarts is the test driver whose starts fail as they do while
// libvirtd restarts.
type unreachableStarts struct {
	*virt.Driver
	tries int
}

func (f *unreachableStarts) Start(ctx context.Context, name string) error {
	f.tries++
	return fmt.Errorf("domain %q: %w", name, hv.ErrUnavailable)
}

// A start that failed because libvirtd could not be reached is not the VM's
// fault: it is counted as unavailable and tried again at once, without the
// start back-off.
func TestReconciler_unreachableStartNotBackedOff(t *testing.T) {
	base := newHost(t, vm.Config{})
	drv := &unreachableStarts{Driver: base.hv}
	d, err := disks.New(base.state, filepath.Join(base.state, "images"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := statedb.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := vm.New(vm.Config{SelfHeal: true, DiskDir: filepath.Join(base.state, "disks")}, drv, d, db)
	st := base.render("r1", vmYAML("web", "64Mi", "Always"))
	for i := 1; i <= 2; i++ {
		p, err := rec.Plan(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		rep := rec.Apply(context.Background(), p)
		o := rep.Outcomes[len(rep.Outcomes)-1]
		if o.Action != vm.Start || o.Result != "failed" || drv.tries != i {
			t.Fatalf("apply %d: want the start tried and failed as unavailable: %+v (tries %d, unavailable %d)", i, o, drv.tries, rep.Unavailable)
		}
	}
}

// jsonCopy writes v as JSON and reads it back.
func jsonCopy[T any](t *testing.T, v T) T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("read back %s: %v", b, err)
	}
	return out
}

// outcomes renders a report without its timings, which differ run to run.
func outcomes(rep vm.Report) []string {
	var out []string
	for _, o := range rep.Outcomes {
		out = append(out, fmt.Sprintf("%s %s %s %s %s %s %v", o.Stage, o.Action, o.Object, o.Target, o.Result, o.Error, o.Changes))
	}
	return out
}

// A plan is plain data: read back from its JSON it applies as the original
// does (define, start, restart, delete with the disks), on twin nodes.
func TestReconciler_planSurvivesJSON(t *testing.T) {
	r1 := []string{vmYAML("web", "64Mi", "Always"), vmYAML("old", "64Mi", "Always")}
	r2 := []string{vmYAML("web", "128Mi", "Always"), vmYAML("db", "64Mi", "Always")}
	var got [2][]string
	for i, viaJSON := range []bool{false, true} {
		h := newHost(t, vm.Config{SelfHeal: true})
		h.apply(h.render("r1", r1...))
		st := h.render("r2", r2...)
		p, err := h.rec.Plan(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		if viaJSON {
			p = jsonCopy(t, p)
		}
		rep := h.rec.Apply(context.Background(), p)
		if rep.Failed > 0 || len(rep.Outcomes) == 0 {
			t.Fatalf("json %v: %+v", viaJSON, rep.Outcomes)
		}
		got[i] = outcomes(rep)
		doms := h.domains()
		if _, gone := doms["default_old"]; gone || doms["default_db"].State != hv.Running || !strings.Contains(doms["default_web"].XML, "131072") {
			t.Fatalf("json %v: domains after apply: %v", viaJSON, doms)
		}
		if _, err := os.Stat(filepath.Join(h.state, "disks/default/old")); !os.IsNotExist(err) {
			t.Fatalf("json %v: the deleted VM's disks stay: %v", viaJSON, err)
		}
		if next, _ := h.apply(st); !next.Empty() {
			t.Fatalf("json %v: after apply the plan is %s", viaJSON, kinds(next))
		}
	}
	if d := cmp.Diff(got[0], got[1]); d != "" {
		t.Fatalf("applying the plan read back from JSON differs (-original +read back):\n%s", d)
	}
}

// A VM placed on another node by a later revision is shut down here through
// the hypervisor, and its domain and disks stay; a fenced one is defined
// and not started.
func TestReconciler_movedAwayStopsAndFencedWaits(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true})
	nodes := "apiVersion: v1\nkind: Node\nmetadata: {name: node1, labels: {kubernetes.io/hostname: node1}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node2, labels: {kubernetes.io/hostname: node2}}\n"
	h.apply(h.render("r1", nodes, vmYAML("web", "64Mi", "Always")))
	if st := h.domains()["default_web"].State; st != hv.Running {
		t.Fatalf("web is %s, want running", st)
	}
	taint := "\nspec:\n  taints: [{key: node.kubernetes.io/out-of-service, value: nodeshutdown, effect: NoExecute}]\n"
	tainted := strings.Replace(nodes, "kubernetes.io/hostname: node1}}\n", "kubernetes.io/hostname: node1}}"+taint, 1)
	p, _ := h.apply(h.render("r2", tainted, vmYAML("web", "64Mi", "Always")))
	if got, want := kinds(p), "stop default_web"; got != want {
		t.Fatalf("plan on the tainted node: %s, want %s", got, want)
	}
	dom, ok := h.domains()["default_web"]
	if !ok || dom.State.Active() {
		t.Fatalf("web must stay defined and stopped: defined %v, state %s", ok, dom.State)
	}
	if _, err := os.Stat(filepath.Join(h.state, "disks/default/web/data.qcow2")); err != nil {
		t.Fatalf("the moved VM's disk must stay: %v", err)
	}

	st := h.render("r3", nodes, vmYAML("web", "64Mi", "Always"))
	st.VMs[0].Fenced = "waiting for node node2 to stop vm default/web"
	if p, _ := h.apply(st); kinds(p) != "wait default_web" {
		t.Fatalf("fenced plan: %s", kinds(p))
	}
	if h.domains()["default_web"].State.Active() {
		t.Fatal("a fenced VM was started")
	}
}
