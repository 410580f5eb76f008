package host

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/nodevirt/nodevirt/nodeconfig"
	"github.com/nodevirt/nodevirt/reconciler/plan"
)

// Units nodevirt restarts when files they read change, so the change
// takes effect without a reboot.
var reloaders = []struct{ dir, unit, why string }{
	{"/etc/modules-load.d/", "systemd-modules-load.service", "/etc/modules-load.d changed; load the listed modules now"},
	{"/etc/sysctl.d/", "systemd-sysctl.service", "/etc/sysctl.d changed; apply the settings now"},
}

// Guard is the prune guard's policy, the VM stage's applied to the host
// files and units nodevirt wrote.
type Guard struct {
	// AllowPruneAll confirms a revision whose removals reach the guard.
	AllowPruneAll bool
	// Share (0 < s <= 1) of the files and units nodevirt wrote whose removal
	// in one revision needs confirmation; 0 means 1, i.e. only removing all
	// of them.
	Share float64
}

func (g Guard) share() float64 {
	if g.Share <= 0 || g.Share > 1 {
		return 1
	}
	return g.Share
}

// Diff computes the plan that brings the observed host to desired. It is
// pure.
func Diff(desired *nodeconfig.HostConfig, o Observed, g Guard) Plan {
	d := differ{h: desired, o: o, rec: o.Record, changedUnits: map[string]bool{}, started: map[string]bool{}, wanted: map[string]bool{}}
	d.p = Plan{Systemd: "live", KernelArgsBackend: o.Kargs.Backend, Diags: desired.Diags, PruneSuspended: desired.PruneSuspended, Desired: desired, Observed: o}
	if !o.UnitsLive {
		d.p.Systemd = o.UnitsOffline
		if d.p.Systemd == "" {
			d.p.Systemd = "offline"
		}
	}
	d.files()
	d.held = d.pruneHold(g)
	d.p.PruneHeld = d.held
	d.stale()
	d.units()
	d.kargs()
	d.devices()
	d.labels()
	d.reloads()
	d.reboot()
	d.keep()
	sort.SliceStable(d.p.Actions, func(i, j int) bool { return order(d.p.Actions[i].Action) < order(d.p.Actions[j].Action) })
	return d.p
}

// order is the Machine Config Daemon's: files and units, then stale data,
// then kernel arguments; nodevirt's own steps (devices, starts) follow, and
// the reboot notice comes last.
func order(k plan.Action) int {
	for i, x := range []plan.Action{WriteFile, WriteUnit, UnmaskUnit, MaskUnit, DisableUnit, EnableUnit, RemoveFile, RestoreFile, StageKargs,
		UnbindDevice, BindDevice, StopUnit, StartUnit, RestartUnit, Keep, Hold, NotApplicable, DeviceUnbound, RebootRequired} {
		if x == k {
			return i
		}
	}
	return 100
}

type differ struct {
	h   *nodeconfig.HostConfig
	o   Observed
	rec Record
	p   Plan
	// changedUnits are units whose file or drop-ins this plan writes.
	changedUnits map[string]bool
	// changedPaths are paths this plan writes, removes or restores.
	changedPaths []string
	// started are units this plan starts or restarts.
	started map[string]bool
	wanted  map[string]bool // paths the desired config manages
	// held says why removals of what left the source are held ("" when
	// they run).
	held string
}

func (d *differ) add(a Action) {
	a.Stage = plan.StageHost
	d.p.Actions = append(d.p.Actions, a)
}

// pruneHold decides, before any removal is planned, whether this revision
// may take away what nodevirt applied from configs that left the source:
// not when a file failed to parse (those configs may be in it), and not
// past the prune guard without confirmation. The guard counts the files
// nodevirt wrote and the units it enabled or masked without writing them.
func (d *differ) pruneHold(g Guard) string {
	if d.h.PruneSuspended {
		return "a file of this revision failed to parse, so the configs it held are unknown; pruning is suspended"
	}
	owned, removing := 0, 0
	unitFiles := map[string]bool{}
	for p, rec := range d.rec.Files {
		owned++
		if rec.Kind == "unit" {
			unitFiles[rec.Unit] = true
		}
		if !d.wanted[p] && !d.h.IsInvalid(rec.Object) {
			removing++
		}
	}
	for name, rec := range d.rec.Units {
		if unitFiles[name] {
			continue
		}
		owned++
		if d.h.Unit(name) == nil && !d.h.IsInvalid(rec.Object) {
			removing++
		}
	}
	if removing == 0 || g.AllowPruneAll || d.h.AllowPruneAll || float64(removing) < g.share()*float64(owned) {
		return ""
	}
	return fmt.Sprintf("this revision would remove %d of the %d host files and units nodevirt wrote on this node (guard: %.0f%%); confirm with --allow-prune-all or the %s annotation",
		removing, owned, 100*g.share(), nodeconfig.AnnotationAllowPruneAll)
}

// prune adds the removal of something applied from a config that left the
// source, or, when this revision's removals are held, a hold in its place.
// It reports whether the removal is planned.
func (d *differ) prune(a Action) bool {
	if d.held == "" {
		d.add(a)
		return true
	}
	a.Reason = "held, not " + string(a.Action) + ": " + d.held
	a.Action, a.Disruptive, a.Drift = Hold, false, false
	d.add(a)
	return false
}

func (d *differ) owner(e *entry) (int, int, string) {
	uid, gid := 0, 0
	if ow, ok := d.o.Owners[e.path]; ok {
		if ow.Err != "" {
			return 0, 0, ow.Err
		}
		uid, gid = ow.UID, ow.GID
	}
	if e.uid != nil {
		uid = *e.uid
	}
	if e.gid != nil {
		gid = *e.gid
	}
	return uid, gid, ""
}

func (d *differ) files() {
	for _, e := range entries(d.h) {
		d.wanted[e.path] = true
		obs := d.o.Files[e.path]
		uid, gid, ownerErr := d.owner(e)
		var changes []plan.Change
		switch {
		case !obs.Exists:
			changes = append(changes, plan.Change{Path: "file", From: "", To: fmt.Sprintf("%d bytes, mode %s", len(e.data), nodeconfig.ModeString(e.mode))})
		case obs.Link != "":
			changes = append(changes, plan.Change{Path: "type", From: "symlink to " + obs.Link, To: "file"})
		default:
			if !bytes.Equal(obs.Data, e.data) {
				changes = append(changes, contentChange(e.path, obs.Data, e.data))
			}
			if obs.Mode != e.mode {
				changes = append(changes, plan.Change{Path: "mode", From: nodeconfig.ModeString(obs.Mode), To: nodeconfig.ModeString(e.mode)})
			}
			if ownerErr == "" && (obs.UID != uid || obs.GID != gid) {
				changes = append(changes, plan.Change{Path: "owner", From: fmt.Sprintf("%d:%d", obs.UID, obs.GID), To: fmt.Sprintf("%d:%d", uid, gid)})
			}
		}
		if len(changes) == 0 {
			d.p.InSync++
			continue
		}
		rec, recorded := d.rec.Files[e.path]
		a := Action{Step: plan.Step{Action: WriteFile, Object: e.source.Object, Target: e.path, Changes: changes}, Write: e.write()}
		if e.kind != "file" {
			a.Action, a.Unit = WriteUnit, e.unit
			d.changedUnits[e.unit] = true
		}
		same := recorded && rec.SHA256 == hashBytes(e.data) && rec.Mode == e.mode && (ownerErr != "" || (rec.UID == uid && rec.GID == gid))
		switch {
		case same:
			a.Drift = true
			a.Reason = "changed on the host since nodevirt wrote it"
		case recorded:
			a.Reason = "changed in the source"
		case obs.Exists:
			a.Reason = "new in the source; the file on the host is saved and restored when the config leaves the source"
		default:
			a.Reason = "new in the source"
		}
		if ownerErr != "" {
			a.Reason += "; owner: " + ownerErr
		}
		d.changedPaths = append(d.changedPaths, e.path)
		d.add(a)
	}
}

// Bounds of the unified diff a content change carries. Matching costs
// about the product of the two line counts (a 1000-line file with every
// other line changed takes some 80ms), so longer files are only summarised;
// a diff longer than maxDiffLines is cut, saying how much more.
const (
	maxDiffInputLines = 1000
	maxDiffLines      = 40
)

// contentChange summarises a content difference of the file at path as
// sizes and hashes (host in From, source in To); for text, To goes on with a
// unified diff from the host's contents to the source's.
func contentChange(path string, from, to []byte) plan.Change {
	c := plan.Change{Path: "contents", From: sizeHash(from), To: sizeHash(to)}
	if !isText(from) || !isText(to) {
		return c
	}
	a, b := diffLines(from), diffLines(to)
	if len(a) > maxDiffInputLines || len(b) > maxDiffInputLines {
		c.To += fmt.Sprintf("\n(%d and %d lines: too long to show a diff)", len(a), len(b))
		return c
	}
	text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        a,
		B:        b,
		FromFile: path + " (host)",
		ToFile:   path + " (source)",
		Context:  3,
	})
	if err != nil || text == "" {
		return c
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if more := len(lines) - maxDiffLines; more > 0 {
		lines = append(lines[:maxDiffLines], fmt.Sprintf("... %d more diff lines", more))
	}
	c.To += "\n" + strings.Join(lines, "\n")
	return c
}

// diffLines splits b into lines that keep their newline; a last line
// without one carries diff's marker, so a missing final newline shows.
func diffLines(b []byte) []string {
	lines := strings.SplitAfter(string(b), "\n")
	if last := len(lines) - 1; lines[last] == "" {
		lines = lines[:last]
	} else {
		lines[last] += "\n\\ No newline at end of file\n"
	}
	return lines
}

func sizeHash(b []byte) string {
	return fmt.Sprintf("%d bytes sha256:%.12s", len(b), hashBytes(b))
}

func isText(b []byte) bool {
	return bytes.IndexByte(b, 0) < 0 && utf8.Valid(b)
}

// stale handles paths nodevirt wrote that the source no longer has: the
// original is restored, or the file removed if there was none. Paths of
// invalid configs are kept.
func (d *differ) stale() {
	for _, p := range sortedKeys(d.rec.Files) {
		if d.wanted[p] {
			continue
		}
		rec := d.rec.Files[p]
		if d.h.IsInvalid(rec.Object) {
			continue
		}
		a := Action{Step: plan.Step{Action: RemoveFile, Object: rec.Object, Target: p}, Unit: rec.Unit}
		obs := d.o.Files[p]
		if rec.Original {
			a.Action = RestoreFile
			a.Reason = "left the source; the original file is restored"
			a.Changes = []plan.Change{{Path: "file", From: "nodevirt's", To: "original"}}
		} else {
			a.Reason = "left the source; nodevirt created it, so it is removed"
			if !obs.Exists {
				a.Reason = "left the source and is already gone"
			}
			a.Changes = []plan.Change{{Path: "file", From: fmt.Sprintf("%d bytes", len(obs.Data)), To: ""}}
		}
		if !d.prune(a) {
			continue
		}
		if rec.Kind != "file" {
			d.changedUnits[rec.Unit] = true
		}
		d.changedPaths = append(d.changedPaths, p)
	}
}

func enabledState(s string) bool {
	switch s {
	case "enabled", "enabled-runtime", "alias", "indirect", "generated", "static", "linked", "linked-runtime", "transient":
		return true
	}
	return false
}

func (d *differ) units() {
	desired := map[string]bool{}
	for i := range d.h.Units {
		u := &d.h.Units[i]
		desired[u.Name] = true
		st := d.o.Units[u.Name]
		rec, recorded := d.rec.Units[u.Name]
		act := func(k plan.Action, reason string) Action {
			return Action{Step: plan.Step{Action: k, Object: u.Source.Object, Target: u.Name, Reason: reason}, Unit: u.Name}
		}
		inSync := true
		if u.Mask != nil && *u.Mask {
			if st.FileState != "masked" {
				a := act(MaskUnit, "the source masks it")
				a.Changes = []plan.Change{{Path: "state", From: st.FileState, To: "masked"}}
				if recorded && rec.Masked {
					a.Drift, a.Reason = true, "unmasked on the host; the source masks it"
				}
				d.add(a)
				inSync = false
			}
			if inSync {
				d.p.InSync++
			}
			continue
		}
		masked := st.FileState == "masked"
		if masked && (u.Mask != nil || u.Enabled != nil && *u.Enabled) {
			a := act(UnmaskUnit, "the source unmasks it")
			a.Changes = []plan.Change{{Path: "state", From: "masked", To: "unmasked"}}
			if u.Mask == nil {
				a.Drift, a.Reason = true, "masked on the host; the source enables it"
			}
			d.add(a)
			inSync = false
		}
		if u.Enabled != nil {
			want := *u.Enabled
			is := enabledState(st.FileState)
			if st.FileState == "disabled" || masked || st.FileState == "not-found" && u.Contents != nil {
				is = false
			}
			if want && (!is || masked) {
				a := act(EnableUnit, "the source enables it")
				a.Changes = []plan.Change{{Path: "enabled", From: st.FileState, To: "enabled"}}
				if recorded && rec.Enabled != nil && *rec.Enabled && !d.changedUnits[u.Name] {
					a.Drift, a.Reason = true, st.FileState+" on the host; the source enables it"
				}
				d.add(a)
				inSync = false
			}
			if !want && (st.FileState == "enabled" || st.FileState == "enabled-runtime") {
				a := act(DisableUnit, "the source disables it")
				a.Changes = []plan.Change{{Path: "enabled", From: st.FileState, To: "disabled"}}
				if recorded && rec.Enabled != nil && !*rec.Enabled {
					a.Drift, a.Reason = true, "enabled on the host; the source disables it"
				}
				d.add(a)
				inSync = false
			}
		}
		if u.Enabled != nil && *u.Enabled && u.Contents != nil {
			hash := unitHash(u)
			// Left for a boot that has not happened, and systemd now runs.
			pendingBoot := rec.AtBoot != "" && d.o.UnitsLive && rec.AtBoot == d.o.BootID
			if rec.Ran != hash || pendingBoot {
				k, reason := StartUnit, "new or changed in the source; start it now rather than at the next boot"
				a := act(k, reason)
				if d.o.UnitsLive && st.Props["ActiveState"] == "active" {
					a.Action, a.Reason = RestartUnit, "changed in the source; restart it so the change takes effect now"
					a.Disruptive = st.Props["SubState"] == "running"
				}
				if !d.o.UnitsLive {
					a.Reason = "systemd is not running under the root: the unit takes effect at boot"
				}
				if guarded(u) {
					a.Judge = JudgeSELinux
				}
				d.started[u.Name] = true
				d.add(a)
				inSync = false
			}
		}
		if inSync && !d.changedUnits[u.Name] {
			d.p.InSync++
		}
	}
	// Units nodevirt enabled or masked that left the source.
	for _, name := range sortedKeys(d.rec.Units) {
		if desired[name] {
			continue
		}
		rec := d.rec.Units[name]
		if d.h.IsInvalid(rec.Object) {
			continue
		}
		st := d.o.Units[name]
		if rec.Masked && st.FileState == "masked" {
			d.prune(Action{Step: plan.Step{Action: UnmaskUnit, Object: rec.Object, Target: name, Reason: "left the source; nodevirt masked it, so it is unmasked", Changes: []plan.Change{{Path: "state", From: "masked", To: "unmasked"}}}, Unit: name})
		}
		if rec.Enabled != nil && *rec.Enabled && enabledState(st.FileState) && st.FileState != "static" {
			d.prune(Action{Step: plan.Step{Action: DisableUnit, Object: rec.Object, Target: name, Reason: "left the source; nodevirt enabled it, so it is disabled", Changes: []plan.Change{{Path: "enabled", From: st.FileState, To: "disabled"}}}, Unit: name})
		}
		if d.o.UnitsLive && st.Props["ActiveState"] == "active" && rec.Ran != "" {
			d.prune(Action{Step: plan.Step{Action: StopUnit, Object: rec.Object, Target: name, Reason: "left the source; stop it", Disruptive: st.Props["SubState"] == "running"}, Unit: name})
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (d *differ) kargs() {
	want := d.h.KernelArgValues()
	var absent []string
	for _, k := range d.h.KernelArgsAbsent {
		absent = append(absent, k.Value)
	}
	// The record does not say which config a kernel argument came from: while
	// any config here is invalid, or removals are held, the ones nodevirt
	// staged stay staged (and recorded).
	keepWhy := d.held
	if keepWhy == "" && len(d.h.Invalid) > 0 {
		keepWhy = "a config that applies here is invalid, and it may be the one that set them; they stay until it is fixed"
	}
	var drop, kept []string
	for _, k := range d.rec.Kargs {
		switch {
		case contains(want, k):
		case keepWhy != "":
			kept = append(kept, k)
		default:
			drop = append(drop, k)
		}
	}
	want = append(want, kept...)
	drop = append(drop, absent...)
	if len(want) == 0 && len(drop) == 0 {
		return
	}
	obj := "kernel arguments"
	if len(d.h.KernelArgs) > 0 {
		obj = d.h.KernelArgs[0].Source.Object
	}
	if len(kept) > 0 {
		a := Action{Step: plan.Step{Action: Keep, Object: "kernel arguments", Target: "kernel arguments", Reason: "left the source, but kept: " + keepWhy}}
		if d.held != "" {
			a.Action, a.Reason = Hold, "held, not dropped: "+d.held
		}
		for _, k := range kept {
			a.Changes = append(a.Changes, plan.Change{Path: "kernelArguments[" + k + "]", From: "staged", To: "kept"})
		}
		d.add(a)
	}
	ks := d.o.Kargs
	if ks.Backend == "none" {
		ks.StagedErr = "" // nothing is staged anywhere; Apply says why
	}
	var changes []plan.Change
	drift := ks.StagedErr == "" && ks.Backend != "none"
	for _, k := range want {
		if !contains(ks.Staged, k) {
			changes = append(changes, plan.Change{Path: "kernelArguments[" + k + "]", From: "", To: "staged"})
			drift = drift && contains(d.rec.Kargs, k)
		}
	}
	for _, k := range drop {
		if contains(ks.Staged, k) {
			changes = append(changes, plan.Change{Path: "kernelArguments[" + k + "]", From: "staged", To: ""})
			drift = false
		}
	}
	if ks.StagedErr != "" {
		changes = []plan.Change{{Path: "kernelArguments", From: "unknown: " + ks.StagedErr, To: strings.Join(want, " ")}}
	}
	if len(changes) > 0 {
		a := Action{Step: plan.Step{Action: StageKargs, Object: obj, Target: "kernel arguments (" + ks.Backend + ")", Changes: changes, Reason: "stage for the next boot through " + ks.Backend}, KargsWant: want, KargsDrop: drop}
		if drift {
			a.Drift, a.Reason = true, "missing from the staged boot configuration; stage them again through "+ks.Backend
		}
		d.add(a)
	} else {
		d.p.InSync++
	}
	if !ks.RunningKnown || ks.Backend == "none" {
		return // nothing can be staged: a reboot would not help
	}
	var notRunning []string
	for _, k := range want {
		if !contains(ks.Running, k) {
			notRunning = append(notRunning, k+" (not in /proc/cmdline)")
		}
	}
	for _, k := range drop {
		if contains(ks.Running, k) {
			notRunning = append(notRunning, k+" (still in /proc/cmdline)")
		}
	}
	if len(notRunning) > 0 {
		d.add(Action{Step: plan.Step{Action: RebootRequired, Object: obj, Target: "kernel arguments", Reason: "the host runs without the staged kernel arguments: " + strings.Join(notRunning, ", ")}})
	}
}

// devices checks permitted devices against vfio-pci.
func (d *differ) devices() {
	ids := map[string]bool{}
	for _, id := range d.h.VFIO.IDs {
		ids[id] = true
	}
	wantBound := map[string]string{} // address -> object
	for _, r := range d.h.PCI {
		if r.External {
			continue
		}
		for _, dev := range d.o.Devices {
			if dev.ID() != r.Selector {
				continue
			}
			wantBound[dev.Address] = r.Source.Object
			if dev.Driver == "vfio-pci" {
				d.p.InSync++
				continue
			}
			current := dev.Driver
			if current == "" {
				current = "no driver"
			}
			iommu := ""
			if dev.IOMMUGroup == "" {
				iommu = "; it has no IOMMU group: the IOMMU is off (kernel argument not active yet?)"
			}
			rec, bound := d.rec.Devices[dev.Address]
			change := []plan.Change{{Path: "driver", From: dev.Driver, To: "vfio-pci"}}
			switch {
			case d.h.VFIO.Bind:
				a := Action{Step: plan.Step{Action: BindDevice, Object: r.Source.Object, Target: dev.Address, Changes: change, Reason: fmt.Sprintf("permitted as %s (%s); bind it to vfio-pci through driver_override%s", r.ResourceName, dev.ID(), iommu), Disruptive: dev.Driver != ""}, Device: dev.ID()}
				if bound && rec.ID == dev.ID() {
					a.Drift = true
					a.Reason = fmt.Sprintf("rebound to %s on the host; nodevirt bound it to vfio-pci for %s", current, r.ResourceName)
				}
				d.add(a)
			case ids[dev.ID()]:
				d.add(Action{Step: plan.Step{Action: RebootRequired, Object: r.Source.Object, Target: dev.Address, Changes: change, Reason: fmt.Sprintf("%s (%s) is bound to %s; vfio-pci claims it at boot (options vfio-pci ids=) — reboot, or opt in to run-time binding with %s%s",
					dev.Address, dev.ID(), current, nodeconfig.AnnotationVFIOBind, iommu)}, UntilBoot: false})
			default:
				d.add(Action{Step: plan.Step{Action: DeviceUnbound, Object: r.Source.Object, Target: dev.Address, Changes: change, Reason: fmt.Sprintf("permitted as %s but bound to %s, and nothing binds %s to vfio-pci: add it to %s, or annotate the HyperConverged with %s and %s",
					r.ResourceName, current, dev.ID(), nodeconfig.VFIOConfPath, nodeconfig.AnnotationVFIOGenerate, nodeconfig.AnnotationVFIOBind)}})
			}
		}
	}
	for _, addr := range sortedKeys(d.rec.Devices) {
		rec := d.rec.Devices[addr]
		if _, ok := wantBound[addr]; ok && d.h.VFIO.Bind {
			continue
		}
		if d.h.IsInvalid(rec.Object) {
			continue
		}
		present := false
		for _, dev := range d.o.Devices {
			present = present || dev.Address == addr
		}
		if !present {
			continue
		}
		d.prune(Action{Step: plan.Step{Action: UnbindDevice, Object: rec.Object, Target: addr, Disruptive: true, Changes: []plan.Change{{Path: "driver", From: "vfio-pci", To: rec.Previous}}, Reason: "no longer permitted (or run-time binding turned off); give it back to its driver"}})
	}
}

// labels checks SELinux labels set by chcon units.
func (d *differ) labels() {
	mode := d.o.SELinux.Mode
	for _, l := range d.h.Labels {
		if mode == "" || mode == "disabled" {
			d.add(Action{Step: plan.Step{Action: NotApplicable, Object: l.Source.Object, Target: l.Path, Reason: fmt.Sprintf("SELinux is not enabled on this host: the %s label check is not applicable", l.Type)}})
			continue
		}
		label, ok := d.o.SELinux.Labels[l.Path]
		typ := selinuxType(label)
		if ok && typ == l.Type {
			d.p.InSync++
			continue
		}
		if l.Unit == "" || d.started[l.Unit] {
			continue // the unit runs in this plan anyway
		}
		from := label
		if !ok {
			from = "(missing)"
		}
		a := Action{Step: plan.Step{Action: RestartUnit, Object: l.Source.Object, Target: l.Unit, Changes: []plan.Change{{Path: "security.selinux[" + l.Path + "]", From: from, To: "type " + l.Type}}, Reason: fmt.Sprintf("%s is labelled %s, not %s; run %s again", l.Path, orDash(typ), l.Type, l.Unit)}, Unit: l.Unit, Judge: JudgeSELinux}
		if rec, ok := d.rec.Units[l.Unit]; ok && rec.Ran != "" {
			a.Drift = true
		}
		if mode == "permissive" {
			a.Reason += " (SELinux is permissive)"
		}
		d.started[l.Unit] = true
		d.add(a)
	}
}

func orDash(s string) string {
	if s == "" {
		return "unlabelled"
	}
	return s
}

func selinuxType(ctx string) string {
	f := strings.SplitN(ctx, ":", 4)
	if len(f) < 3 {
		return ""
	}
	return f[2]
}

// reloads restarts systemd-modules-load and systemd-sysctl when their
// directories change, so modules load and settings apply without a reboot.
func (d *differ) reloads() {
	if !d.o.UnitsLive {
		return
	}
	for _, r := range reloaders {
		for _, p := range d.changedPaths {
			if strings.HasPrefix(p, r.dir) && !d.started[r.unit] {
				obj := ""
				for _, a := range d.p.Actions {
					if a.Target == p {
						obj = a.Object
					}
				}
				d.started[r.unit] = true
				d.add(Action{Step: plan.Step{Action: RestartUnit, Object: obj, Target: r.unit, Reason: r.why}, Unit: r.unit})
				break
			}
		}
	}
}

// reboot reports boot-time configuration (module options) that changed
// during this boot.
func (d *differ) reboot() {
	var reasons []string
	obj := ""
	for _, p := range d.changedPaths {
		if strings.HasPrefix(p, "/etc/modprobe.d/") {
			reasons = append(reasons, p+" changed: module options apply when the module loads (at boot)")
			for _, a := range d.p.Actions {
				if a.Target == p && obj == "" {
					obj = a.Object
				}
			}
		}
	}
	if len(reasons) > 0 {
		d.add(Action{Step: plan.Step{Action: RebootRequired, Object: obj, Target: "/etc/modprobe.d", Reason: strings.Join(reasons, "; ")}, UntilBoot: true})
		return
	}
	if r := d.rec.Reboot; r != nil && r.BootID != "" && r.BootID == d.o.BootID {
		d.add(Action{Step: plan.Step{Action: RebootRequired, Target: "/etc/modprobe.d", Reason: strings.Join(r.Reasons, "; ") + " (changed during this boot)"}})
	}
}

// keep reports invalid configs whose applied state stays.
func (d *differ) keep() {
	for _, obj := range d.h.Invalid {
		n := 0
		for _, r := range d.rec.Files {
			if r.Object == obj {
				n++
			}
		}
		reason := "the config is invalid and was never applied; nothing to do until it is fixed"
		if n > 0 {
			reason = fmt.Sprintf("the config is invalid; the %d files and units nodevirt applied from it stay as they are until it is fixed", n)
		}
		d.add(Action{Step: plan.Step{Action: Keep, Object: obj, Target: obj, Reason: reason}})
	}
}
