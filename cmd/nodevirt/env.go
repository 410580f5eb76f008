package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/reconciler"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/host"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/runtime/disks"
	"github.com/nodevirt/nodevirt/runtime/hostfacts"
	"github.com/nodevirt/nodevirt/runtime/hostfs"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
	"github.com/nodevirt/nodevirt/runtime/pci"
	"github.com/nodevirt/nodevirt/runtime/statedb"
	"github.com/nodevirt/nodevirt/source"
)

// env is everything one command run needs, opened from the flags.
type env struct {
	o     *options
	src   source.Source
	facts hostfacts.Facts
	hv    *virt.Driver
	disks *disks.Store
	db    *statedb.DB
	rec   *reconciler.Reconciler
	agent *agent.Agent
	// hostRec applies host configuration (files, units, kernel arguments).
	hostRec *host.Reconciler
	// storage provisions claims and imports DataVolumes.
	storage *storage.Manager
	// domainType is what the connected hypervisor runs ("kvm" or "qemu").
	domainType string
	closer     []func() error
}

func (e *env) Close() {
	for i := len(e.closer) - 1; i >= 0; i-- {
		_ = e.closer[i]()
	}
}

// sourceOptions: workDir holds the git checkouts.
func (o *options) sourceOptions(workDir string) (source.Options, error) {
	so := source.Options{
		URL:     o.source,
		Branch:  o.branch,
		Tag:     o.tag,
		Commit:  o.commit,
		Path:    o.path,
		WorkDir: workDir,
		Timeout: o.fetchTimeout,
		Auth: source.Auth{
			IdentityFile:   o.sshKeyFile,
			KnownHostsFile: o.knownHostsFile,
			CAFile:         o.caFile,
			Username:       o.username,
			PasswordFile:   o.passwordFile,
		},
	}
	return so, nil
}

// desiredOptions lays out the host for the converter. typ is the domain
// type openAll chose with the hypervisor; "" without one (render, validate):
// then the host facts decide, by the same rule.
func (o *options) desiredOptions(f hostfacts.Facts, typ string) (desired.Options, error) {
	if typ == "" {
		dt, err := hostfacts.ChooseDomainType(o.domainType, f, nil)
		if err != nil {
			return desired.Options{}, err
		}
		if w := dt.Warning(); w != "" {
			o.logger().Warn(w)
		}
		typ = dt.Type
	}
	var labels map[string]string
	if o.cpuManager {
		// KubeVirt schedules dedicatedCpuPlacement onto nodes labelled so.
		labels = map[string]string{"cpumanager": "true"}
	}
	return desired.Options{
		Node:       o.node,
		NodeLabels: labels,
		Context: domain.Context{
			Type:      typ,
			Arch:      f.Arch,
			DiskDir:   filepath.Join(o.stateDir, "disks"),
			VolumeDir: filepath.Join(o.stateDir, "volumes"),
			Root:      o.root,
			HostDirs:  o.allowedHostDirs,
		},
	}, nil
}

// agentConfig completes ac with what the flags and host facts decide.
func (o *options) agentConfig(f hostfacts.Facts, domainType string, ac agent.Config) (agent.Config, error) {
	var err error
	if ac.Desired, err = o.desiredOptions(f, domainType); err != nil {
		return ac, err
	}
	ac.Manifests = manifests.Options{DefaultNamespace: o.namespace, StateDir: o.stateUnderRoot()}
	ac.CPUVendor = cpuInfo(o.root).Vendor
	ac.Log = o.logger()
	return ac, nil
}

// stateUnderRoot is the state directory as a host path under --root, or ""
// when it lies outside the root (then no manifest path can reach it).
func (o *options) stateUnderRoot() string {
	root, state := o.root, o.stateDir
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

// openSource opens only the source and host facts, without the state
// lock: enough for validate, render and the read-only host commands.
func (o *options) openSource(ctx context.Context) (*env, error) {
	return o.openSourceWith(ctx, nil)
}

// openSourceWith opens the source and host facts. db is the state database
// the caller holds (from lockState; the caller closes it), or nil for a
// read-only command. Git checkouts live in <state>/source, which only one
// process may use: a read-only command beside an agent that holds the state
// clones into a directory of its own instead, so it never removes the
// agent's checkouts.
func (o *options) openSourceWith(ctx context.Context, db *statedb.DB) (*env, error) {
	for _, d := range o.allowedHostDirs {
		if !filepath.IsAbs(d) || filepath.Clean(d) == "/" {
			return nil, fmt.Errorf("--allowed-host-dirs %q: want an absolute directory other than /", d)
		}
	}
	e := &env{o: o, db: db}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	workDir := filepath.Join(o.stateDir, "source")
	if db == nil {
		// A lock that cannot be checked (a state directory this user may
		// not read) counts as held: the scratch directory is always safe.
		held, err := statedb.Held(filepath.Join(o.stateDir, "state.db"))
		if held || err != nil {
			if workDir, err = os.MkdirTemp("", "nodevirt-source-"); err != nil {
				return nil, fmt.Errorf("scratch directory for the source: %w", err)
			}
			e.closer = append(e.closer, func() error { return os.RemoveAll(workDir) })
		}
	}
	so, err := o.sourceOptions(workDir)
	if err != nil {
		return nil, err
	}
	if e.src, err = source.Open(so); err != nil {
		return nil, fmt.Errorf("open source: %w", err)
	}
	if e.facts, err = hostfacts.Gather(o.root); err != nil {
		return nil, fmt.Errorf("host facts: %w", err)
	}
	ok = true
	return e, nil
}

// load fetches the source and renders the desired state once.
func (e *env) load(ctx context.Context) (source.Snapshot, *manifests.Set, *desired.State, error) {
	snap, err := e.src.Fetch(ctx)
	if err != nil {
		return snap, nil, nil, err
	}
	ac, err := e.o.agentConfig(e.facts, e.domainType, agent.Config{})
	if err != nil {
		return snap, nil, nil, err
	}
	r, err := agent.Render(snap, ac)
	if err != nil {
		return snap, nil, nil, err
	}
	return snap, r.Set, r.State, nil
}

// openAll opens the source, libvirt, the disk store and the state database.
func (o *options) openAll(ctx context.Context, selfHeal bool, ac agent.Config) (*env, error) {
	db, err := o.lockState()
	if err != nil {
		return nil, err
	}
	e, err := o.openSourceWith(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	// Closed last: the lock outlives everything that writes.
	e.closer = append([]func() error{db.Close}, e.closer...)
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	if e.disks, err = disks.New(o.stateDir, filepath.Join(o.stateDir, "images")); err != nil {
		return nil, err
	}
	if e.hv, err = virt.Open(ctx, o.libvirtURI); err != nil {
		return nil, fmt.Errorf("connect to libvirt %s: %w", o.libvirtURI, err)
	}
	e.closer = append(e.closer, e.hv.Close)
	dt, err := hostfacts.ChooseDomainType(o.domainType, e.facts, func() (string, error) { return e.hv.DomainType(ctx, e.facts.Arch) })
	if err != nil {
		return nil, err
	}
	if w := dt.Warning(); w != "" {
		e.o.logger().Warn(w, "libvirt", o.libvirtURI)
	}
	e.domainType = dt.Type
	var pool func() ([]uint, error)
	if o.cpuManager {
		pool = func() ([]uint, error) { return hostfacts.CPUManagerPool(o.root, o.reservedCPUs) }
	}
	e.rec = reconciler.New(reconciler.Config{
		Devices:         e.permittedDevices,
		Claims:          e.claimDisk,
		CPUPool:         pool,
		Arch:            e.facts.Arch,
		DomainType:      e.domainType,
		AllowPruneAll:   o.allowPruneAll,
		PruneGuardShare: o.pruneGuardShare,
		SelfHeal:        selfHeal,
		DiskDir:         filepath.Join(o.stateDir, "disks"),
		Log:             o.logger(),
		FreeHugepages:   func() (map[int64]int64, error) { return hostfacts.FreeHugepages(o.root) },
	}, e.hv, e.disks, e.db)
	hr, closeHost, err := o.newHostReconciler(ctx, selfHeal, o.allowReboot)
	if err != nil {
		return nil, err
	}
	e.closer = append(e.closer, func() error { closeHost(); return nil })
	e.hostRec = hr
	sm, err := newStorageManager(o, &storageFlags{selfHeal: selfHeal}, e.db)
	if err != nil {
		return nil, err
	}
	e.closer = append(e.closer, func() error { sm.Close(); return nil })
	e.storage = sm
	ac.Backup = e.db.Backup
	if ac, err = o.agentConfig(e.facts, e.domainType, ac); err != nil {
		return nil, err
	}
	e.agent = agent.New(ac, e.src, e.rec, e.hv).WithHost(hr).WithStorage(sm)
	// Wired after the agent exists: an import that ends asks for an
	// iteration, so the VM waiting for it starts without waiting for a poll.
	sm.SetHooks(e.agent.Kick, e.inUse)
	ok = true
	return e, nil
}

var errInvalid = errors.New("manifests are invalid")

// stateLockedError is statedb.ErrLocked said for the operator: which
// directory, and what to do.
type stateLockedError struct {
	dir string
	err error
}

func (e *stateLockedError) Error() string {
	return fmt.Sprintf("another nodevirt holds the state directory %s: stop it or use another --state", e.dir)
}

func (e *stateLockedError) Unwrap() error { return e.err }

// lockState opens the state database, creating the state directory. Its
// exclusive lock is held until the database is closed: every command that
// changes the host takes it before it fetches or plans anything, so none
// runs beside an agent (or another such command) on the same state, and a
// second one fails at once instead of undoing the first one's work.
func (o *options) lockState() (*statedb.DB, error) {
	// QEMU runs as its own user and must traverse the state directory to
	// reach disks (libvirt chowns the files themselves); 0711 lets it pass
	// through without listing anything.
	if err := os.MkdirAll(o.stateDir, 0o711); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := os.Chmod(o.stateDir, 0o711); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	db, err := statedb.Open(filepath.Join(o.stateDir, "state.db"))
	if errors.Is(err, statedb.ErrLocked) {
		return nil, &stateLockedError{dir: o.stateDir, err: err}
	}
	return db, err
}

// claimDisk tells the VM side where storage keeps a claim's disk.
func (e *env) claimDisk(namespace, claim string) (desired.ClaimDisk, bool) {
	if e.storage == nil {
		return desired.ClaimDisk{}, false
	}
	st, ok := e.storage.Claim(namespace, claim)
	if !ok || st.Path == "" {
		return desired.ClaimDisk{}, false
	}
	return desired.ClaimDisk{Path: st.Path, Block: st.Block}, true
}

// inUse reports whether a domain's definition refers to path: storage never
// deletes data a domain uses.
func (e *env) inUse(path string) bool {
	doms, err := e.hv.Domains(context.Background())
	if err != nil {
		return true // unknown: keep the data
	}
	for _, d := range doms {
		if strings.Contains(d.XML, "'"+path+"'") || strings.Contains(d.XML, "\""+path+"\"") {
			return true
		}
	}
	return false
}

// permittedDevices lists, per resource the HyperConverged permits, the PCI
// devices under --root that VMs can be given (matching and bound to vfio-pci).
func (e *env) permittedDevices() (map[string][]string, error) {
	hc := e.agent.HostConfig()
	if hc == nil || len(hc.PCI) == 0 {
		return nil, nil
	}
	devs, err := pciDevices{pci.New(e.o.root, hostfs.Exec{Root: e.o.root})}.List()
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
