package host

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/nodevirt/nodevirt/reconciler/plan"
)

// Report is the result of one Apply. Its results are done, skipped, failed,
// rolled-back, at-boot (systemd is not running: the unit takes effect at
// boot), not-applicable, reported (informational actions) or held.
type Report struct {
	Revision string `json:"revision,omitempty"`
	plan.Report
	// RolledBack: a step of the files, units and kernel-argument part failed
	// and what that part had changed was undone.
	RolledBack     bool `json:"rolledBack,omitempty"`
	RebootRequired bool `json:"rebootRequired,omitempty"`
	Rebooting      bool `json:"rebooting,omitempty"`
}

// Err is non-nil when any action failed.
func (rp Report) Err() error {
	if rp.Failed == 0 {
		return nil
	}
	if rp.RolledBack {
		return fmt.Errorf("host configuration: %d of %d actions failed; the changes were rolled back", rp.Failed, len(rp.Outcomes))
	}
	return fmt.Errorf("host configuration: %d of %d actions failed", rp.Failed, len(rp.Outcomes))
}

// transactional reports whether the action belongs to the part that is
// rolled back as a whole.
func transactional(k plan.Action) bool {
	return order(k) <= order(StageKargs)
}

// hostStep is a step apply adds of its own (a daemon-reload, the record).
func hostStep(action plan.Action, target string) plan.Step {
	return plan.Step{Stage: plan.StageHost, Action: action, Target: target}
}

type undoFunc func(ctx context.Context) error

type applier struct {
	r    *Reconciler
	p    Plan
	rec  Record
	undo []undoFunc
	// unitFiles: unit files changed since the last daemon-reload.
	unitFiles bool
	// rebootRequired: a reboot-required step was reported.
	rebootRequired bool
}

// rolledBackWhy is recorded on the steps after a failed transaction.
const rolledBackWhy = "an earlier step failed; the host configuration was rolled back"

// Apply executes a plan in order. When a file, unit or kernel-argument step
// fails, the steps of that part already done are undone in reverse order
// (files get their previous content back) and nothing further runs. Later
// steps (devices, unit starts) fail one by one. Drift actions are skipped
// when self-heal is off.
func (r *Reconciler) Apply(ctx context.Context, p Plan) Report {
	ap := &applier{r: r, p: p, rec: p.Observed.Record.clone()}
	if ap.rec.Reboot != nil && ap.rec.Reboot.BootID != p.Observed.BootID {
		ap.rec.Reboot = nil // the host rebooted since
	}
	rolledBack := false
	rep := Report{Revision: p.Revision}
	rep.Report = plan.Apply(ctx, p.Actions, plan.Runner[Action]{
		// The planner sorted the steps in the Machine Config Daemon's order.
		Order: nil,
		// A host config is many independent files and units: one failing
		// outside the transaction holds back nothing else of its config.
		Object:        func(Action) string { return "" },
		SelfHeal:      func(Action) bool { return r.cfg.SelfHeal },
		Informational: func(a Action) bool { return Informational(a.Action) },
		Note:          ap.note,
		Do: func(ctx context.Context, a Action) (plan.Result, string, error) {
			if a.Action != WriteFile && a.Action != WriteUnit {
				if err := ap.reload(ctx); err != nil {
					return "", "", err
				}
			}
			return ap.do(ctx, a)
		},
		Halt: func(ctx context.Context, a Action, _ error, rep *plan.Report) string {
			// Without any boot loader there is nothing to roll back for:
			// the rest of the configuration still applies.
			if !transactional(a.Action) || (a.Action == StageKargs && r.d.Kargs.Name() == "none") {
				return ""
			}
			ap.rollback(ctx, rep)
			rolledBack = true
			return rolledBackWhy
		},
		Log: r.log,
	})
	rep.RolledBack, rep.RebootRequired = rolledBack, ap.rebootRequired
	if !rolledBack {
		if err := ap.reload(ctx); err != nil {
			rep.Add(plan.Outcome{Step: hostStep("daemon-reload", "systemd"), Result: plan.Failed, Error: err.Error()})
		}
	}
	return ap.finish(ctx, rep, rolledBack)
}

// note records an informational step: a reboot the host needs is kept in
// the record until the host booted again.
func (ap *applier) note(a Action) plan.Result {
	switch a.Action {
	case Hold:
		return plan.Held
	case RebootRequired:
		ap.rebootRequired = true
		boot := ap.p.Observed.BootID
		if a.UntilBoot && boot != "" {
			if ap.rec.Reboot == nil || ap.rec.Reboot.BootID != boot {
				ap.rec.Reboot = &RebootRecord{BootID: boot}
			}
			ap.rec.Reboot.Reasons = appendNew(ap.rec.Reboot.Reasons, a.Reason)
		}
	}
	return plan.Reported
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// rollback undoes the transactional steps done so far, newest first.
func (ap *applier) rollback(ctx context.Context, rep *plan.Report) {
	for i := len(ap.undo) - 1; i >= 0; i-- {
		if err := ap.undo[i](ctx); err != nil {
			rep.Add(plan.Outcome{Step: hostStep("rollback", "host"), Result: plan.Failed, Error: err.Error()})
		}
	}
	ap.undo = nil
	if err := ap.reload(ctx); err != nil {
		// Reported, not counted: the failed step already is.
		rep.Outcomes = append(rep.Outcomes, plan.Outcome{Step: hostStep("daemon-reload", "systemd"), Result: plan.Failed, Error: err.Error()})
	}
	for i, o := range rep.Outcomes {
		if o.Result == plan.Done && transactional(o.Action) {
			rep.Outcomes[i].Result = plan.RolledBack
		}
	}
	ap.rec = ap.p.Observed.Record.clone()
}

func (ap *applier) finish(ctx context.Context, rep Report, rolledBack bool) Report {
	r := ap.r
	if !rolledBack {
		if ap.p.Revision != "" {
			ap.rec.Revision = ap.p.Revision
		}
		for _, res := range ap.p.Desired.PCI {
			ap.rec.Resources = appendNew(ap.rec.Resources, res.ResourceName)
		}
		// Forget units that left the source and hold nothing any more;
		// held ones stay recorded, so a confirmed revision still prunes them.
		for name, u := range ap.rec.Units {
			if ap.p.PruneHeld == "" && ap.p.Desired.Unit(name) == nil && !u.Masked && (u.Enabled == nil || !*u.Enabled) && !ap.p.Desired.IsInvalid(u.Object) {
				delete(ap.rec.Units, name)
			}
		}
	}
	if err := saveRecord(r.d.State, ap.rec); err != nil {
		rep.Add(plan.Outcome{Step: hostStep("record", "state"), Result: plan.Failed, Error: err.Error()})
	}
	if rep.RebootRequired && !rolledBack {
		// Ubuntu's convention, read by update-notifier and unattended-upgrades.
		_ = r.d.Files.WriteFile("/run/reboot-required", nil, 0o644, 0, 0)
		if r.cfg.AllowReboot && rep.Failed == 0 {
			if err := r.d.Units.Reboot(ctx); err != nil {
				st := hostStep("reboot", "host")
				st.Reason = "a reboot is required and --allow-reboot is set"
				rep.Add(plan.Outcome{Step: st, Result: plan.Failed, Error: err.Error()})
			} else {
				rep.Rebooting = true
			}
		}
	}
	return rep
}

func (ap *applier) reload(ctx context.Context) error {
	if !ap.unitFiles {
		return nil
	}
	ap.unitFiles = false
	if err := ap.r.d.Units.Reload(ctx); err != nil {
		return fmt.Errorf("systemd daemon-reload: %w", err)
	}
	return nil
}

// restore puts a path back to an observed state.
func (ap *applier) restore(p string, st FileState) error {
	f := ap.r.d.Files
	switch {
	case !st.Exists:
		return f.Remove(p)
	case st.Link != "" && !strings.HasPrefix(st.Link, "("):
		return f.Symlink(st.Link, p)
	case st.Link != "":
		return fmt.Errorf("restore %s: it was a %s, which nodevirt does not recreate", p, st.Link)
	}
	return f.WriteFile(p, st.Data, st.Mode, st.UID, st.GID)
}

func (ap *applier) unitRec(name, object string) UnitRecord {
	u := ap.rec.Units[name]
	if object != "" {
		u.Object = object
	}
	return u
}

func (ap *applier) do(ctx context.Context, a Action) (result plan.Result, detail string, err error) {
	r, obs := ap.r, ap.p.Observed
	files := r.d.Files
	switch a.Action {
	case WriteFile, WriteUnit:
		e := a.Write
		prev := obs.Files[e.Path]
		uid, gid := 0, 0
		if ow, ok := obs.Owners[e.Path]; ok {
			if ow.Err != "" {
				return "", "", fmt.Errorf("%s: %s", e.Path, ow.Err)
			}
			uid, gid = ow.UID, ow.GID
		}
		if e.UID != nil {
			uid = *e.UID
		}
		if e.GID != nil {
			gid = *e.GID
		}
		rec, recorded := ap.rec.Files[e.Path]
		if !recorded {
			if err := saveBackup(r.d.State, e.Path, prev); err != nil {
				return "", "", err
			}
			rec.Original = prev.Exists
		}
		if err := files.WriteFile(e.Path, e.Data, e.Mode, uid, gid); err != nil {
			return "", "", err
		}
		ap.undo = append(ap.undo, func(context.Context) error { return ap.restore(e.Path, prev) })
		rec.Object, rec.Kind, rec.Unit = e.Object, e.Kind, e.Unit
		rec.SHA256, rec.Mode, rec.UID, rec.GID = hashBytes(e.Data), e.Mode, uid, gid
		ap.rec.Files[e.Path] = rec
		if e.Kind != "file" {
			ap.unitFiles = true
		}
		return plan.Done, "", nil

	case RemoveFile, RestoreFile:
		prev := obs.Files[a.Target]
		rec := ap.rec.Files[a.Target]
		bk, found, err := loadBackup(r.d.State, a.Target)
		if err != nil {
			return "", "", err
		}
		detail := ""
		if a.Action == RestoreFile && found && bk.Exists {
			if err := ap.restore(a.Target, bk); err != nil {
				return "", "", err
			}
		} else {
			if a.Action == RestoreFile {
				detail = "the saved original is missing; the file is removed"
			}
			if err := files.Remove(a.Target); err != nil {
				return "", "", err
			}
		}
		ap.undo = append(ap.undo, func(context.Context) error { return ap.restore(a.Target, prev) })
		delete(ap.rec.Files, a.Target)
		_ = r.d.State.Remove(backupPath(a.Target))
		if rec.Kind == "dropin" {
			_ = files.RemoveEmptyDir(path.Dir(a.Target))
		}
		if rec.Kind != "file" {
			ap.unitFiles = true
		}
		return plan.Done, detail, nil

	case MaskUnit:
		p := path.Join(UnitDir, a.Unit)
		if prev := obs.Files[p]; prev.Exists && prev.Link == "" {
			if _, ours := ap.rec.Files[p]; !ours {
				return "", "", fmt.Errorf("mask %s: %s is a unit file nodevirt did not write; remove it first", a.Unit, p)
			}
			if err := files.Remove(p); err != nil {
				return "", "", err
			}
			ap.undo = append(ap.undo, func(context.Context) error { return ap.restore(p, prev) })
			delete(ap.rec.Files, p)
			ap.unitFiles = true
			if err := ap.reload(ctx); err != nil {
				return "", "", err
			}
		}
		if err := r.d.Units.Mask(ctx, a.Unit); err != nil {
			return "", "", err
		}
		ap.undo = append(ap.undo, func(ctx context.Context) error { return r.d.Units.Unmask(ctx, a.Unit) })
		u := ap.unitRec(a.Unit, a.Object)
		u.Masked = true
		ap.rec.Units[a.Unit] = u
		return plan.Done, "", nil

	case UnmaskUnit:
		if err := r.d.Units.Unmask(ctx, a.Unit); err != nil {
			return "", "", err
		}
		ap.undo = append(ap.undo, func(ctx context.Context) error { return r.d.Units.Mask(ctx, a.Unit) })
		u := ap.unitRec(a.Unit, "")
		u.Masked = false
		ap.rec.Units[a.Unit] = u
		return plan.Done, "", nil

	case EnableUnit:
		if err := r.d.Units.Enable(ctx, a.Unit); err != nil {
			return "", "", err
		}
		ap.undo = append(ap.undo, func(ctx context.Context) error { return r.d.Units.Disable(ctx, a.Unit) })
		u := ap.unitRec(a.Unit, a.Object)
		on := true
		u.Enabled = &on
		ap.rec.Units[a.Unit] = u
		return plan.Done, "", nil

	case DisableUnit:
		if err := r.d.Units.Disable(ctx, a.Unit); err != nil {
			return "", "", err
		}
		ap.undo = append(ap.undo, func(ctx context.Context) error { return r.d.Units.Enable(ctx, a.Unit) })
		u := ap.unitRec(a.Unit, "")
		if ap.p.Desired.Unit(a.Unit) != nil {
			off := false
			u.Enabled = &off
		} else {
			u.Enabled = nil
		}
		ap.rec.Units[a.Unit] = u
		return plan.Done, "", nil

	case StageKargs:
		if err := r.d.Kargs.Stage(ctx, a.KargsWant, a.KargsDrop); err != nil {
			return "", "", fmt.Errorf("stage kernel arguments through %s: %w", r.d.Kargs.Name(), err)
		}
		ap.rec.Kargs = append([]string(nil), a.KargsWant...)
		ap.rec.Backend = r.d.Kargs.Name()
		return plan.Done, "staged for the next boot", nil

	case BindDevice:
		prevDriver := ""
		if len(a.Changes) > 0 {
			prevDriver = a.Changes[0].From
		}
		if err := r.d.Devices.Bind(ctx, a.Target, "vfio-pci"); err != nil {
			return "", "", err
		}
		dr := ap.rec.Devices[a.Target]
		if dr.ID == "" {
			dr.Previous = prevDriver
		}
		dr.Object, dr.ID = a.Object, a.Device
		ap.rec.Devices[a.Target] = dr
		return plan.Done, "bound to vfio-pci", nil

	case UnbindDevice:
		if err := r.d.Devices.Release(ctx, a.Target); err != nil {
			return "", "", err
		}
		delete(ap.rec.Devices, a.Target)
		return plan.Done, "", nil

	case StopUnit:
		if err := r.d.Units.Stop(ctx, a.Unit); err != nil {
			return "", "", err
		}
		u := ap.unitRec(a.Unit, "")
		u.Ran = ""
		ap.rec.Units[a.Unit] = u
		return plan.Done, "", nil

	case StartUnit, RestartUnit:
		return ap.start(ctx, a)
	}
	return "", "", fmt.Errorf("unknown action %q", a.Action)
}

func (ap *applier) start(ctx context.Context, a Action) (plan.Result, string, error) {
	r := ap.r
	u := ap.p.Desired.Unit(a.Unit)
	remember := func(atBoot bool) {
		if u == nil {
			return
		}
		ur := ap.unitRec(a.Unit, a.Object)
		ur.Ran, ur.AtBoot = unitHash(u), ""
		if atBoot {
			ur.AtBoot = ap.p.Observed.BootID
			if ur.AtBoot == "" {
				ur.AtBoot = "unknown"
			}
		}
		ap.rec.Units[a.Unit] = ur
	}
	if !r.d.Units.Live() {
		remember(true)
		return plan.AtBoot, r.d.Units.Offline(), nil
	}
	run := r.d.Units.Start
	if a.Action == RestartUnit {
		run = r.d.Units.Restart
	}
	props, err := run(ctx, a.Unit)
	if err != nil {
		return "", "", err
	}
	state := fmt.Sprintf("Result=%s, ActiveState=%s/%s", orDash(props["Result"]), props["ActiveState"], props["SubState"])
	if props["Result"] == "" {
		state = fmt.Sprintf("ActiveState=%s/%s", props["ActiveState"], props["SubState"])
	}
	skipped := props["ConditionResult"] == "false" && props["ActiveState"] == "inactive"
	switch {
	case skipped && a.Judge == JudgeSELinux:
		remember(false)
		return plan.NotApplicable, "SELinux is not enabled on this host: systemd skipped the unit (ConditionSecurity=selinux); " + state, nil
	case skipped:
		remember(false)
		return plan.Done, "systemd skipped the unit: a Condition is not met; " + state, nil
	case props["ActiveState"] == "failed" || (props["Result"] != "" && props["Result"] != "success"):
		return "", "", fmt.Errorf("unit %s ended with %s, exit status %s (job %s)", a.Unit, state, orDash(props["ExecMainStatus"]), props["Job"])
	case props["Job"] != "" && props["Job"] != "done":
		return "", "", fmt.Errorf("unit %s: start job %s; %s", a.Unit, props["Job"], state)
	}
	remember(false)
	return plan.Done, state, nil
}
