// Package agent is nodevirt's main job: fetch the source, decode and render
// the desired state, plan and apply, and loop on git polls, local file
// changes and libvirt lifecycle events. Open (open.go) opens and wires the
// runtime pieces every command uses, so the reconcilers never import a
// driver or git, and the state lock and the in-use hold apply to every
// command alike.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/nodeconfig"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/host"
	"github.com/nodevirt/nodevirt/reconciler/hotplug"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/snapshot"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/hv"
	"github.com/nodevirt/nodevirt/source"
)

// Config is the loop's policy.
type Config struct {
	// Interval between git polls (ignored for watched local directories,
	// which are still rescanned at DriftInterval).
	Interval time.Duration
	// DriftInterval between full drift checks when nothing else happens.
	DriftInterval time.Duration
	// EventDebounce groups bursts of libvirt events into one reconcile.
	EventDebounce time.Duration
	Desired       desired.Options
	Manifests     manifests.Options
	// CPUVendor picks the IOMMU kernel argument nodevirt generates (intel, amd).
	CPUVendor string
	// AllowedBlockDevices are the host block devices (paths or patterns)
	// Block PersistentVolumes may name besides loop devices.
	AllowedBlockDevices []string
	Log                 *slog.Logger
	// Backup copies the state database after an iteration that succeeded
	// (the last good state); it must be cheap when nothing changed. nil
	// keeps no backup.
	Backup func() error
	// Ready is called once, when Run's first iteration ended (whatever it
	// did): the agent has a view of the node and serves its purpose (sd_notify
	// READY for a Type=notify unit). nil: nothing is told.
	Ready func()
	// Resources reads what the node can give VMs, bound to them before
	// they are converted.
	Resources Resources
	// OnIteration is called after each reconcile of the loop, with what it
	// did and the status it left (metrics); nil: nothing is called.
	OnIteration func(Iteration)
}

// Resources reads what this node can give its VMs. Render binds every VM to
// them before conversion: CPU pins, host devices and claim disks are in the
// domain from the start, and nothing edits it afterwards.
type Resources struct {
	// CPUPool returns the node's CPU-manager pool; nil: the node has none.
	CPUPool func() ([]uint, error)
	// Devices lists, per resource the host configuration permits, the PCI
	// addresses VMs can be given (permitted and bound to vfio-pci); nil: none.
	Devices func(*nodeconfig.HostConfig) (map[string][]string, error)
	// Allocations reads the CPU and device allocations persisted in the
	// state; nil allocates as a fresh state would. The agent reads its
	// reconciler's when unset.
	Allocations func() (map[string]domain.Pinning, map[string][]domain.AssignedDevice, error)
	// Storage plans the storage state and so says where each claim's disk
	// is (its persisted binding, or where the plan puts it); nil keeps the
	// default path. The agent uses its storage manager when unset.
	Storage ClaimPlanner
}

// ClaimPlanner plans storage without changing anything.
type ClaimPlanner interface {
	Plan(ctx context.Context, st *storage.State) (*storage.Plan, error)
}

// read gathers the node's resources for the host configuration and storage
// state of one revision.
func (r Resources) read(ctx context.Context, hc *nodeconfig.HostConfig, ss *storage.State) (desired.Resources, error) {
	var out desired.Resources
	var err error
	if r.CPUPool != nil {
		if out.CPUPool, err = r.CPUPool(); err != nil {
			return out, fmt.Errorf("CPU-manager pool: %w", err)
		}
		if out.CPUPool == nil {
			out.CPUPool = []uint{}
		}
	}
	if r.Devices != nil && hc != nil {
		if out.Devices, err = r.Devices(hc); err != nil {
			return out, fmt.Errorf("permitted host devices: %w", err)
		}
	}
	if r.Allocations != nil {
		if out.CPUs, out.HostDevices, err = r.Allocations(); err != nil {
			return out, err
		}
	}
	if ss != nil {
		// What a claim asks is known before it is bound: a lun on a
		// Filesystem claim is refused without waiting for a binding.
		for key, c := range ss.Claims {
			if out.Claims == nil {
				out.Claims = map[string]domain.ClaimDisk{}
			}
			out.Claims[key] = domain.ClaimDisk{VolumeMode: c.VolumeMode}
		}
	}
	if r.Storage != nil && ss != nil {
		sp, err := r.Storage.Plan(ctx, ss)
		if err != nil {
			return out, fmt.Errorf("plan storage for claim disks: %w", err)
		}
		for key, c := range sp.Claims {
			if c.Path != "" {
				if out.Claims == nil {
					out.Claims = map[string]domain.ClaimDisk{}
				}
				mode := out.Claims[key].VolumeMode
				out.Claims[key] = domain.ClaimDisk{Path: c.Path, Block: c.Block, VolumeMode: mode}
			}
		}
	}
	return out, nil
}

// Agent runs the loop.
type Agent struct {
	cfg Config
	src source.Source
	rec *vm.Reconciler
	hv  vm.Hypervisor
	log *slog.Logger

	// host applies host configuration before VMs; nil leaves the host alone.
	host *host.Reconciler
	// storage provisions and imports volumes between host configuration and
	// VMs; nil leaves storage alone.
	storage *storage.Manager
	// hotplug attaches volumes to running VMs by hand and keeps their
	// records; nil: no hotplug.
	hotplug *hotplug.Manager
	// snapshots takes and restores snapshots between storage setup and the
	// VMs; nil leaves snapshots alone.
	snapshots *snapshot.Manager
	// kick asks the loop for an iteration (an import finished).
	kick chan struct{}

	last source.Snapshot
	// node is the last rendering (nil before the first Load); read by
	// getters beside a running loop, hence atomic.
	node atomic.Pointer[Node]
	// mu serialises what runs the stages: the loop's reconcile and what is
	// asked for beside it (plans, VM actions, suspend, resume), so an API
	// call and a reconcile never drive the same domains at once. Read-only
	// getters do not take it.
	mu sync.Mutex
	// state holds the agent's own records (suspensions); nil: none can be
	// kept.
	state vm.KV
	// looping is set by Run: the log is then the agent's only voice.
	looping bool
	// track keeps the status, events and fetch record the API serves.
	track tracker
	// fetchNow asks the loop to fetch and apply now (webhook, API).
	fetchNow chan struct{}
	// fleet publishes the node's report to the status branch and keeps
	// the other nodes' reports; nil without a status branch.
	fleet atomic.Pointer[Fleet]
}

// New builds an agent over a source, a reconciler and its hypervisor.
func New(cfg Config, src source.Source, rec *vm.Reconciler, h vm.Hypervisor) *Agent {
	return newAgent(cfg, src, rec, h, make(chan struct{}, 1))
}

// newAgent is New with the kick channel Open hands to the storage manager
// it built before the agent. rec nil: the agent runs no VM stage.
func newAgent(cfg Config, src source.Source, rec *vm.Reconciler, h vm.Hypervisor, kick chan struct{}) *Agent {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.DriftInterval <= 0 {
		cfg.DriftInterval = 5 * time.Minute
	}
	if cfg.EventDebounce <= 0 {
		cfg.EventDebounce = 200 * time.Millisecond
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Agent{cfg: cfg, src: src, rec: rec, hv: h, log: log, kick: kick, fetchNow: make(chan struct{}, 1)}
}

// WithHost makes every iteration apply host configuration first (R-9: host
// configuration and devices before the VMs that need them).
func (a *Agent) WithHost(h *host.Reconciler) *Agent { a.host = h; return a }

// WithStorage makes every iteration plan storage after host configuration
// and before VMs: claims bound and imported before the VMs using them.
func (a *Agent) WithStorage(m *storage.Manager) *Agent { a.storage = m; return a }

// Kick asks a running loop for an iteration soon (e.g. an import finished);
// it never blocks.
func (a *Agent) Kick() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Node is one source revision turned into what this node should be: its
// VMs (bound to the node's resources), storage and host configuration,
// rendered once and handed to plan and apply. All diagnostics (Butane,
// MachineConfig and storage ones included) are in VMs.Diags.
type Node struct {
	Revision string
	Set      *manifests.Set
	VMs      *desired.State
	Host     *nodeconfig.HostConfig
	Storage  *storage.State
	// Resources are what the VMs were bound to.
	Resources desired.Resources
	// diags are the host and storage diagnostics, kept for re-binding.
	diags diag.List
	// previous is the recorded placement the VMs were placed with, and
	// reportsAt when the fleet's reports they were placed with were read.
	previous  map[string]desired.Placed
	reportsAt time.Time
	dir       string
}

// Render decodes a snapshot's manifests and renders this node: host
// configuration and storage first, then the VMs, bound to the node's
// resources as read through cfg.Resources.
func Render(ctx context.Context, snap source.Snapshot, cfg Config) (*Node, error) {
	mopt := cfg.Manifests
	mopt.Root = snap.Root() // symlinks may lead anywhere inside the repository, never out
	exclude, err := snap.Excluded()
	if err != nil {
		return nil, fmt.Errorf("read the source's ignore rules: %w", err)
	}
	mopt.Exclude = exclude
	set, err := manifests.Load(snap.Dir, mopt)
	if err != nil {
		return nil, fmt.Errorf("load manifests of %s: %w", snap.Revision, err)
	}
	n := &Node{Revision: snap.Revision, Set: set, dir: snap.Dir}
	hc, diags := nodeconfig.Render(set, snap.Dir, nodeconfig.NodeFor(set, cfg.Desired.Node, cfg.CPUVendor))
	ss := storage.Build(set, storage.Options{Node: cfg.Desired.Node, AllowedBlockDevices: cfg.AllowedBlockDevices})
	n.Host, n.Storage, n.diags = hc, ss, append(diags, ss.Diags...)
	res, err := cfg.Resources.read(ctx, hc, ss)
	if err != nil {
		return nil, fmt.Errorf("node resources for %s: %w", snap.Revision, err)
	}
	n.bind(res, cfg.Desired)
	return n, nil
}

// bind renders the VMs for res.
func (n *Node) bind(res desired.Resources, opt desired.Options) {
	opt.Resources = res
	st := desired.Build(n.Set, n.Revision, opt)
	st.Diags = append(st.Diags, n.diags...)
	st.Diags.Sort()
	n.VMs, n.Resources, n.previous = st, res, opt.Previous
}

// rebind renders the VMs again when the node's resources changed since
// they were bound (an allocation persisted or released, a device bound to
// vfio-pci by the host stage, a claim bound): same revision, new bindings.
//
// planned, when the caller just planned storage for n, says where the claims'
// disks go (the plan already names where it binds them), so storage is not
// planned a second time; nil plans it.
//
// A Node is never changed once rendered (the API reads the last one beside
// the loop): new bindings make a copy, which replaces n as the agent's last
// rendering when n was it.
func (a *Agent) rebind(ctx context.Context, n *Node, planned *storage.Plan) (*Node, error) {
	cfg, readAt := a.renderConfig()
	r := a.resources()
	if planned != nil && r.Storage != nil {
		r.Storage = storagePlanned{planned}
	}
	res, err := r.read(ctx, n.Host, n.Storage)
	if err != nil {
		return n, err
	}
	// Status reports age and change between two renderings of one
	// revision: with reports, placement and fences are decided anew.
	// A Secret changed in the secrets directory re-renders too: its
	// content is part of the VM's definition.
	if reflect.DeepEqual(res, n.Resources) && !rebound(n, cfg, readAt) && !n.VMs.SourcesChanged(cfg.Desired.Secrets) {
		return n, nil
	}
	bound := *n
	bound.bind(res, cfg.Desired)
	bound.reportsAt = readAt
	a.node.CompareAndSwap(n, &bound)
	return &bound, nil
}

// storagePlanned is a ClaimPlanner that answers with a plan already made.
type storagePlanned struct{ p *storage.Plan }

func (s storagePlanned) Plan(context.Context, *storage.State) (*storage.Plan, error) { return s.p, nil }

// resources are cfg.Resources completed with the agent's own state.
func (a *Agent) resources() Resources {
	r := a.cfg.Resources
	if r.Allocations == nil && a.rec != nil {
		r.Allocations = a.rec.Allocations
	}
	if r.Storage == nil && a.storage != nil {
		r.Storage = a.storage
	}
	return r
}

// Load fetches the source and renders this node. Decoding is skipped when
// the revision and digest did not change since the last Load; the VMs are
// bound again only when the node's resources changed.
func (a *Agent) Load(ctx context.Context) (*Node, error) {
	fetchStart := time.Now()
	snap, err := a.src.Fetch(ctx)
	fetched := time.Since(fetchStart)
	a.track.fetched(a.src.String(), snap, err)
	var refused *source.RefusedError
	if errors.As(err, &refused) {
		// Never the keys: the error names the commit, its author and why.
		a.log.Warn("revision refused; the last accepted revision stays applied",
			"revision", refused.Revision, "author", refused.Author, "reason", refused.Reason,
			"detail", refused.Detail, "applied", snap.Revision)
		if snap.Dir == "" {
			return nil, err
		}
		if a.node.Load() == nil {
			err = nil // render the last accepted revision after a restart
		}
	}
	if err != nil {
		// A source that cannot be reached still hands back the last good
		// snapshot it has on disk: an edge host restarted while offline keeps
		// converging on it instead of doing nothing.
		if snap.Dir == "" || a.node.Load() != nil {
			return nil, err
		}
		a.log.Error("source unavailable; using the last fetched revision on disk", "err", err, "revision", snap.Revision)
	}
	// A document that could not be decrypted is read again on every pass:
	// the age key may have been put in place since.
	if last := a.node.Load(); last != nil && snap.Revision == a.last.Revision && snap.Digest == a.last.Digest && !undecrypted(last.Set) {
		return a.rebind(ctx, last, nil)
	}
	cfg, readAt := a.renderConfig()
	cfg.Resources = a.resources()
	renderStart := time.Now()
	n, err := Render(ctx, snap, cfg)
	if err != nil {
		return nil, err
	}
	// Where a new revision's time goes before the stages run (they log
	// their own): the latency from a save or push to a running VM.
	a.log.Debug("revision rendered", "revision", snap.Revision, "fetch", fetched.Round(time.Microsecond),
		"render", time.Since(renderStart).Round(time.Microsecond))
	n.reportsAt = readAt
	// The loop's log is where a running agent says what is wrong with a
	// revision; a one-shot command prints the same diagnostics and reasons
	// itself, so they are logged at debug there, not said twice.
	lvl := slog.LevelDebug
	if a.looping {
		lvl = slog.LevelWarn
	}
	for _, d := range n.VMs.Diags {
		a.log.Log(ctx, lvl, "manifest", "diagnostic", d.Error())
	}
	for _, vm := range n.VMs.VMs {
		if vm.Unschedulable != "" {
			a.log.Log(ctx, lvl, "VM cannot start on this node", "object", vm.Object, "reason", vm.Unschedulable)
		}
	}
	for _, why := range n.VMs.Unschedulable {
		a.log.Log(ctx, lvl, "VM cannot be placed", "reason", why)
	}
	a.last = snap
	a.node.Store(n)
	return n, nil
}

// Node returns the node rendered by the last Load (nil before it).
func (a *Agent) Node() *Node { return a.node.Load() }

// Once loads, plans and applies one time.
func (a *Agent) Once(ctx context.Context) (vm.Report, error) {
	n, err := a.current(ctx)
	if err != nil {
		return vm.Report{}, err
	}
	return a.apply(ctx, n)
}

// current loads the source, or keeps the last good revision while the
// source is down: an edge host keeps converging on what it had.
func (a *Agent) current(ctx context.Context) (*Node, error) {
	n, err := a.Load(ctx)
	if err == nil {
		return n, nil
	}
	last := a.node.Load()
	if last == nil {
		return nil, err
	}
	if errors.As(err, new(*source.RefusedError)) {
		return last, nil // Load said why
	}
	a.log.Error("source unavailable; reconciling the last fetched revision", "err", err, "revision", last.Revision)
	return last, nil
}

// NodePlan is one revision planned for this node, stage by stage:
// host configuration, storage, VMs. A stage the agent does not run is nil.
type NodePlan struct {
	State   *desired.State
	Host    *host.Plan
	Storage *storage.Plan
	// Snapshots is the snapshot stage's plan (snapshots and restores).
	Snapshots *snapshot.Plan
	VMs       *vm.Planned
}

// Steps returns the steps of every stage planned, in stage (apply) order.
func (p NodePlan) Steps() []plan.Step {
	out := []plan.Step{}
	if p.Host != nil {
		out = appendSteps(out, p.Host.Actions)
	}
	if p.Storage != nil {
		out = appendSteps(out, p.Storage.Actions)
	}
	if p.Snapshots != nil {
		out = appendSteps(out, p.Snapshots.Steps)
	}
	if p.VMs != nil {
		out = append(out, p.VMs.Actions...)
	}
	return out
}

func appendSteps[S plan.Stepper](out []plan.Step, steps []S) []plan.Step {
	for _, s := range steps {
		out = append(out, s.PlanStep())
	}
	return out
}

// NodeReport is what one Apply did, stage by stage; Errors holds the
// stages that could not be planned (reported, not fatal to later stages).
type NodeReport struct {
	Plan      NodePlan
	Host      host.Report
	Storage   storage.Report
	Snapshots plan.Report
	VMs       vm.Report
	Errors    []string
	// Unavailable: the VM stage failed, wholly or in part, because the
	// hypervisor could not be reached (libvirtd stopped or restarting).
	Unavailable bool `json:"-"`
	// Took is how long each stage took, planning included.
	Took map[plan.Stage]time.Duration `json:"-"`
}

// Err is non-nil when any stage failed.
func (r NodeReport) Err() error {
	var errs []error
	for _, e := range r.Errors {
		errs = append(errs, errors.New(e))
	}
	if err := r.Host.Err(); err != nil {
		errs = append(errs, fmt.Errorf("host configuration: %w", err))
	}
	if r.Storage.Failed > 0 {
		errs = append(errs, fmt.Errorf("storage: %d actions failed", r.Storage.Failed))
	}
	if r.Snapshots.Failed > 0 {
		errs = append(errs, fmt.Errorf("snapshots: %d steps failed", r.Snapshots.Failed))
	}
	if err := r.VMs.Err(); err != nil {
		errs = append(errs, fmt.Errorf("VMs: %w", err))
	}
	return errors.Join(errs...)
}

// Results returns the outcomes of every stage, in stage order (storage's
// teardown after its setup).
func (r NodeReport) Results() []plan.Outcome {
	out := make([]plan.Outcome, 0, len(r.Host.Outcomes)+len(r.Storage.Outcomes)+len(r.Snapshots.Outcomes)+len(r.VMs.Outcomes))
	out = append(out, r.Host.Outcomes...)
	out = append(out, r.Storage.Outcomes...)
	out = append(out, r.Snapshots.Outcomes...)
	return append(out, r.VMs.Outcomes...)
}

// Plan plans every stage of n without changing anything (a dry run: later
// stages do not see what earlier ones would do).
//
// Steps of suspended objects (or every step, when the node is suspended)
// are marked Suspended: they are what apply would skip.
func (a *Agent) Plan(ctx context.Context, n *Node) (NodePlan, error) {
	st := n.VMs
	np := NodePlan{State: st}
	sus, err := a.suspension(n)
	if err != nil {
		return np, err
	}
	if a.host != nil && n.Host != nil {
		hp, err := a.host.Plan(ctx, n.Host)
		if err != nil {
			return np, fmt.Errorf("plan host configuration: %w", err)
		}
		hp.Revision = st.Revision
		sus.markHost(&hp)
		np.Host = &hp
	}
	if a.storage != nil && n.Storage != nil {
		sp, err := a.storage.Plan(ctx, n.Storage)
		if err != nil {
			return np, fmt.Errorf("plan storage: %w", err)
		}
		sus.markStorage(sp)
		np.Storage = sp
	}
	if a.snapshots != nil {
		sp, err := a.snapshots.Plan(ctx, snapshot.Desired(n.Set, st, n.Storage))
		if err != nil {
			return np, fmt.Errorf("plan snapshots: %w", err)
		}
		np.Snapshots = sp
	}
	if a.rec == nil {
		return np, nil
	}
	p, err := a.rec.Plan(ctx, st)
	if err != nil {
		return np, err
	}
	sus.markVMs(p)
	np.VMs = p
	return np, nil
}

// Apply converges the node on n stage by stage, planning each stage after
// the previous one applied (the VM plan sees the claims storage just bound).
// A stage that fails is reported and does not stop later stages: VMs that do
// not depend on it still converge.
//
// A suspended node is planned and applies nothing; a suspended object's
// steps are recorded as skipped (see Suspend).
func (a *Agent) Apply(ctx context.Context, n *Node) NodeReport {
	st := n.VMs
	rep := NodeReport{Plan: NodePlan{State: st}, Took: map[plan.Stage]time.Duration{}}
	began := time.Now()
	mark := began
	took := func(stage plan.Stage) {
		now := time.Now()
		rep.Took[stage] += now.Sub(mark)
		mark = now
	}
	sus, err := a.suspension(n)
	if err != nil {
		// What was suspended is unknown: nothing is applied rather than
		// what someone suspended.
		rep.Errors = append(rep.Errors, "read suspensions: "+err.Error()+"; nothing is applied")
		sus.global = true
	}
	sus.log(ctx, a.log)
	if a.host != nil && n.Host != nil {
		if hp, err := a.host.Plan(ctx, n.Host); err != nil {
			rep.Errors = append(rep.Errors, "plan host configuration: "+err.Error())
		} else {
			hp.Revision = st.Revision
			sus.markHost(&hp)
			rep.Plan.Host = &hp
			logPlan(a.log, hp.Actions)
			if sus.global {
				rep.Host = host.Report{Revision: hp.Revision, Report: skipAll(hp.Actions)}
			} else {
				rep.Host = a.host.Apply(ctx, hp)
			}
		}
		took(plan.StageHost)
	}
	if a.storage != nil && n.Storage != nil {
		if sp, err := a.storage.Plan(ctx, n.Storage); err != nil {
			rep.Errors = append(rep.Errors, "plan storage: "+err.Error())
		} else {
			sus.markStorage(sp)
			rep.Plan.Storage = sp
			logPlan(a.log, sp.Actions)
			if sus.global {
				rep.Storage = storage.Report{Report: skipAll(sp.Actions)}
			} else {
				rep.Storage = a.storage.Apply(ctx, sp, storage.Setup)
			}
		}
		took(plan.StageStorage)
	}
	// The host stage may have bound a device to vfio-pci and storage a
	// claim: the VMs are bound again when that changed what the node can
	// give them.
	if bound, err := a.rebind(ctx, n, rep.Plan.Storage); err != nil {
		rep.Errors = append(rep.Errors, "bind VMs to the node's resources: "+err.Error())
	} else {
		st = bound.VMs
		rep.Plan.State = st
	}
	// Snapshots and restores copy the disks of stopped VMs: before the VM
	// stage, under the same lock, so no VM starts while its data is copied.
	if a.snapshots != nil {
		a.applySnapshots(ctx, n, st, &rep, sus)
		took(snapshot.Stage)
	}
	if a.rec != nil {
		a.log.Debug("VM stage begins", "after", time.Since(began).Round(time.Microsecond))
		a.applyVMs(ctx, st, &rep, sus)
		if !sus.global && rep.Plan.VMs != nil {
			if err := a.recordPlacement(st); err != nil {
				rep.Errors = append(rep.Errors, err.Error())
			}
		}
		if !sus.global {
			if err := a.syncHotplug(ctx, st); err != nil {
				rep.Errors = append(rep.Errors, "hot-plugged volumes: "+err.Error())
			}
		}
		took(plan.StageVM)
	}
	// Releases and deletes of data come after the VMs that used them are gone.
	if sp := rep.Plan.Storage; sp != nil && !sus.global {
		rep.Storage.Append(a.storage.Apply(ctx, sp, storage.Teardown))
		took(plan.StageStorage)
	}
	return rep
}

// applySnapshots plans and applies the snapshot stage into rep.
func (a *Agent) applySnapshots(ctx context.Context, n *Node, st *desired.State, rep *NodeReport, sus suspension) {
	p, err := a.snapshots.Plan(ctx, snapshot.Desired(n.Set, st, n.Storage))
	if err != nil {
		rep.Errors = append(rep.Errors, "plan snapshots: "+err.Error())
		return
	}
	rep.Plan.Snapshots = p
	logPlan(a.log, p.Steps)
	if sus.global {
		rep.Snapshots = skipAll(p.Steps)
		return
	}
	rep.Snapshots = a.snapshots.Apply(ctx, p)
}

// applyVMs plans and applies the VM stage into rep.
func (a *Agent) applyVMs(ctx context.Context, st *desired.State, rep *NodeReport, sus suspension) {
	planStart := time.Now()
	p, err := a.rec.Plan(ctx, st)
	a.log.Debug("VMs planned", "took", time.Since(planStart).Round(time.Microsecond))
	if err != nil {
		rep.Errors = append(rep.Errors, "plan VMs: "+err.Error())
		rep.Unavailable = errors.Is(err, hv.ErrUnavailable)
		return
	}
	sus.markVMs(p)
	rep.Plan.VMs = p
	logPlan(a.log, p.Actions)
	if sus.global {
		rep.VMs = vm.Report{Revision: p.Revision, Report: skipAll(p.Actions)}
		return
	}
	rep.VMs = a.rec.Apply(ctx, p)
	rep.Unavailable = rep.VMs.Unavailable > 0
}

// logPlan logs every step of a stage's plan, one line each.
//
// Drift (an out-of-band change) and holds (a removal the guard stopped) are
// warnings, with the field diff: they are what an operator reading the
// journal must see without asking for a drift report.
func logPlan[S plan.Stepper](log *slog.Logger, steps []S) {
	for _, st := range steps {
		s := st.PlanStep()
		attrs := []any{"action", s.Action, "object", s.Object, "reason", s.Reason, "stage", s.Stage, "target", s.Target, "drift", s.Drift}
		if s.Suspended {
			attrs = append(attrs, "suspended", true)
		}
		lvl := slog.LevelInfo
		if s.Drift || s.Action == plan.Hold {
			lvl = slog.LevelWarn
		}
		if len(s.Changes) > 0 {
			changes := make([]string, len(s.Changes))
			for i, c := range s.Changes {
				changes[i] = c.String()
			}
			attrs = append(attrs, "changes", changes)
		}
		log.Log(context.Background(), lvl, "plan", attrs...)
	}
}

// hypervisorPoll is how often ApplyThroughOutage asks whether libvirtd
// answers again.
const hypervisorPoll = 500 * time.Millisecond

// ApplyThroughOutage is Apply for a one-shot run: when the hypervisor was
// lost during the apply (libvirtd restarting), it waits until libvirtd
// answers again and applies anew, observing first, so what the lost calls
// did or did not do is seen before anything is repeated: nothing is defined
// or started twice. It stops waiting at waitUntil (the applies themselves
// run under ctx alone) and then returns the last report with the reason.
func (a *Agent) ApplyThroughOutage(ctx context.Context, n *Node, waitUntil time.Time) (NodeReport, error) {
	rep := a.Apply(ctx, n)
	for rep.Unavailable {
		a.log.Warn("the hypervisor went away during apply; waiting for it to answer and applying again")
		wctx, cancel := context.WithDeadline(ctx, waitUntil)
		err := a.rec.AwaitHypervisor(wctx, hypervisorPoll)
		cancel()
		if err != nil {
			return rep, err
		}
		rep = a.Apply(ctx, n)
	}
	return rep, nil
}

func (a *Agent) apply(ctx context.Context, n *Node) (vm.Report, error) {
	rep := a.Apply(ctx, n)
	return rep.VMs, rep.Err()
}

type watcher interface {
	Watch(ctx context.Context) (<-chan struct{}, <-chan error, error)
}

// Run loops until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	a.looping = true
	var changes <-chan struct{}
	var watchErrs <-chan error
	poll := a.cfg.Interval
	if w, ok := a.src.(watcher); ok {
		c, e, err := w.Watch(ctx)
		if err != nil {
			return fmt.Errorf("watch %s: %w", a.src, err)
		}
		changes, watchErrs = c, e
		poll = a.cfg.DriftInterval
		a.log.Info("watching local directory for changes", "source", a.src.String())
	} else {
		a.log.Info("polling git source", "source", a.src.String(), "interval", poll)
	}
	var events <-chan hv.Event
	if es, ok := a.hv.(vm.EventSource); ok {
		ev, err := es.Events(ctx)
		if err != nil {
			a.log.Warn("libvirt events unavailable; relying on polling", "err", err)
		} else {
			events = ev
			// Events drop a domain's cached document; without them every
			// iteration reads every document.
			if dc, ok := a.hv.(definitionCache); ok {
				dc.CacheDefinitions()
			}
		}
	}

	// Every iteration observes libvirt afresh, so it covers the events
	// that arrived before it began: a pending event debounce is dropped. The
	// events the VM stage's own actions caused (a define's "defined", a
	// start's "started") tell nothing new either, nor do those of domains
	// the agent never touches; waiting on a reconcile for them would only
	// hold up the next save or push.
	var (
		debounce <-chan time.Time
		own      ownEvents
	)
	iterate := func(fetch bool) {
		debounce = nil
		own = a.iterate(ctx, fetch)
	}
	// The first iteration runs before the loop, so Ready means it ended.
	iterate(true)
	if a.cfg.Ready != nil {
		a.cfg.Ready()
	}
	pollT := time.NewTimer(poll)
	driftT := time.NewTicker(a.cfg.DriftInterval)
	defer driftT.Stop()
	for {
		select {
		case <-ctx.Done():
			a.log.Info("stopping: the step that ran was finished; the rest runs on the next start")
			return nil
		case <-pollT.C:
			iterate(true)
			// The interval counts from the end of the run, as Flux does.
			pollT.Reset(poll)
		case _, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			iterate(true)
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			a.log.Error("watching the source", "err", err)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if own.consume(ev, time.Now()) {
				a.log.Debug("libvirt event of the last reconcile's own action", "domain", ev.Domain, "event", ev.Kind, "detail", ev.Detail)
				continue
			}
			if own.foreign(ev) {
				a.log.Debug("libvirt event of a domain this agent neither wants nor owns", "domain", ev.Domain, "event", ev.Kind, "detail", ev.Detail)
				continue
			}
			a.log.Info("libvirt event", "domain", ev.Domain, "event", ev.Kind, "detail", ev.Detail)
			if debounce == nil {
				debounce = time.After(a.cfg.EventDebounce)
			}
		case <-debounce:
			iterate(false)
		case <-a.kick:
			iterate(false)
		case <-a.fetchNow:
			iterate(true)
			pollT.Reset(poll)
		case <-driftT.C:
			a.forgetDefinitions()
			iterate(false)
		}
	}
}

// definitionCache is a hypervisor that keeps domain documents between
// listings, invalidated by its events. Changes that fire no event (virsh
// setmaxmem --config, autostart) are seen only once the cache is forgotten:
// the agent forgets it on every drift tick, so such a change shows at the next
// drift check at the latest.
type definitionCache interface {
	CacheDefinitions()
	ForgetDefinitions()
}

func (a *Agent) forgetDefinitions() {
	if dc, ok := a.hv.(definitionCache); ok {
		dc.ForgetDefinitions()
	}
}

// ownEventsFor is how long after a reconcile the events its own actions
// cause are recognised as such; later ones count as news.
const ownEventsFor = 2 * time.Second

// ownEvents are the lifecycle events the VM stage's own actions of one
// reconcile cause, per domain, each expected once, until a deadline; and
// the domains whose events concern the agent at all.
type ownEvents struct {
	until time.Time
	want  map[string]map[hv.EventKind]int
	// mine are the domains the last VM plan wanted or found owned (nil
	// when it was not planned: then every domain is). Other domains on the
	// host (hand-made ones, another agent's) are never touched, so their
	// events cost no reconcile.
	mine map[string]bool
}

// domainsOf lists the domains a VM plan is about: every desired VM's and
// every owned one's (in sync or with a step); nil without a plan.
func domainsOf(p *vm.Planned, st *desired.State) map[string]bool {
	if p == nil || st == nil {
		return nil
	}
	m := map[string]bool{}
	for _, v := range st.VMs {
		m[v.DomainName] = true
	}
	for name := range p.VMs {
		m[name] = true
	}
	for _, name := range p.InSync {
		m[name] = true
	}
	for _, step := range p.Actions {
		if step.Action != vm.Orphan && step.Target != "" {
			m[step.Target] = true
		}
	}
	return m
}

// foreign reports whether ev is about a domain the agent neither wants nor
// owns. An event without a domain (the connection came back) never is.
func (o *ownEvents) foreign(ev hv.Event) bool {
	return o.mine != nil && ev.Domain != "" && !o.mine[ev.Domain]
}

// eventsOf lists the events libvirt sends for each VM action that was
// done. Fewer than libvirt sends is safe (one more reconcile than needed);
// more would hide a real change, so an action whose events vary (a
// restart, a hot plug) counts only what it always causes.
var eventsOf = map[plan.Action][]hv.EventKind{
	vm.Create:  {hv.EventDefined},
	vm.Update:  {hv.EventDefined},
	vm.Start:   {hv.EventStarted, hv.EventResumed},
	vm.Stop:    {hv.EventShutdown, hv.EventStopped},
	vm.Restart: {hv.EventStopped, hv.EventStarted},
	vm.Delete:  {hv.EventShutdown, hv.EventStopped, hv.EventUndefined},
}

// newOwnEvents expects the events of what rep did, from now.
func newOwnEvents(rep vm.Report, now time.Time) ownEvents {
	o := ownEvents{until: now.Add(ownEventsFor)}
	for _, out := range rep.Outcomes {
		kinds := eventsOf[out.Action]
		if out.Result != plan.Done || out.Target == "" || len(kinds) == 0 {
			continue
		}
		if o.want == nil {
			o.want = map[string]map[hv.EventKind]int{}
		}
		if o.want[out.Target] == nil {
			o.want[out.Target] = map[hv.EventKind]int{}
		}
		for _, k := range kinds {
			o.want[out.Target][k]++
		}
	}
	return o
}

// consume reports whether ev is one of the expected events, and if so
// expects it once less.
func (o *ownEvents) consume(ev hv.Event, now time.Time) bool {
	if now.After(o.until) || o.want[ev.Domain][ev.Kind] == 0 {
		return false
	}
	o.want[ev.Domain][ev.Kind]--
	return true
}

// iterate runs one reconcile; fetch says whether to ask the source first.
// It records the status the API serves and tells OnIteration, and returns
// the events its own VM actions will cause.
func (a *Agent) iterate(ctx context.Context, fetch bool) ownEvents {
	a.mu.Lock()
	defer a.mu.Unlock()
	start := time.Now()
	n, err := a.node.Load(), error(nil)
	it := Iteration{Start: start, Fetched: fetch || n == nil}
	if it.Fetched {
		n, err = a.current(ctx)
		if fe := a.track.status().Source.FetchError; fe != "" {
			it.FetchErr = errors.New(fe)
		}
		it.Refused = a.track.lastRefusal()
	}
	if n == nil {
		a.log.Error("reconcile", "err", err, "took", time.Since(start).Round(time.Millisecond))
		a.track.event(status.Warning, "ReconcileFailed", "", err.Error())
		a.tell(it, err)
		return ownEvents{}
	}
	// Apply binds the VMs again when the node's resources changed.
	nr := a.Apply(ctx, n)
	own := newOwnEvents(nr.VMs, time.Now())
	own.mine = domainsOf(nr.Plan.VMs, nr.Plan.State)
	it.Status = a.record(n, nr, start)
	it.Stages = map[string]time.Duration{}
	for stage, d := range nr.Took {
		it.Stages[string(stage)] = d
	}
	done := nr.VMs.Count(plan.Done)
	if err := nr.Err(); err != nil {
		a.log.Error("reconcile", "revision", n.Revision, "err", err, "took", time.Since(start).Round(time.Millisecond))
		a.tell(it, err)
		return own
	}
	if a.cfg.Backup != nil {
		if err := a.cfg.Backup(); err != nil {
			a.log.Error("back up the state database", "err", err)
		}
	}
	if done > 0 {
		a.log.Info("reconciled", "revision", n.Revision, "actions", done, "took", time.Since(start).Round(time.Millisecond))
	}
	a.tell(it, nil)
	return own
}

// tell hands an iteration to OnIteration.
func (a *Agent) tell(it Iteration, err error) {
	it.Took, it.Err = time.Since(it.Start), err
	if a.cfg.OnIteration != nil {
		a.cfg.OnIteration(it)
	}
}

// PlanNow plans the node as last loaded (loading it when nothing was)
// without changing anything, between two reconciles: what `plan` and
// `drift` show beside a running agent.
func (a *Agent) PlanNow(ctx context.Context) (*Node, NodePlan, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.node.Load()
	if n == nil {
		var err error
		if n, err = a.Load(ctx); err != nil {
			return nil, NodePlan{}, err
		}
	}
	// Asked for by hand (plan, drift): every document read anew.
	a.forgetDefinitions()
	np, err := a.Plan(ctx, n)
	return n, np, err
}

// Reconcile asks a running loop to fetch the source and apply now (a
// webhook, the API); it never blocks, and calls made while one is pending
// fold into it.
func (a *Agent) Reconcile() {
	select {
	case a.fetchNow <- struct{}{}:
	default:
	}
}

// ProgressInterval is how often Settle reports progress.
const ProgressInterval = 500 * time.Millisecond

// Settle finishes what rep (an Apply of n) started: it waits for the
// imports rep started and any still running, then applies n again so the
// VMs waiting for them start, as Run does when an import ends, until no
// import runs. progress, if set, sees every import waited for about every
// ProgressInterval and once more when it ends. It returns the last Apply's
// report (rep when nothing ran) and an error naming each import that
// failed, or, when ctx ends first, each one still running: a cancelled
// import stays in progress in the state and the next run resumes it.
func (a *Agent) Settle(ctx context.Context, n *Node, rep NodeReport, progress func([]storage.ImportProgress)) (NodeReport, error) {
	if a.storage == nil {
		return rep, nil
	}
	var keys []string
	seen := map[string]bool{}
	track := func(ks ...string) {
		for _, k := range ks {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	track(rep.Storage.Imports()...)
	report := func() []storage.ImportProgress {
		imps := a.storage.Imports(keys)
		for _, p := range imps {
			track(p.Claim)
		}
		if progress != nil && len(imps) > 0 {
			progress(imps)
		}
		return imps
	}
	tick := time.NewTicker(ProgressInterval)
	defer tick.Stop()
	for a.storage.Running() {
		select {
		case <-ctx.Done():
			var running []string
			for _, p := range report() {
				if p.Running {
					running = append(running, fmt.Sprintf("import %s at %.0f%%", p.Claim, p.Progress))
				}
			}
			return rep, fmt.Errorf("gave up waiting: %s still running (it resumes on the next apply or run): %w", strings.Join(running, ", "), ctx.Err())
		case <-tick.C:
			report()
		case <-a.kick:
			// An import ended: start what waited for it, as Run does.
			report()
			rep = a.Apply(ctx, n)
			track(rep.Storage.Imports()...)
		}
	}
	imps := report()
	if len(keys) > 0 {
		// The last import may have ended between the last Apply and now.
		select {
		case <-a.kick:
		default:
		}
		rep = a.Apply(ctx, n)
	}
	return rep, storage.ImportsErr(imps)
}

// undecrypted reports whether some SOPS-encrypted document of set could not
// be decrypted.
func undecrypted(set *manifests.Set) bool {
	if set == nil {
		return false
	}
	for _, d := range set.Diags {
		if errors.Is(d, manifests.ErrEncrypted) {
			return true
		}
	}
	return false
}
