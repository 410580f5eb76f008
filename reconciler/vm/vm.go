package vm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodevirt/nodevirt/internal/pathelem"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/runtime/hv"
)

// Config is the operator's policy for this agent (not user intent, not state).
type Config struct {
	// AllowPruneAll confirms deletes the prune guard would hold.
	AllowPruneAll bool
	// PruneGuardShare: see Options.
	PruneGuardShare float64
	// SelfHeal undoes out-of-band changes; off, drift is only reported.
	SelfHeal bool
	// DiskDir is where per-VM disk artifacts live (DiskDir/<ns>/<name>).
	DiskDir string
	Log     *slog.Logger
	// Now is the clock (tests inject one); nil means time.Now.
	Now func() time.Time
	// FreeHugepages probes the host's free huge pages by size in KiB; nil
	// skips the check.
	FreeHugepages func() (map[int64]int64, error)
	// Arch and DomainType are what guest CPUs are compared for ("x86_64",
	// "kvm"); empty skips the CPU check.
	Arch, DomainType string
	// Parallel is how many VMs are defined and started at once; 0 means
	// DefaultParallel(), 1 one step at a time.
	Parallel int
}

// DefaultParallel is how many VMs an apply works on at once unless told:
// two per CPU, at most four. The guests an apply starts take CPU while they
// boot (under TCG, about a tenth of a CPU each), so later starts compete with
// them, and the scheduler gives four starts at once more of the CPUs than
// two. On the 2-vCPU machine it was measured on, four at once took 0.38 of
// sequential virsh for 20 new VMs and 0.53 for 100, two at once 0.57 and
// 0.91 (docs/performance.md, "Two starts per CPU"). The cap is the largest
// bound measured. Config.Parallel or --parallel-vms override it.
func DefaultParallel() int { return min(2*runtime.NumCPU(), 4) }

// Reconciler observes, plans and applies.
type Reconciler struct {
	cfg    Config
	hv     Hypervisor
	disks  Disks
	rec    records
	log    *slog.Logger
	fields *fieldMemo
	owners *ownerMemo
	starts *startBackoff
	// cpuVerdicts caches CPU comparisons by <cpu> XML: the host CPU does not
	// change while the agent runs.
	cpuVerdicts sync.Map
	hotplug     HotPluggedVolumes
	// paths serializes work on one host file across VMs applied in
	// parallel (an image cache entry, a host disk two VMs share).
	paths *pathLocks
}

// HotPluggedVolumes lists the volumes attached by hand to running VMs, by
// domain name.
type HotPluggedVolumes interface {
	HotPlugged() (map[string][]string, error)
}

// WithHotplug makes plans report the volumes h attached by hand, so drift
// shows them; nothing in the VM stage ever detaches them.
func (r *Reconciler) WithHotplug(h HotPluggedVolumes) *Reconciler { r.hotplug = h; return r }

// New wires a reconciler to its host.
func New(cfg Config, h Hypervisor, d Disks, kv KV) *Reconciler {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel()
	}
	return &Reconciler{cfg: cfg, hv: h, disks: d, rec: records{kv}, log: log, fields: &fieldMemo{}, owners: &ownerMemo{}, starts: &startBackoff{}, paths: &pathLocks{}}
}

// Planned is the VM stage's plan together with everything Apply needs: plain
// data, so a plan written as JSON and read back applies the same.
type Planned struct {
	Plan
	// VMs are the desired VMs the steps refer to, by domain name, bound to
	// this node's resources (CPU pins and devices persist at define).
	VMs map[string]*desired.VM `json:"vms"`
	// Observed are the domains as seen when planning, by name (a delete
	// reads its owner from them).
	Observed map[string]hv.Domain `json:"observed"`
	// Adopt are domains marked as ours that the source wants but the state
	// lacks (the agent died between define and its state write): Apply
	// records them so they are pruned, not orphaned, when they leave the source.
	Adopt []*desired.VM `json:"adopt,omitempty"`
}

// Plan observes the host and computes what to do for st.
func (r *Reconciler) Plan(ctx context.Context, st *desired.State) (*Planned, error) {
	doms, err := r.hv.Domains(ctx)
	if err != nil {
		return nil, fmt.Errorf("observe domains: %w", err)
	}
	started, err := r.rec.started()
	if err != nil {
		return nil, err
	}
	inventory, err := r.rec.inventory()
	if err != nil {
		return nil, err
	}
	requests, err := r.rec.runRequests()
	if err != nil {
		return nil, err
	}
	opt := Options{
		AllowPruneAll:   r.cfg.AllowPruneAll || st.AllowPruneAll,
		PruneGuardShare: r.cfg.PruneGuardShare,
		Started:         started,
		Inventory:       inventory,
		Requests:        requests,
		Missing:         map[string]bool{},
		LastGood:        map[string]*desired.VM{},
		Fields:          r.fields.compare,
		Owner:           r.owners.ownerOf,
	}
	if r.cfg.FreeHugepages != nil {
		if opt.FreeHugepages, err = r.cfg.FreeHugepages(); err != nil {
			return nil, fmt.Errorf("read free huge pages: %w", err)
		}
	}
	// Node resources (CPU pins, host devices, claim disks) are bound in
	// st already, before conversion; what could not be bound says why here.
	unsched := map[string]string{}
	for _, vm := range st.VMs {
		if vm.Unschedulable != "" {
			unsched[vm.DomainName] = vm.Unschedulable
		}
	}
	for name, why := range r.checkCPUs(ctx, st.VMs) {
		unsched[name] = why
	}
	opt.Unschedulable = unsched
	for name := range st.Invalid {
		rc, err := r.rec.get(name)
		if err != nil {
			return nil, err
		}
		if rc != nil && rc.VM != nil {
			opt.LastGood[name] = rc.VM
		}
	}
	vms := map[string]*desired.VM{}
	for _, vm := range st.VMs {
		vms[vm.DomainName] = vm
	}
	for name, vm := range opt.LastGood {
		vms[name] = vm
	}
	for _, vm := range vms {
		for _, a := range vm.Artifacts {
			if (a.Kind == domain.Claim || a.Kind == domain.SharedDir) && !r.disks.Exists(a.Path) {
				opt.Missing[a.Path] = true
			}
		}
	}
	obs := make(map[string]hv.Domain, len(doms))
	for _, d := range doms {
		obs[d.Name] = d
	}
	var adopt []*desired.VM
	for name, vm := range vms {
		if d, ok := obs[name]; ok && !inventory[name] {
			if o, mine := r.owners.ownerOf(name, d.XML); mine && o.Namespace == vm.Namespace && o.Name == vm.Name {
				adopt = append(adopt, vm)
			}
		}
	}
	p := Diff(st, doms, opt)
	if err := r.noteHotPlugged(&p, vms); err != nil {
		return nil, err
	}
	r.fields.forget(obs)
	r.owners.forget(obs)
	return &Planned{Plan: p, VMs: vms, Observed: obs, Adopt: adopt}, nil
}

// checkCPUs returns, per domain, why the host cannot provide the VM's CPU.
func (r *Reconciler) checkCPUs(ctx context.Context, vms []*desired.VM) map[string]string {
	cmp, ok := r.hv.(CPUComparer)
	if !ok || r.cfg.Arch == "" || r.cfg.DomainType == "" {
		return nil
	}
	out := map[string]string{}
	for _, vm := range vms {
		if vm.CPUCheck == "" {
			continue
		}
		verdict, seen := r.cpuVerdicts.Load(vm.CPUCheck)
		if !seen {
			v := ""
			err := cmp.CompareCPU(ctx, r.cfg.Arch, r.cfg.DomainType, vm.CPUCheck)
			switch {
			case errors.Is(err, errors.ErrUnsupported):
				// The driver cannot tell; QEMU will, at start.
			case errors.Is(err, context.Canceled):
				continue
			case err != nil:
				v = err.Error()
			}
			r.cpuVerdicts.Store(vm.CPUCheck, v)
			verdict = v
		}
		if s := verdict.(string); s != "" {
			out[vm.DomainName] = s
		}
	}
	return out
}

// Report is the result of one Apply of the VM stage.
type Report struct {
	Revision string `json:"revision"`
	plan.Report
	// Unavailable counts the failed actions that failed because the
	// hypervisor could not be reached: observing and planning again once it
	// answers finishes them.
	Unavailable int `json:"-"`
}

// Err is non-nil when any action failed.
func (rp Report) Err() error {
	if rp.Failed == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d actions failed", rp.Failed, len(rp.Outcomes))
}

// vmOrder is the dependency order: define and start before deletes so a
// rename (delete old + create new) never leaves the node without the service.
var vmOrder = []plan.Action{Create, Update, AttachVolume, DetachVolume, Start, Restart, Stop, Delete}

// vmFences: with VMs applied in parallel, deletes still wait for every
// define, start and stop to end.
var vmFences = []plan.Action{Delete}

// Apply executes a plan. Every action runs even when an earlier one for
// another object failed; an object's later actions are skipped after its own
// failure (no start of a VM whose define failed). Up to Config.Parallel VMs
// apply at once, each VM's steps in order (its start right after its
// define); the report lists them in plan order.
func (r *Reconciler) Apply(ctx context.Context, p *Planned) Report {
	_ = r.rec.setMeta(keyLastAttempted, p.Revision)
	rep := r.apply(ctx, p, p.Actions)
	if rep.Failed == 0 {
		_ = r.rec.setMeta(keyLastApplied, p.Revision)
	}
	return rep
}

// ApplyTo applies only the steps of p for one domain (a start by hand of a
// VM not defined yet): the revision is not recorded as applied, since the
// other VMs' steps did not run.
func (r *Reconciler) ApplyTo(ctx context.Context, p *Planned, domain string) Report {
	var steps []plan.Step
	for _, a := range p.Actions {
		if a.Target == domain {
			steps = append(steps, a)
		}
	}
	return r.apply(ctx, p, steps)
}

func (r *Reconciler) apply(ctx context.Context, p *Planned, steps []plan.Step) Report {
	for _, vm := range p.Adopt {
		err := r.rec.put(vm.DomainName, &record{VM: vm})
		if err == nil && p.Observed[vm.DomainName].State.Active() {
			err = r.rec.markStarted(vm.DomainName)
		}
		if err != nil {
			r.log.Error("adopting domain into the inventory", "domain", vm.DomainName, "err", err)
		}
	}
	var unavailable atomic.Int64
	starts := func(a plan.Step) bool { return a.Action == Start || a.Action == Restart }
	rep := plan.Apply(ctx, steps, plan.Runner[plan.Step]{
		Order:    vmOrder,
		Object:   func(a plan.Step) string { return a.Target },
		SelfHeal: func(a plan.Step) bool { return r.selfHeal(p.VMs[a.Target]) },
		Wait: func(a plan.Step) string {
			if starts(a) && r.starts.waiting(a.Target, r.cfg.Now()) {
				return r.starts.reason(a.Target, r.cfg.Now())
			}
			return ""
		},
		Do: func(ctx context.Context, a plan.Step) (plan.Result, string, error) {
			err := r.do(ctx, a, p)
			lost := errors.Is(err, hv.ErrUnavailable)
			if starts(a) && !lost {
				// A start cut off by a lost hypervisor says nothing about
				// the VM: it is not held back when libvirtd returns.
				r.starts.record(a.Target, err, r.cfg.Now())
			}
			if lost {
				unavailable.Add(1)
			}
			return "", "", err
		},
		Log:      r.log,
		Parallel: r.cfg.Parallel,
		Fences:   vmFences,
	})
	return Report{Revision: p.Revision, Report: rep, Unavailable: int(unavailable.Load())}
}

// AwaitHypervisor returns once the hypervisor answers a listing of domains
// (the driver reconnects on the way), polling every interval, or with the
// last error when ctx ends first.
func (r *Reconciler) AwaitHypervisor(ctx context.Context, interval time.Duration) error {
	for {
		_, err := r.hv.Domains(ctx)
		if err == nil {
			return nil
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for the hypervisor: %w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

func (r *Reconciler) selfHeal(vm *desired.VM) bool {
	return r.cfg.SelfHeal && (vm == nil || vm.SelfHeal)
}

func (r *Reconciler) do(ctx context.Context, a plan.Step, p *Planned) error {
	vm := p.VMs[a.Target]
	switch a.Action {
	case Create, Update:
		if err := r.prepare(ctx, vm); err != nil {
			return err
		}
		if err := r.hv.Define(ctx, vm.XML); err != nil {
			return fmt.Errorf("define %s: %w", vm.DomainName, err)
		}
		if err := r.rememberCPUs(vm); err != nil {
			return err
		}
		if err := r.rememberDevices(vm); err != nil {
			return err
		}
		return r.remember(vm, false)
	case Start:
		if err := r.hv.Start(ctx, a.Target); err != nil {
			return fmt.Errorf("start %s: %w", a.Target, err)
		}
		return r.remember(vm, true)
	case Restart:
		if err := r.hv.Shutdown(ctx, a.Target, vm.GracePeriod); err != nil {
			return fmt.Errorf("restart %s: %w", a.Target, err)
		}
		if err := r.hv.Start(ctx, a.Target); err != nil {
			return fmt.Errorf("restart %s: %w", a.Target, err)
		}
		return r.remember(vm, true)
	case Stop:
		grace, err := r.grace(vm, a.Target)
		if err != nil {
			return err
		}
		if err := r.hv.Shutdown(ctx, a.Target, grace); err != nil {
			return fmt.Errorf("stop %s: %w", a.Target, err)
		}
		return nil
	case Delete:
		return r.delete(ctx, p.Observed[a.Target])
	case AttachVolume, DetachVolume:
		return r.doLive(ctx, a, vm)
	}
	return nil
}

// remember records the VM as last applied (the state an invalid manifest
// falls back to) and whether nodevirt has started it.
func (r *Reconciler) remember(vm *desired.VM, started bool) error {
	if started {
		return r.rec.markStarted(vm.DomainName)
	}
	return r.rec.put(vm.DomainName, &record{VM: vm})
}

// grace is the VM's termination grace period; a VM this revision does
// not render here (placed on another node, out of service) has the one
// last applied.
func (r *Reconciler) grace(vm *desired.VM, name string) (time.Duration, error) {
	if vm != nil {
		return vm.GracePeriod, nil
	}
	rc, err := r.rec.get(name)
	if err != nil {
		return 0, err
	}
	if rc != nil && rc.VM != nil {
		return rc.VM.GracePeriod, nil
	}
	return desired.DefaultGracePeriod, nil
}

func (r *Reconciler) delete(ctx context.Context, dom hv.Domain) error {
	name := dom.Name
	grace, err := r.grace(nil, name)
	if err != nil {
		return err
	}
	if err := r.hv.Shutdown(ctx, name, grace); err != nil {
		return fmt.Errorf("stop %s before delete: %w", name, err)
	}
	if err := r.hv.Undefine(ctx, name); err != nil {
		return fmt.Errorf("undefine %s: %w", name, err)
	}
	// Disks go only with their owning domain, and only nodevirt's own
	// per-VM directory: claims and host disks outlive the VM.
	// The owner comes from the domain's metadata, which anyone with libvirt
	// access can edit: a namespace or name that is not one clean path
	// element (say "..") would point the recursive remove at other VMs'
	// disks, so such a directory is refused, not removed.
	if o, ok := desired.OwnerOf(dom.XML); ok && o.Namespace != "" && o.Name != "" {
		dir, err := pathelem.Join(r.cfg.DiskDir, o.Namespace, o.Name)
		if err != nil {
			return fmt.Errorf("remove disks of %s: owner %s/%s: %w; nothing removed", name, o.Namespace, o.Name, err)
		}
		if err := r.disks.RemoveAll(ctx, dir); err != nil {
			return fmt.Errorf("remove disks of %s: %w", name, err)
		}
	}
	return r.rec.delete(name)
}

// ensureISO writes a seed or config image. An artifact read back from the
// state records lost its Secret's values (they are never stored, only their
// digest): the image written from them when they were there is the state,
// and it must still exist.
func (r *Reconciler) ensureISO(ctx context.Context, a domain.Artifact) error {
	if a.Digest != "" && a.SecretFiles == nil {
		if !r.disks.Exists(a.Path) {
			return fmt.Errorf("image %s was built from a Secret that is not available now", a.Path)
		}
		return nil
	}
	files := a.Files
	if len(a.SecretFiles) > 0 {
		files = make(map[string][]byte, len(a.Files)+len(a.SecretFiles))
		for k, b := range a.Files {
			files[k] = b
		}
		for k, b := range a.SecretFiles {
			files[k] = b
		}
	}
	if files == nil {
		// An optional ConfigMap or Secret that does not exist: an empty image.
		files = map[string][]byte{}
	}
	return r.disks.EnsureSeedISO(ctx, a.Path, a.Label, files)
}

// prepare makes every host file the VM's disks refer to.
func (r *Reconciler) prepare(ctx context.Context, vm *desired.VM) error {
	for _, a := range vm.Artifacts {
		if err := r.prepareOne(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// prepareOne makes one artifact's file, holding its path (and image) so a
// VM applied beside this one never builds the same file at the same time.
func (r *Reconciler) prepareOne(ctx context.Context, a domain.Artifact) error {
	keys := []string{a.Path}
	if a.Image != "" {
		keys = append(keys, "image "+a.Image)
	}
	unlock := r.paths.lock(keys...)
	defer unlock()
	var err error
	switch a.Kind {
	case domain.EmptyDisk:
		err = r.disks.EnsureQcow2(ctx, a.Path, a.Size)
	case domain.NoCloudISO, domain.ConfigDriveISO, domain.ConfigISO:
		err = r.ensureISO(ctx, a)
	case domain.ContainerDisk:
		var base, format string
		base, format, err = r.disks.ResolveImage(ctx, a.Image)
		if err == nil {
			err = r.disks.EnsureOverlay(ctx, a.Path, base, format)
		}
	case domain.HostDisk:
		if a.Create {
			err = r.disks.EnsureRaw(ctx, a.Path, a.Size)
		} else if !r.disks.Exists(a.Path) {
			err = fmt.Errorf("host disk %s does not exist", a.Path)
		}
	case domain.Claim:
		if !r.disks.Exists(a.Path) {
			err = fmt.Errorf("claim disk %s does not exist", a.Path)
		}
	case domain.KernelBoot:
		// No volume to name: the error names the kernel boot image.
		return r.disks.EnsureKernelBoot(ctx, a.Image, a.Path, a.KernelPath, a.InitrdPath)
	case domain.SharedDir:
		// The claim's directory, made by storage; virtiofsd shares it.
		if !r.disks.Exists(a.Path) {
			err = fmt.Errorf("shared directory %s of claim %s does not exist", a.Path, a.Claim)
		}
	default:
		err = errors.New("unknown artifact kind " + string(a.Kind))
	}
	if err != nil {
		return fmt.Errorf("volume %q: %w", a.Volume, err)
	}
	return nil
}

// Revisions returns the last applied and last attempted source revisions.
func (r *Reconciler) Revisions() (applied, attempted string, err error) {
	if applied, err = r.rec.meta(keyLastApplied); err != nil {
		return "", "", err
	}
	attempted, err = r.rec.meta(keyLastAttempted)
	return applied, attempted, err
}

// noteHotPlugged adds a HotPlugged step per volume attached by hand.
func (r *Reconciler) noteHotPlugged(p *Plan, vms map[string]*desired.VM) error {
	if r.hotplug == nil {
		return nil
	}
	hp, err := r.hotplug.HotPlugged()
	if err != nil {
		return fmt.Errorf("read hot-plugged volumes: %w", err)
	}
	domains := make([]string, 0, len(hp))
	for d := range hp {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	for _, d := range domains {
		obj := d
		if vm := vms[d]; vm != nil {
			obj = vm.Object
		}
		for _, v := range hp[d] {
			p.Actions = append(p.Actions, plan.Step{Stage: plan.StageVM, Action: HotPlugged, Object: obj, Target: d,
				Reason: fmt.Sprintf("volume %s: hot-plugged, not in the source", v)})
		}
	}
	return nil
}
