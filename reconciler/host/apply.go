package host

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"
)

// Outcome is what happened to one action.
type Outcome struct {
	Action
	// Result is done, skipped, failed, rolled-back, at-boot (systemd is not
	// running: the unit takes effect at boot), not-applicable or reported
	// (informational actions).
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
	Detail string `json:"detail,omitempty"`
	Took   string `json:"took,omitempty"`
}

// Report is the result of one Apply.
type Report struct {
	Revision string    `json:"revision,omitempty"`
	Outcomes []Outcome `json:"outcomes"`
	Failed   int       `json:"failed"`
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
func transactional(k Kind) bool {
	return order(k) <= order(StageKargs)
}

type undoFunc func(ctx context.Context) error

type applier struct {
	r    *Reconciler
	p    Plan
	rec  Record
	undo []undoFunc
	// unitFiles: unit files changed since the last daemon-reload.
	unitFiles bool
}

// Apply executes a plan in order. When a file, unit or kernel-argument step
// fails, the steps of that part already done are undone in reverse order
// (files get their previous content back) and nothing further runs. Later
// steps (devices, unit starts) fail one by one. Drift actions are skipped
// when self-heal is off.
func (r *Reconciler) Apply(ctx context.Context, p Plan) Report {
	ap := &applier{r: r, p: p, rec: p.observed.Record.clone()}
	rep := Report{Revision: p.Revision}
	if ap.rec.Reboot != nil && ap.rec.Reboot.BootID != p.observed.BootID {
		ap.rec.Reboot = nil // the host rebooted since
	}
	var doneTx []int
	for i := 0; i < len(p.Actions); i++ {
		a := p.Actions[i]
		out := Outcome{Action: a}
		if a.Kind.Informational() {
			out.Result = "reported"
			if a.Kind == Hold {
				out.Result = "held"
			}
			if a.Kind == RebootRequired {
				rep.RebootRequired = true
				if a.reboot && p.observed.BootID != "" {
					if ap.rec.Reboot == nil || ap.rec.Reboot.BootID != p.observed.BootID {
						ap.rec.Reboot = &RebootRecord{BootID: p.observed.BootID}
					}
					ap.rec.Reboot.Reasons = appendNew(ap.rec.Reboot.Reasons, a.Reason)
				}
			}
			rep.Outcomes = append(rep.Outcomes, out)
			continue
		}
		if a.Drift && !r.cfg.SelfHeal {
			out.Result, out.Error = "skipped", "self-heal is off; drift reported only"
			rep.Outcomes = append(rep.Outcomes, out)
			continue
		}
		if a.Kind != WriteFile && a.Kind != WriteUnit {
			if err := ap.reload(ctx); err != nil {
				out.Result, out.Error = "failed", err.Error()
				rep.Failed++
				rep.Outcomes = append(rep.Outcomes, out)
				if transactional(a.Kind) {
					ap.rollback(ctx, &rep, doneTx)
					ap.skipRest(&rep, i+1)
					return ap.finish(ctx, rep, true)
				}
				continue
			}
		}
		start := time.Now()
		res, detail, err := ap.do(ctx, a)
		out.Took = time.Since(start).Round(time.Millisecond).String()
		out.Detail = detail
		if err != nil {
			out.Result, out.Error = "failed", err.Error()
			rep.Failed++
			r.log.Error("host action failed", "action", a.Kind, "target", a.Target, "object", a.Object, "err", err)
			rep.Outcomes = append(rep.Outcomes, out)
			// Without any boot loader there is nothing to roll back for:
			// the rest of the configuration still applies.
			if transactional(a.Kind) && !(a.Kind == StageKargs && r.d.Kargs.Name() == "none") {
				ap.rollback(ctx, &rep, doneTx)
				ap.skipRest(&rep, i+1)
				return ap.finish(ctx, rep, true)
			}
			continue
		}
		out.Result = res
		r.log.Info("host applied", "action", a.Kind, "target", a.Target, "object", a.Object, "result", res, "took", out.Took)
		rep.Outcomes = append(rep.Outcomes, out)
		if transactional(a.Kind) {
			doneTx = append(doneTx, len(rep.Outcomes)-1)
		}
	}
	if err := ap.reload(ctx); err != nil {
		rep.Failed++
		rep.Outcomes = append(rep.Outcomes, Outcome{Action: Action{Kind: "daemon-reload", Target: "systemd"}, Result: "failed", Error: err.Error()})
	}
	return ap.finish(ctx, rep, false)
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func (ap *applier) skipRest(rep *Report, from int) {
	for _, a := range ap.p.Actions[from:] {
		res := "skipped"
		if a.Kind.Informational() {
			res = "reported"
		}
		rep.Outcomes = append(rep.Outcomes, Outcome{Action: a, Result: res, Error: "an earlier step failed; the host configuration was rolled back"})
	}
}

// rollback undoes the transactional steps done so far, newest first.
func (ap *applier) rollback(ctx context.Context, rep *Report, done []int) {
	rep.RolledBack = true
	for i := len(ap.undo) - 1; i >= 0; i-- {
		if err := ap.undo[i](ctx); err != nil {
			rep.Failed++
			rep.Outcomes = append(rep.Outcomes, Outcome{Action: Action{Kind: "rollback", Target: "host"}, Result: "failed", Error: err.Error()})
		}
	}
	ap.undo = nil
	if err := ap.reload(ctx); err != nil {
		rep.Outcomes = append(rep.Outcomes, Outcome{Action: Action{Kind: "daemon-reload", Target: "systemd"}, Result: "failed", Error: err.Error()})
	}
	for _, i := range done {
		rep.Outcomes[i].Result = "rolled-back"
	}
	ap.rec = ap.p.observed.Record.clone()
}

func (ap *applier) finish(ctx context.Context, rep Report, rolledBack bool) Report {
	r := ap.r
	if !rolledBack {
		if ap.p.Revision != "" {
			ap.rec.Revision = ap.p.Revision
		}
		for _, res := range ap.p.desired.PCI {
			ap.rec.Resources = appendNew(ap.rec.Resources, res.ResourceName)
		}
		// Forget units that left the source and hold nothing any more;
		// held ones stay recorded, so a confirmed revision still prunes them.
		for name, u := range ap.rec.Units {
			if ap.p.PruneHeld == "" && ap.p.desired.Unit(name) == nil && !u.Masked && (u.Enabled == nil || !*u.Enabled) && !ap.p.desired.IsInvalid(u.Object) {
				delete(ap.rec.Units, name)
			}
		}
	}
	if err := saveRecord(r.d.State, ap.rec); err != nil {
		rep.Failed++
		rep.Outcomes = append(rep.Outcomes, Outcome{Action: Action{Kind: "record", Target: "state"}, Result: "failed", Error: err.Error()})
	}
	if rep.RebootRequired && !rolledBack {
		// Ubuntu's convention, read by update-notifier and unattended-upgrades.
		_ = r.d.Files.WriteFile("/run/reboot-required", nil, 0o644, 0, 0)
		if r.cfg.AllowReboot && rep.Failed == 0 {
			if err := r.d.Units.Reboot(ctx); err != nil {
				rep.Failed++
				rep.Outcomes = append(rep.Outcomes, Outcome{Action: Action{Kind: "reboot", Target: "host", Reason: "a reboot is required and --allow-reboot is set"}, Result: "failed", Error: err.Error()})
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

func (ap *applier) do(ctx context.Context, a Action) (result, detail string, err error) {
	r, obs := ap.r, ap.p.observed
	files := r.d.Files
	switch a.Kind {
	case WriteFile, WriteUnit:
		e := a.entry
		prev := obs.Files[e.path]
		uid, gid := 0, 0
		if ow, ok := obs.Owners[e.path]; ok {
			if ow.Err != "" {
				return "", "", fmt.Errorf("%s: %s", e.path, ow.Err)
			}
			uid, gid = ow.UID, ow.GID
		}
		if e.uid != nil {
			uid = *e.uid
		}
		if e.gid != nil {
			gid = *e.gid
		}
		rec, recorded := ap.rec.Files[e.path]
		if !recorded {
			if err := saveBackup(r.d.State, e.path, prev); err != nil {
				return "", "", err
			}
			rec.Original = prev.Exists
		}
		if err := files.WriteFile(e.path, e.data, e.mode, uid, gid); err != nil {
			return "", "", err
		}
		ap.undo = append(ap.undo, func(context.Context) error { return ap.restore(e.path, prev) })
		rec.Object, rec.Kind, rec.Unit = e.source.Object, e.kind, e.unit
		rec.SHA256, rec.Mode, rec.UID, rec.GID = hashBytes(e.data), e.mode, uid, gid
		ap.rec.Files[e.path] = rec
		if e.kind != "file" {
			ap.unitFiles = true
		}
		return "done", "", nil

	case RemoveFile, RestoreFile:
		prev := obs.Files[a.Target]
		rec := ap.rec.Files[a.Target]
		bk, found, err := loadBackup(r.d.State, a.Target)
		if err != nil {
			return "", "", err
		}
		detail := ""
		if a.Kind == RestoreFile && found && bk.Exists {
			if err := ap.restore(a.Target, bk); err != nil {
				return "", "", err
			}
		} else {
			if a.Kind == RestoreFile {
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
		return "done", detail, nil

	case MaskUnit:
		p := path.Join(UnitDir, a.unit)
		if prev := obs.Files[p]; prev.Exists && prev.Link == "" {
			if _, ours := ap.rec.Files[p]; !ours {
				return "", "", fmt.Errorf("mask %s: %s is a unit file nodevirt did not write; remove it first", a.unit, p)
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
		if err := r.d.Units.Mask(ctx, a.unit); err != nil {
			return "", "", err
		}
		ap.undo = append(ap.undo, func(ctx context.Context) error { return r.d.Units.Unmask(ctx, a.unit) })
		u := ap.unitRec(a.unit, a.Object)
		u.Masked = true
		ap.rec.Units[a.unit] = u
		return "done", "", nil

	case UnmaskUnit:
		if err := r.d.Units.Unmask(ctx, a.unit); err != nil {
			return "", "", err
		}
		ap.undo = append(ap.undo, func(ctx context.Context) error { return r.d.Units.Mask(ctx, a.unit) })
		u := ap.unitRec(a.unit, "")
		u.Masked = false
		ap.rec.Units[a.unit] = u
		return "done", "", nil

	case EnableUnit:
		if err := r.d.Units.Enable(ctx, a.unit); err != nil {
			return "", "", err
		}
		ap.undo = append(ap.undo, func(ctx context.Context) error { return r.d.Units.Disable(ctx, a.unit) })
		u := ap.unitRec(a.unit, a.Object)
		on := true
		u.Enabled = &on
		ap.rec.Units[a.unit] = u
		return "done", "", nil

	case DisableUnit:
		if err := r.d.Units.Disable(ctx, a.unit); err != nil {
			return "", "", err
		}
		ap.undo = append(ap.undo, func(ctx context.Context) error { return r.d.Units.Enable(ctx, a.unit) })
		u := ap.unitRec(a.unit, "")
		if ap.p.desired.Unit(a.unit) != nil {
			off := false
			u.Enabled = &off
		} else {
			u.Enabled = nil
		}
		ap.rec.Units[a.unit] = u
		return "done", "", nil

	case StageKargs:
		if err := r.d.Kargs.Stage(ctx, a.want, a.drop); err != nil {
			return "", "", fmt.Errorf("stage kernel arguments through %s: %w", r.d.Kargs.Name(), err)
		}
		ap.rec.Kargs = append([]string(nil), a.want...)
		ap.rec.Backend = r.d.Kargs.Name()
		return "done", "staged for the next boot", nil

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
		dr.Object, dr.ID = a.Object, a.device
		ap.rec.Devices[a.Target] = dr
		return "done", "bound to vfio-pci", nil

	case UnbindDevice:
		if err := r.d.Devices.Release(ctx, a.Target); err != nil {
			return "", "", err
		}
		delete(ap.rec.Devices, a.Target)
		return "done", "", nil

	case StopUnit:
		if err := r.d.Units.Stop(ctx, a.unit); err != nil {
			return "", "", err
		}
		u := ap.unitRec(a.unit, "")
		u.Ran = ""
		ap.rec.Units[a.unit] = u
		return "done", "", nil

	case StartUnit, RestartUnit:
		return ap.start(ctx, a)
	}
	return "", "", fmt.Errorf("unknown action %q", a.Kind)
}

func (ap *applier) start(ctx context.Context, a Action) (string, string, error) {
	r := ap.r
	u := ap.p.desired.Unit(a.unit)
	remember := func(atBoot bool) {
		if u == nil {
			return
		}
		ur := ap.unitRec(a.unit, a.Object)
		ur.Ran, ur.AtBoot = unitHash(u), ""
		if atBoot {
			ur.AtBoot = ap.p.observed.BootID
			if ur.AtBoot == "" {
				ur.AtBoot = "unknown"
			}
		}
		ap.rec.Units[a.unit] = ur
	}
	if !r.d.Units.Live() {
		remember(true)
		return "at-boot", r.d.Units.Offline(), nil
	}
	run := r.d.Units.Start
	if a.Kind == RestartUnit {
		run = r.d.Units.Restart
	}
	props, err := run(ctx, a.unit)
	if err != nil {
		return "", "", err
	}
	state := fmt.Sprintf("Result=%s, ActiveState=%s/%s", orDash(props["Result"]), props["ActiveState"], props["SubState"])
	if props["Result"] == "" {
		state = fmt.Sprintf("ActiveState=%s/%s", props["ActiveState"], props["SubState"])
	}
	skipped := props["ConditionResult"] == "false" && props["ActiveState"] == "inactive"
	switch {
	case skipped && a.judge == judgeSELinux:
		remember(false)
		return "not-applicable", "SELinux is not enabled on this host: systemd skipped the unit (ConditionSecurity=selinux); " + state, nil
	case skipped:
		remember(false)
		return "done", "systemd skipped the unit: a Condition is not met; " + state, nil
	case props["ActiveState"] == "failed" || (props["Result"] != "" && props["Result"] != "success"):
		return "", "", fmt.Errorf("unit %s ended with %s, exit status %s (job %s)", a.unit, state, orDash(props["ExecMainStatus"]), props["Job"])
	case props["Job"] != "" && props["Job"] != "done":
		return "", "", fmt.Errorf("unit %s: start job %s; %s", a.unit, props["Job"], state)
	}
	remember(false)
	return "done", state, nil
}
