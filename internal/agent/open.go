package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodevirt/nodevirt/internal/nodedesc"
	"github.com/nodevirt/nodevirt/internal/secrets"
	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/nodeconfig"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/host"
	"github.com/nodevirt/nodevirt/reconciler/snapshot"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/clone"
	"github.com/nodevirt/nodevirt/runtime/disks"
	"github.com/nodevirt/nodevirt/runtime/hostfacts"
	"github.com/nodevirt/nodevirt/runtime/hostfs"
	"github.com/nodevirt/nodevirt/runtime/importer"
	"github.com/nodevirt/nodevirt/runtime/kargs"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
	"github.com/nodevirt/nodevirt/runtime/loop"
	"github.com/nodevirt/nodevirt/runtime/selinux"
	"github.com/nodevirt/nodevirt/runtime/statedb"
	"github.com/nodevirt/nodevirt/runtime/systemd"
	"github.com/nodevirt/nodevirt/runtime/volumes"
	"github.com/nodevirt/nodevirt/source"
)

// Stages say which of the node's stages a run opens, in the order an
// iteration applies them: host configuration, storage, VMs.
type Stages struct {
	Host, Storage, VMs bool
}

// AllStages is what the agent, plan, apply, drift and the demo open.
var AllStages = Stages{Host: true, Storage: true, VMs: true}

// OpenConfig is everything Open needs to open a node's runtime: where
// things are, which policy applies and which stages to open. It is plain
// data; cmd/nodevirt fills it from its flags.
type OpenConfig struct {
	// Source is where the manifests come from. Open picks its WorkDir:
	// <StateDir>/source, or a scratch directory for a read-only run beside
	// a process that holds the state.
	Source   source.Options
	StateDir string
	// Root is the host root under which host paths are read and written.
	Root       string
	LibvirtURI string
	// DomainType is auto, kvm or qemu.
	DomainType string
	Node       string
	// Namespace is given to objects that name none.
	Namespace string
	// CPUManager enables the node's CPU-manager pool (all host CPUs but
	// ReservedCPUs, a kernel CPU list).
	CPUManager   bool
	ReservedCPUs string
	// AllowedHostDirs hold the host files VMs may use as disks and images;
	// AllowedRoots are where PersistentVolume paths may lie.
	AllowedHostDirs []string
	AllowedRoots    []string
	// AllowedBlockDevices are host block devices, or patterns of them,
	// that Block PersistentVolumes may name (loop devices need none).
	AllowedBlockDevices []string
	SecretsDir          string
	// AgeKeyFile holds the age identities that decrypt SOPS-encrypted
	// manifests.
	AgeKeyFile string
	// ReportDifferences adds a warning per VM for each way its guest sees
	// other hardware than under KubeVirt (validate asks for them; the
	// reconcile loop does not repeat them every pass).
	ReportDifferences bool
	// DiagnosticsOnly renders VMs for their diagnostics alone, without
	// domain XML (validate); nothing may plan or apply such a rendering.
	DiagnosticsOnly bool

	SelfHeal        bool
	AllowReboot     bool
	AllowPruneAll   bool
	PruneGuardShare float64
	// ParallelVMs is how many VMs an apply works on at once (vm.Config's
	// Parallel).
	ParallelVMs int

	// Interval, DriftInterval, EventDebounce and Ready are the loop's (see
	// Config).
	Interval, DriftInterval, EventDebounce time.Duration
	Ready                                  func()
	OnIteration                            func(Iteration)
	Log                                    *slog.Logger
	// NodeLease is how long another node's status report holds the VMs it
	// runs (desired.Options.NodeLease).
	NodeLease time.Duration
	// PKIDir holds the agent's CA, which signs the client certificate a
	// volume that moved here is pulled with; "" pulls none.
	PKIDir string

	// Lock takes the state database's exclusive lock before anything is
	// fetched or observed, held until Close: every run that changes the
	// host, and every one that opens storage or VMs, takes it.
	Lock   bool
	Stages Stages
	// Hypervisor connects to libvirt even when no stage needs it (node
	// describe); a failure then is kept in Runtime.HypervisorErr.
	Hypervisor bool
	// RenderAsApply makes a run without the lock render VMs as apply
	// would define them (render domain): the domain type libvirt picks,
	// and CPU pins, host devices and claim disks read from the state
	// database opened read-only, or allocated as for a fresh state while
	// another process holds it (said once in the log).
	RenderAsApply bool
}

// Runtime is one run's opened node: the agent and the pieces it was built
// from. A stage that was not opened is nil. Close releases them in reverse
// order, the state lock last.
type Runtime struct {
	Agent  *Agent
	Source source.Source
	Facts  hostfacts.Facts
	// Virtiofsd is the host's virtiofsd ("" when not installed), for
	// virtiofs filesystems; HostNUMA its NUMA nodes, for guest NUMA.
	Virtiofsd string
	HostNUMA  []hostfacts.NUMANode
	// NoDirectIO are the state's disk directories whose filesystem
	// refuses O_DIRECT.
	NoDirectIO []string
	// DB is the state database, open (and locked) when OpenConfig.Lock.
	DB *statedb.DB
	// HV is the libvirt connection; HypervisorErr says why it is nil when
	// it was asked for without a stage that needs it.
	HV            *virt.Driver
	HypervisorErr error
	Disks         *disks.Store
	VMs           *vm.Reconciler
	Host          *host.Reconciler
	Storage       *storage.Manager
	// Snapshots takes and restores offline VM snapshots; it opens with
	// storage and libvirt, whose claims and domains it needs.
	Snapshots *snapshot.Manager
	// DomainType is the domain type VMs are defined with (kvm or qemu).
	DomainType string
	// Notes are what a read-only run should tell its user about how it
	// rendered (libvirt not answering, allocations not readable); the
	// command prints them.
	Notes []string

	cfg    OpenConfig
	closer []func() error
}

// Close releases everything Open opened, in reverse order: the state lock
// outlives everything that writes.
func (r *Runtime) Close() {
	for i := len(r.closer) - 1; i >= 0; i-- {
		_ = r.closer[i]()
	}
	r.closer = nil
}

func (r *Runtime) onClose(f func() error) { r.closer = append(r.closer, f) }

// Fetch fetches the source and renders this revision for the node.
func (r *Runtime) Fetch(ctx context.Context) (source.Snapshot, *Node, error) {
	snap, err := r.Source.Fetch(ctx)
	if err != nil {
		return snap, nil, err
	}
	cfg, _ := r.Agent.renderConfig()
	n, err := Render(ctx, snap, cfg)
	return snap, n, err
}

// StateLockedError is the state lock refused (statedb.ErrLocked), said for
// the operator: which directory, and what to do.
type StateLockedError struct {
	Dir string
	Err error
}

func (e *StateLockedError) Error() string {
	return fmt.Sprintf("another nodevirt holds the state directory %s: stop it or use another --state", e.Dir)
}

func (e *StateLockedError) Unwrap() error { return e.Err }

// Open opens the pieces cfg asks for in dependency order: the state lock,
// the source and host facts, libvirt and the disk store, then the host
// reconciler, the storage manager (which asks libvirt whether a domain uses
// a disk before it deletes one, and tells the agent when an import ends),
// the VM reconciler (which reads the claims' disks from storage) and the
// agent over them.
func Open(ctx context.Context, cfg OpenConfig) (*Runtime, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	rt := &Runtime{cfg: cfg}
	ok := false
	defer func() {
		if !ok {
			rt.Close()
		}
	}()
	if cfg.Lock {
		db, err := lockState(cfg.StateDir)
		if err != nil {
			return nil, err
		}
		rt.DB = db
		rt.onClose(db.Close)
	}
	if err := rt.openSource(); err != nil {
		return nil, err
	}
	var err error
	if rt.Facts, err = hostfacts.Gather(cfg.Root); err != nil {
		return nil, fmt.Errorf("host facts: %w", err)
	}
	rt.Virtiofsd = hostfacts.Virtiofsd(cfg.Root)
	if rt.HostNUMA, err = hostfacts.NUMANodes(cfg.Root); err != nil {
		// Only guest NUMA needs the topology; the converter says so for
		// the VMs that ask for it.
		cfg.Log.Warn("host NUMA topology unknown", "err", err)
	}
	// cache=none needs O_DIRECT where the disks are; the converter picks
	// writethrough where the filesystem refuses it, as KubeVirt does.
	// hostDisk files lie in the allowed host directories, which the domain
	// names under the root.
	diskDirs := []string{filepath.Join(cfg.StateDir, "disks"), filepath.Join(cfg.StateDir, "volumes")}
	for _, d := range cfg.AllowedHostDirs {
		diskDirs = append(diskDirs, filepath.Join(cfg.Root, d))
	}
	if rt.NoDirectIO, err = hostfacts.NoDirectIO("", diskDirs...); err != nil {
		cfg.Log.Warn("O_DIRECT support of the state directory unknown; disks get cache none", "err", err)
	}
	if err := rt.openHypervisor(ctx); err != nil {
		return nil, err
	}
	kick := make(chan struct{}, 1)
	if cfg.Stages.Host {
		if err := rt.openHost(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.Stages.Storage {
		if err := rt.openStorage(kick); err != nil {
			return nil, err
		}
		if err := rt.openSnapshots(); err != nil {
			return nil, err
		}
	}
	if cfg.Stages.VMs {
		if rt.Disks, err = disks.New(cfg.StateDir, filepath.Join(cfg.StateDir, "images")); err != nil {
			return nil, err
		}
		rt.VMs = rt.newReconciler()
	}
	ac := rt.agentConfig()
	if cfg.RenderAsApply {
		if ac.Resources, err = rt.readOnlyResources(ac.Resources); err != nil {
			return nil, err
		}
	}
	if rt.DB != nil {
		ac.Backup = rt.DB.Backup
	}
	var h vm.Hypervisor
	if rt.VMs != nil {
		h = rt.HV
	}
	rt.Agent = newAgent(ac, rt.Source, rt.VMs, h, kick)
	rt.Agent.host, rt.Agent.storage, rt.Agent.snapshots = rt.Host, rt.Storage, rt.Snapshots
	rt.openHotplug()
	if rt.DB != nil {
		rt.Agent.state = rt.DB
	}
	ok = true
	return rt, nil
}

// lockState opens the state database, creating the state directory. Its
// exclusive lock is held until the database is closed, so no command that
// changes the host runs beside an agent (or another such command) on the
// same state, and a second one fails at once instead of undoing the first
// one's work.
func lockState(dir string) (*statedb.DB, error) {
	// QEMU runs as its own user and must traverse the state directory to
	// reach disks (libvirt chowns the files themselves); 0711 lets it pass
	// through without listing anything.
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	db, err := statedb.Open(filepath.Join(dir, "state.db"))
	if errors.Is(err, statedb.ErrLocked) {
		return nil, &StateLockedError{Dir: dir, Err: err}
	}
	return db, err
}

// openSource opens the source. Git checkouts live in <state>/source, which
// only one process may use: a run without the lock beside a process that
// holds it clones into a directory of its own instead, so it never removes
// the other's checkouts.
func (rt *Runtime) openSource() error {
	so := rt.cfg.Source
	so.WorkDir = filepath.Join(rt.cfg.StateDir, "source")
	if rt.DB == nil {
		// A lock that cannot be checked (a state directory this user may
		// not read) counts as held: the scratch directory is always safe.
		held, err := statedb.Held(filepath.Join(rt.cfg.StateDir, "state.db"))
		if held || err != nil {
			dir, err := os.MkdirTemp("", "nodevirt-source-")
			if err != nil {
				return fmt.Errorf("scratch directory for the source: %w", err)
			}
			so.WorkDir = dir
			rt.onClose(func() error { return os.RemoveAll(dir) })
		}
	}
	src, err := source.Open(so)
	if err != nil {
		return fmt.Errorf("open source: %w", err)
	}
	rt.Source = src
	return nil
}

// openHypervisor connects to libvirt: the VM stage needs it, storage asks
// it which disks domains use, node describe which devices they hold, and a
// render as apply would asks it for the domain type. It then decides the
// domain type, which every run renders with.
func (rt *Runtime) openHypervisor(ctx context.Context) error {
	st, c := rt.cfg.Stages, rt.cfg
	if st.VMs || st.Storage || c.Hypervisor || c.RenderAsApply {
		d, err := virt.Open(ctx, c.LibvirtURI)
		switch {
		case err == nil:
			rt.HV = d
			rt.onClose(d.Close)
		case st.VMs:
			return fmt.Errorf("connect to libvirt %s: %w", c.LibvirtURI, err)
		default:
			rt.HypervisorErr = fmt.Errorf("connect to libvirt %s: %w", c.LibvirtURI, err)
		}
	}
	var probe func() (string, error)
	if rt.HV != nil && (st.VMs || c.RenderAsApply) {
		probe = func() (string, error) { return rt.HV.DomainType(ctx, rt.Facts.Arch) }
	} else if c.RenderAsApply && (c.DomainType == "auto" || c.DomainType == "") {
		rt.Notes = append(rt.Notes, fmt.Sprintf("%v: --domain-type auto is decided from the host alone", rt.HypervisorErr))
	}
	dt, err := hostfacts.ChooseDomainType(c.DomainType, rt.Facts, probe)
	if err != nil {
		return err
	}
	rt.DomainType = dt.Type
	if w := dt.Warning(); w != "" {
		// Once per run: apply-like runs log it, render tells its user.
		switch {
		case st.VMs:
			c.Log.Warn(w, "libvirt", c.LibvirtURI)
		case c.RenderAsApply:
			rt.Notes = append(rt.Notes, w)
		}
	}
	return nil
}

// readOnlyResources completes res so that a run without the lock binds VMs
// as apply would: the allocations and claim bindings persisted in the state
// database, opened read-only. While another process holds the database it
// cannot be read: resources are then allocated as for a fresh state.
func (rt *Runtime) readOnlyResources(res Resources) (Resources, error) {
	c := rt.cfg
	path := filepath.Join(c.StateDir, "state.db")
	var kv *statedb.DB
	held, err := statedb.Held(path)
	if err == nil && !held {
		kv, err = statedb.OpenReadOnly(path)
		if errors.Is(err, fs.ErrNotExist) {
			err = nil // no state yet: a fresh plan
		}
		if errors.Is(err, statedb.ErrLocked) {
			held, err = true, nil
		}
	}
	if err != nil {
		return res, err
	}
	if held {
		rt.Notes = append(rt.Notes, fmt.Sprintf("a running nodevirt holds the state directory %s: CPU pins, host devices and claim disks are allocated as for a fresh state, not read from it", c.StateDir))
	}
	if kv == nil {
		// The storage manager plans against records: an empty database in
		// a scratch directory has none, as a fresh state.
		dir, err := os.MkdirTemp("", "nodevirt-render-")
		if err != nil {
			return res, fmt.Errorf("scratch state for render: %w", err)
		}
		rt.onClose(func() error { return os.RemoveAll(dir) })
		if kv, err = statedb.Create(filepath.Join(dir, "state.db")); err != nil {
			return res, err
		}
	}
	rt.onClose(kv.Close)
	res.Allocations = func() (map[string]domain.Pinning, map[string][]domain.AssignedDevice, error) {
		return vm.Allocations(kv)
	}
	m, err := rt.newStorageManager(kv, func(string) bool { return true }, func(string) bool { return true }, nil)
	if err != nil {
		return res, err
	}
	rt.onClose(func() error { m.Close(); return nil })
	res.Storage = m
	return res, nil
}

// openHost wires the runtime drivers of Root into the host reconciler; the
// record and backups live in <state>/host.
func (rt *Runtime) openHost(ctx context.Context) error {
	c := rt.cfg
	stateDir := filepath.Join(c.StateDir, "host")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("host state directory: %w", err)
	}
	run := hostfs.Exec{Root: c.Root}
	units := systemd.Open(ctx, c.Root)
	rt.onClose(func() error { units.Close(); return nil })
	rt.Host = host.New(host.Config{SelfHeal: c.SelfHeal, AllowReboot: c.AllowReboot, AllowPruneAll: c.AllowPruneAll,
		PruneGuardShare: c.PruneGuardShare, Log: c.Log}, host.Deps{
		Files:   hostfs.New(c.Root),
		State:   hostfs.New(stateDir),
		Units:   units,
		Kargs:   kargs.Detect(c.Root, run),
		Devices: PCIDevices(c.Root, run),
		SELinux: selinux.New(c.Root),
	})
	return nil
}

// openStorage wires the runtime packages to the storage manager. Its
// records live in the state database, so storage opens only with the lock.
// A disk is in use when a domain's definition names it (libvirt is asked
// each time); when libvirt cannot be reached every disk counts as in use,
// so storage deletes none. An import that ends kicks the agent, so the VM
// waiting for it starts without waiting for a poll.
func (rt *Runtime) openStorage(kick chan struct{}) error {
	c := rt.cfg
	if rt.DB == nil {
		return errors.New("storage needs the state lock")
	}
	inUse := func(string) bool { return true }
	running := inUse
	if rt.HV != nil {
		ask := func(uses func(context.Context, string) (bool, error)) func(string) bool {
			return func(path string) bool {
				used, err := uses(context.Background(), path)
				if err != nil {
					c.Log.Warn("cannot tell whether a domain uses a disk; keeping it", "path", path, "err", err)
					return true
				}
				return used
			}
		}
		inUse, running = ask(rt.HV.InUse), ask(rt.HV.RunningUses)
	} else {
		c.Log.Warn("libvirt is unreachable: storage deletes no disk, since it cannot tell which ones domains use", "err", rt.HypervisorErr)
	}
	m, err := rt.newStorageManager(rt.DB, inUse, running, func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return err
	}
	rt.Storage = m
	rt.onClose(func() error { m.Close(); return nil })
	return nil
}

// openSnapshots builds the snapshot stage over the storage manager's
// claims, libvirt's domains and the state database. Without libvirt it is
// not opened: whether a VM is stopped cannot be known, and a copy of a
// running VM's disk would not be consistent.
func (rt *Runtime) openSnapshots() error {
	if rt.HV == nil || rt.Storage == nil || rt.DB == nil {
		return nil
	}
	m, err := snapshot.New(snapshot.Config{StateDir: rt.cfg.StateDir, AllowPruneAll: rt.cfg.AllowPruneAll, Log: rt.cfg.Log,
		TPMStateDir: rt.HV.TPMStateDir},
		clone.Files{}, rt.HV, rt.Storage, rt.DB)
	if err != nil {
		return fmt.Errorf("snapshot records: %w", err)
	}
	rt.Snapshots = m
	return nil
}

// newStorageManager builds a storage manager over the runtime packages and
// the records in kv.
func (rt *Runtime) newStorageManager(kv storage.KV, inUse, running func(string) bool, onChange func()) (*storage.Manager, error) {
	c := rt.cfg
	return storage.NewManager(storage.Config{
		Root:          c.Root,
		StateDir:      c.StateDir,
		AllowedRoots:  c.AllowedRoots,
		SelfHeal:      c.SelfHeal,
		AllowPruneAll: c.AllowPruneAll,
		InUse:         inUse,
		Running:       running,
		OnChange:      onChange,
		Log:           c.Log,
		MovedFrom:     rt.movedFrom,
		Released:      rt.released,
	}, importerAdapter{im: importer.New(importer.Config{Log: c.Log}), pull: rt.pullDisk}, loopAdapter{loop.New()}, volumes.Files{},
		secrets.Dir{Dir: c.SecretsDir}, kv)
}

// newReconciler builds the VM stage over libvirt, the disk store, the state
// database and the storage manager built before it.
func (rt *Runtime) newReconciler() *vm.Reconciler {
	c := rt.cfg
	return vm.New(vm.Config{
		Arch:            rt.Facts.Arch,
		DomainType:      rt.DomainType,
		AllowPruneAll:   c.AllowPruneAll,
		PruneGuardShare: c.PruneGuardShare,
		Parallel:        c.ParallelVMs,
		SelfHeal:        c.SelfHeal,
		DiskDir:         filepath.Join(c.StateDir, "disks"),
		Log:             c.Log,
		FreeHugepages:   func() (map[int64]int64, error) { return hostfacts.FreeHugepages(c.Root) },
	}, rt.HV, rt.Disks, rt.DB)
}

// permittedDevices lists, per resource the HyperConverged permits, the PCI
// devices under root that VMs can be given (matching and bound to vfio-pci).
func permittedDevices(root string, hc *nodeconfig.HostConfig) (map[string][]string, error) {
	if hc == nil || len(hc.PCI) == 0 {
		return nil, nil
	}
	devs, err := PCIDevices(root, hostfs.Exec{Root: root}).List()
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, r := range host.Resources(hc, devs, host.Record{}) {
		addrs := []string{}
		for _, d := range r.Allocatable {
			addrs = append(addrs, d.Address)
		}
		out[r.Name] = addrs
	}
	return out, nil
}

// agentConfig is the loop's policy, the converter's layout of the host and
// what the node can give VMs: its CPU-manager pool and the PCI devices the
// host configuration permits (allocations and claim bindings are the
// agent's reconciler's and storage manager's).
func (rt *Runtime) agentConfig() Config {
	c := rt.cfg
	var res Resources
	if c.CPUManager {
		res.CPUPool = func() ([]uint, error) { return hostfacts.CPUManagerPool(c.Root, c.ReservedCPUs) }
	}
	res.Devices = func(hc *nodeconfig.HostConfig) (map[string][]string, error) { return permittedDevices(c.Root, hc) }
	return Config{
		Resources:     res,
		Interval:      c.Interval,
		DriftInterval: c.DriftInterval,
		EventDebounce: c.EventDebounce,
		Ready:         c.Ready,
		OnIteration:   c.OnIteration,
		Desired:       rt.desiredOptions(),
		Manifests: manifests.Options{DefaultNamespace: c.Namespace, StateDir: stateUnderRoot(c.Root, c.StateDir),
			Decrypt: (&secrets.Decryptor{KeyFile: c.AgeKeyFile}).Decrypt},
		CPUVendor: nodedesc.CPUInfo(c.Root).Vendor,
		Log:       c.Log,

		AllowedBlockDevices: c.AllowedBlockDevices,
	}
}

// desiredOptions lays out the host for the converter, with the domain type
// openHypervisor decided.
func (rt *Runtime) desiredOptions() desired.Options {
	c, typ := rt.cfg, rt.DomainType
	var labels map[string]string
	if c.CPUManager {
		// KubeVirt schedules dedicatedCpuPlacement onto nodes labelled so.
		labels = map[string]string{"cpumanager": "true"}
	}
	return desired.Options{
		Node:       c.Node,
		NodeLabels: labels,
		NodeLease:  c.NodeLease,
		Secrets:    secrets.Dir{Dir: c.SecretsDir},
		// validate reads diagnostics only.
		DiagnosticsOnly: c.DiagnosticsOnly,
		Context: domain.Context{
			Type:      typ,
			Arch:      rt.Facts.Arch,
			DiskDir:   filepath.Join(c.StateDir, "disks"),
			VolumeDir: filepath.Join(c.StateDir, "volumes"),
			Root:      c.Root,
			HostDirs:  c.AllowedHostDirs,
			// Looked up once: installing virtiofsd later needs a restart,
			// as a new libvirt daemon binary would.
			Virtiofsd:  rt.Virtiofsd,
			HostNUMA:   hostNUMA(rt.HostNUMA),
			NoDirectIO: rt.NoDirectIO,
			// Only validate reports them, once per run.
			ReportDifferences: c.ReportDifferences,
		},
	}
}

// hostNUMA hands the host's NUMA nodes to the converter.
func hostNUMA(nodes []hostfacts.NUMANode) []domain.NUMANode {
	out := make([]domain.NUMANode, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, domain.NUMANode{ID: n.ID, CPUs: n.CPUs})
	}
	return out
}

// stateUnderRoot is the state directory as a host path under root, or ""
// when it lies outside the root (then no manifest path can reach it).
func stateUnderRoot(root, state string) string {
	if root == "" {
		root = "/"
	}
	if abs, err := filepath.Abs(state); err == nil {
		state = abs
	}
	rel, err := filepath.Rel(filepath.Clean(root), state)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return ""
	}
	return filepath.Join("/", rel)
}
