package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strings"
	"syscall"

	"github.com/nodevirt/nodevirt/nodeconfig"
)

// Deps are the host drivers; cmd/nodevirt wires runtime packages in.
type Deps struct {
	// Files is the host below its root.
	Files Files
	// State is the state directory for the record and backups
	// (<state>/host).
	State   Files
	Units   Units
	Kargs   KernelArgs
	Devices Devices
	SELinux SELinux
}

// Config is the operator's policy.
type Config struct {
	// SelfHeal undoes out-of-band changes; off, drift is only reported.
	SelfHeal bool
	// AllowReboot lets Apply reboot the host when a reboot is required.
	AllowReboot bool
	// AllowPruneAll confirms removals the prune guard would hold.
	AllowPruneAll bool
	// PruneGuardShare: see Guard.
	PruneGuardShare float64
	Log             *slog.Logger
}

// Reconciler observes, plans and applies host configuration.
type Reconciler struct {
	cfg Config
	d   Deps
	log *slog.Logger
}

// New wires a host reconciler.
func New(cfg Config, d Deps) *Reconciler {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{cfg: cfg, d: d, log: log}
}

// Plan observes the host and computes what to do for desired.
func (r *Reconciler) Plan(ctx context.Context, desired *nodeconfig.HostConfig) (Plan, error) {
	obs, err := r.Observe(ctx, desired)
	if err != nil {
		return Plan{}, err
	}
	return Diff(desired, obs, Guard{AllowPruneAll: r.cfg.AllowPruneAll, Share: r.cfg.PruneGuardShare}), nil
}

// Observe reads the host state that desired and the record refer to.
func (r *Reconciler) Observe(ctx context.Context, desired *nodeconfig.HostConfig) (Observed, error) {
	rec, err := LoadRecord(r.d.State)
	if err != nil {
		return Observed{}, err
	}
	o := Observed{Record: rec, Files: map[string]FileState{}, Owners: map[string]Owner{}, Units: map[string]UnitState{}}

	paths := map[string]bool{}
	for _, e := range entries(desired) {
		paths[e.path] = true
		if e.user != "" || e.group != "" {
			uid, gid, err := r.d.Files.Owner(e.user, e.group)
			ow := Owner{UID: uid, GID: gid}
			if err != nil {
				ow.Err = err.Error()
			}
			o.Owners[e.path] = ow
		}
	}
	for p := range rec.Files {
		paths[p] = true
	}
	for p := range paths {
		st, err := readState(r.d.Files, p)
		if err != nil {
			return Observed{}, err
		}
		o.Files[p] = st
	}

	o.UnitsLive = r.d.Units.Live()
	o.UnitsOffline = r.d.Units.Offline()
	names := map[string]bool{}
	for _, u := range desired.Units {
		names[u.Name] = true
	}
	for n := range rec.Units {
		names[n] = true
	}
	for _, l := range desired.Labels {
		if l.Unit != "" {
			names[l.Unit] = true
		}
	}
	for n := range names {
		fst, err := r.d.Units.UnitFileState(ctx, n)
		if err != nil {
			return Observed{}, err
		}
		us := UnitState{FileState: fst, Props: map[string]string{}}
		if o.UnitsLive {
			if us.Props, err = r.d.Units.Properties(ctx, n); err != nil {
				return Observed{}, err
			}
		}
		o.Units[n] = us
	}

	o.Kargs.Backend = r.d.Kargs.Name()
	if o.Kargs.Backend != "none" || len(desired.KernelArgs) > 0 || len(rec.Kargs) > 0 {
		staged, err := r.d.Kargs.Staged(ctx)
		if err != nil {
			o.Kargs.StagedErr = err.Error()
		}
		o.Kargs.Staged = staged
	}
	if run, err := r.d.Kargs.Running(); err == nil {
		o.Kargs.Running, o.Kargs.RunningKnown = run, true
	}

	if o.Devices, err = r.d.Devices.List(); err != nil {
		return Observed{}, fmt.Errorf("list PCI devices: %w", err)
	}

	if len(desired.Labels) > 0 {
		mode, err := r.d.SELinux.Mode()
		if err != nil {
			return Observed{}, err
		}
		o.SELinux = SELinuxState{Mode: mode, Labels: map[string]string{}}
		if mode != "disabled" && mode != "" {
			for _, l := range desired.Labels {
				ctxLabel, err := r.d.SELinux.Label(l.Path)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return Observed{}, err
				}
				o.SELinux.Labels[l.Path] = ctxLabel
			}
		}
	}

	if b, err := r.d.Files.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		o.BootID = strings.TrimSpace(string(b))
	}
	return o, nil
}

// readState reads one path without following a final symlink.
func readState(f Files, p string) (FileState, error) {
	fi, err := f.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return FileState{}, nil
	}
	if err != nil {
		return FileState{}, fmt.Errorf("stat %s: %w", p, err)
	}
	st := FileState{Exists: true, Mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.UID, st.GID = int(sys.Uid), int(sys.Gid)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		if st.Link, err = f.Readlink(p); err != nil {
			return FileState{}, fmt.Errorf("read link %s: %w", p, err)
		}
	case fi.Mode().IsRegular():
		if st.Data, err = f.ReadFile(p); err != nil {
			return FileState{}, fmt.Errorf("read %s: %w", p, err)
		}
	default:
		st.Link = "(" + fi.Mode().Type().String() + ")"
	}
	return st, nil
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
