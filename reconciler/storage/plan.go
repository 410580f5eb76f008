package storage

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nodevirt/nodevirt/internal/pathelem"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/reconciler/plan"
)

// Action kinds of a storage plan.
const (
	// ActProvision makes a volume's backing: a hostpath directory, a
	// PersistentVolume's directory or a loop device's backing file.
	ActProvision plan.Action = "provision"
	// ActAttach attaches a loop device to its backing file.
	ActAttach plan.Action = "attach-loop"
	// ActBind binds a claim to a volume.
	ActBind plan.Action = "bind"
	// ActCreateDisk makes the blank disk.img of a plain claim, as KubeVirt
	// does for a Filesystem PersistentVolumeClaim.
	ActCreateDisk plan.Action = "create-disk"
	// ActImport starts (or restarts) a DataVolume's import in the background.
	ActImport plan.Action = "import"
	// ActAdopt records a DataVolume whose disk already holds its completed
	// import (nodevirt's marker next to it says so) as succeeded, instead
	// of importing it again: the state was lost or rebuilt.
	ActAdopt plan.Action = "adopt"
	// ActWait: nothing to do until something else happens (an import runs,
	// a consumer, an upload, a retry time, a clone source).
	ActWait = plan.Wait
	// ActRelease keeps a deleted claim's data (reclaim policy Retain) and
	// marks its volume Released.
	ActRelease plan.Action = "release"
	// ActDeleteData removes a deleted claim's data (reclaim policy Delete).
	ActDeleteData plan.Action = "delete-data"
	// ActDetach detaches the loop device of a PersistentVolume removed
	// from the source.
	ActDetach plan.Action = "detach-loop"
	// ActForget drops nodevirt's record of a removed volume; no data is touched.
	ActForget plan.Action = "forget"
	// ActHold: a delete the prune guard or a failed parse stopped.
	ActHold = plan.Hold
	// ActKeep: an invalid manifest; the object keeps its last good state.
	ActKeep = plan.Keep
	// ActConflict: the host holds something nodevirt does not own where a
	// volume should be; it is reported and left alone.
	ActConflict = plan.Conflict
)

// Action is one step of a storage plan: the shared step (its target is the
// path or device it works on) and the claim and volume apply works on.
type Action struct {
	plan.Step
	// Claim is the claim's key, "namespace/name"; Volume the volume's name.
	Claim  string `json:"claim,omitempty"`
	Volume string `json:"volume,omitempty"`
}

// Plan is what Apply would do; plain data, so a plan written as JSON and
// read back applies the same.
type Plan struct {
	Actions        []Action  `json:"actions"`
	Diags          diag.List `json:"diagnostics,omitempty"`
	PruneSuspended bool      `json:"pruneSuspended,omitempty"`
	// Claims is every claim's status as planned (for reports).
	Claims map[string]ClaimStatus `json:"claims,omitempty"`
	InSync []string               `json:"inSync,omitempty"`

	// State is the desired storage the plan was computed for. Secrets the
	// repository held are not written out with it: a plan read back from
	// JSON finds them in the agent's secrets directory at import time.
	State *State `json:"state"`
	// Binds are the bindings this plan makes, by claim key.
	Binds map[string]*Binding `json:"binds,omitempty"`
}

// Binding is where a claim's disk goes.
type Binding struct {
	Volume  string `json:"volume"`
	Dynamic bool   `json:"dynamic,omitempty"`
	// Dir is a Filesystem volume's directory, Device a Block volume's
	// device and Backing the file behind a loop device.
	Dir     string `json:"dir,omitempty"`
	Device  string `json:"device,omitempty"`
	Backing string `json:"backing,omitempty"`
	Class   string `json:"class,omitempty"`
	Reclaim string `json:"reclaimPolicy,omitempty"`
}

func (b *Binding) path() string {
	if b.Device != "" {
		return b.Device
	}
	return filepath.Join(b.Dir, "disk.img")
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool {
	for _, a := range p.Actions {
		switch a.Action {
		case ActWait, ActHold, ActKeep, ActConflict:
			continue
		}
		return false
	}
	return true
}

// Drift returns the actions that undo out-of-band changes.
func (p *Plan) Drift() []Action {
	var out []Action
	for _, a := range p.Actions {
		if a.Drift || a.Action == ActConflict {
			out = append(out, a)
		}
	}
	return out
}

// planner computes one plan.
type planner struct {
	m     *Manager
	st    *State
	p     *Plan
	now   time.Time
	taken map[string]string // volume -> claim bound in this plan
	// classes are the effective classes: as recorded once used.
	classes map[string]*Class
}

// Plan observes the host and computes what to do for st.
func (m *Manager) Plan(ctx context.Context, st *State) (*Plan, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pl := &planner{m: m, st: st, now: m.cfg.Now(), taken: map[string]string{}, classes: map[string]*Class{},
		p: &Plan{Diags: slices.Clone(st.Diags), PruneSuspended: st.PruneSuspended, Claims: map[string]ClaimStatus{}, State: st, Binds: map[string]*Binding{}}}
	pl.classesPlan()
	pl.volumesPlan()
	pl.claimsPlan()
	pl.removedClaims()
	pl.removedVolumes()
	m.pending = map[string]ClaimStatus{}
	m.desired = st
	for k, s := range pl.p.Claims {
		if m.claimRecs[k] == nil {
			m.pending[k] = s
		}
	}
	pl.p.Diags.Sort()
	return pl.p, ctx.Err()
}

func (pl *planner) add(a Action) {
	a.Stage = plan.StageStorage
	pl.p.Actions = append(pl.p.Actions, a)
}

// classesPlan checks that classes used by volumes did not change.
func (pl *planner) classesPlan() {
	for _, name := range slices.Sorted(maps.Keys(pl.st.Classes)) {
		c := pl.st.Classes[name]
		eff := c
		if rec := pl.m.classRecs[name]; rec != nil {
			if changes := classChanges(rec.Spec, c.Immutable()); len(changes) > 0 {
				d := diag.Diagnostic{Severity: diag.Error, File: c.file, Line: c.line, Object: c.Object, Path: changes[0].Path,
					Message: fmt.Sprintf("%s (first used %s)", ErrClassImmutable, rec.Since.Format(time.RFC3339)), Err: ErrClassImmutable}
				pl.p.Diags = append(pl.p.Diags, d)
				pl.add(Action{Step: plan.Step{Action: ActKeep, Object: c.Object, Changes: changes, Reason: "StorageClass parameters are immutable once volumes were provisioned from it; its volumes keep the class as first used"}})
				cp := *c
				cp.Provisioner, cp.Parameters, cp.ReclaimPolicy, cp.BindingMode = rec.Spec.Provisioner, rec.Spec.Parameters, rec.Spec.ReclaimPolicy, rec.Spec.BindingMode
				eff = &cp
			}
		}
		pl.classes[name] = eff
	}
}

func classChanges(was, now ClassSpec) []plan.Change {
	var out []plan.Change
	if was.Provisioner != now.Provisioner {
		out = append(out, plan.Change{Path: "provisioner", From: was.Provisioner, To: now.Provisioner})
	}
	for _, k := range slices.Sorted(maps.Keys(merge(was.Parameters, now.Parameters))) {
		if was.Parameters[k] != now.Parameters[k] {
			out = append(out, plan.Change{Path: "parameters." + k, From: was.Parameters[k], To: now.Parameters[k]})
		}
	}
	if was.ReclaimPolicy != now.ReclaimPolicy {
		out = append(out, plan.Change{Path: "reclaimPolicy", From: was.ReclaimPolicy, To: now.ReclaimPolicy})
	}
	if was.BindingMode != now.BindingMode {
		out = append(out, plan.Change{Path: "volumeBindingMode", From: was.BindingMode, To: now.BindingMode})
	}
	return out
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	maps.Copy(out, a)
	maps.Copy(out, b)
	return out
}

// volumesPlan makes static PersistentVolumes exist: directories, loop
// backing files and attached loop devices; host block devices are checked.
func (pl *planner) volumesPlan() {
	devices := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(pl.st.Volumes)) {
		v := pl.st.Volumes[name]
		rec := pl.m.volumeRecs[name]
		if v.Device {
			pl.devicePlan(v, devices)
			continue
		}
		if !v.Loop {
			dir, err := pl.m.host(v.Path)
			if err != nil {
				pl.add(Action{Step: plan.Step{Action: ActConflict, Object: v.Object, Target: v.Path, Reason: err.Error() + "; nothing is created there"}, Volume: name})
				pl.p.Diags = append(pl.p.Diags, diag.Errorf(v.Object, "spec.local.path", "%v", err))
				continue
			}
			if !pl.m.allowed(pl.st, dir) {
				pl.add(Action{Step: plan.Step{Action: ActConflict, Object: v.Object, Target: dir, Reason: "path is outside the allowed roots (the hostpath provisioner's paths, the state directory, --allowed-root); nothing is created there"}, Volume: name})
				pl.p.Diags = append(pl.p.Diags, diag.Errorf(v.Object, "spec.local.path", "%s is outside the allowed storage roots", v.Path))
				continue
			}
			if !pl.m.files.Exists(dir) {
				pl.add(Action{Step: plan.Step{Action: ActProvision, Object: v.Object, Target: dir, Reason: "create the volume's directory", Drift: rec != nil}, Volume: name})
			}
			continue
		}
		backing := pl.m.backing(name)
		exists := pl.m.files.Exists(backing)
		if !exists {
			reason := fmt.Sprintf("create the %s backing file of the loop device", quantity(v.Capacity))
			if rec != nil && rec.Backing != "" {
				reason = "the loop device's backing file is missing; create an empty one"
			}
			pl.add(Action{Step: plan.Step{Action: ActProvision, Object: v.Object, Target: backing, Reason: reason, Drift: rec != nil && rec.Backing != ""}, Volume: name})
		} else if size, err := pl.m.files.Size(backing); err == nil && size < v.Capacity {
			pl.add(Action{Step: plan.Step{Action: ActConflict, Object: v.Object, Target: backing, Changes: []plan.Change{{Path: "spec.capacity.storage", From: fmt.Sprint(size), To: fmt.Sprint(v.Capacity)}}, Reason: "the backing file is smaller than the volume's capacity; growing a used volume is not supported"}, Volume: name})
		}
		cur, attached, err := pl.m.loops.Backing(v.Path)
		switch {
		case err != nil:
			pl.add(Action{Step: plan.Step{Action: ActConflict, Object: v.Object, Target: v.Path, Reason: "cannot read the loop device: " + err.Error()}, Volume: name})
		case attached && cur != backing:
			pl.add(Action{Step: plan.Step{Action: ActConflict, Object: v.Object, Target: v.Path, Changes: []plan.Change{{Path: "backing_file", From: cur, To: backing}}, Reason: fmt.Sprintf("%s is attached to %s, not to this volume's file; nodevirt leaves it alone", v.Path, cur)}, Volume: name})
		case !attached:
			if others, _ := pl.m.loops.Find(backing); len(others) > 0 {
				pl.add(Action{Step: plan.Step{Action: ActConflict, Object: v.Object, Target: v.Path, Changes: []plan.Change{{Path: "device", From: strings.Join(others, ","), To: v.Path}}, Reason: fmt.Sprintf("the backing file is attached to %s instead of %s", strings.Join(others, ", "), v.Path)}, Volume: name})
				continue
			}
			reason := "attach the loop device"
			drift := rec != nil && rec.Attached
			if drift {
				reason = "the loop device is missing (host rebooted or detached out of band); attach it again"
			}
			pl.add(Action{Step: plan.Step{Action: ActAttach, Object: v.Object, Target: v.Path, Reason: reason, Drift: drift}, Volume: name})
		}
	}
}

// devicePlan checks a volume on a host block device: there is nothing to
// create, but its path must lead to a block device that no other volume
// names. devices maps resolved devices to the volume that took them.
func (pl *planner) devicePlan(v *Volume, devices map[string]string) {
	dev, err := pl.m.blockDevice(v.Path)
	if err == nil && devices[dev] != "" {
		err = fmt.Errorf("%s is also the device of PersistentVolume %s", dev, devices[dev])
	}
	if err != nil {
		pl.add(Action{Step: plan.Step{Action: ActConflict, Object: v.Object, Target: v.Path, Reason: err.Error() + "; no claim is bound to it"}, Volume: v.Name})
		pl.p.Diags = append(pl.p.Diags, diag.Diagnostic{Severity: diag.Error, Object: v.Object, Path: v.PathField,
			Message: fmt.Sprintf("%s: %v", v.Path, err), Err: ErrNotBlockDevice})
		return
	}
	devices[dev] = v.Name
}

// usable says whether a static volume can take a claim now.
func (pl *planner) usable(name string) bool {
	for _, a := range pl.p.Actions {
		if a.Volume == name && a.Action == ActConflict {
			return false
		}
	}
	return true
}

// claimsPlan binds claims and imports DataVolumes.
func (pl *planner) claimsPlan() {
	// Records bound earlier keep their volumes.
	for key, r := range pl.m.claimRecs {
		if r.Volume != "" {
			pl.taken[r.Volume] = key
		}
	}
	keys := slices.Sorted(maps.Keys(pl.st.Claims))
	// Clone sources first, so a clone sees its source's plan.
	sort.SliceStable(keys, func(i, j int) bool {
		ci, cj := pl.st.Claims[keys[i]], pl.st.Claims[keys[j]]
		return !isClone(ci) && isClone(cj)
	})
	for _, key := range keys {
		pl.claim(pl.st.Claims[key])
	}
	for key, c := range pl.st.Elsewhere {
		if _, known := pl.m.claimRecs[key]; known {
			pl.add(Action{Step: plan.Step{Action: ActKeep, Object: "claim " + key, Reason: c + "; its data here is kept"}, Claim: key})
		}
	}
	for obj := range pl.st.Invalid {
		for key, r := range pl.m.claimRecs {
			if r.Object == obj || r.Owner == obj {
				pl.add(Action{Step: plan.Step{Action: ActKeep, Object: r.Object, Reason: "manifest is invalid; the claim keeps its last good state"}, Claim: key})
				pl.p.Claims[key] = statusOf(r)
			}
		}
	}
}

func isClone(c *Claim) bool { return c.Source != nil && c.Source.Kind == SourcePVC }

func (pl *planner) status(c *Claim, phase, reason, msg string) {
	pl.p.Claims[c.Key()] = ClaimStatus{Phase: phase, Reason: reason, Message: msg}
}

func (pl *planner) claim(c *Claim) {
	key := c.Key()
	rec := pl.m.claimRecs[key]
	var b *Binding
	if rec != nil && rec.Volume != "" {
		b = pl.bound(rec)
	}
	if b == nil {
		if !c.Immediate && len(c.Consumers) == 0 {
			phase := PhasePending
			if c.IsDataVolume() {
				phase = PhaseWaitForFirstConsumer
			}
			msg := fmt.Sprintf("storage class %q binds at the first consumer; no VM on this node uses the claim yet", c.Class)
			pl.add(Action{Step: plan.Step{Action: ActWait, Object: c.Object, Reason: msg}, Claim: key})
			pl.status(c, phase, "WaitForFirstConsumer", msg)
			return
		}
		var why string
		b, why = pl.choose(c)
		if b == nil {
			pl.add(Action{Step: plan.Step{Action: ActWait, Object: c.Object, Reason: why}, Claim: key})
			pl.status(c, PhasePending, "Pending", why)
			return
		}
		if c.IsDataVolume() {
			if v, _, msg := pl.m.inspect(c, rec, b); v == diskConflict {
				// Not even bound: a binding would make the file the
				// claim's, to import over or delete with it.
				pl.add(Action{Step: plan.Step{Action: ActConflict, Object: c.Object, Target: b.diskFile(), Reason: msg}, Claim: key})
				pl.status(c, PhasePending, "DiskExists", msg)
				return
			}
		}
		pl.taken[b.Volume] = key
		if b.Dynamic {
			pl.add(Action{Step: plan.Step{Action: ActProvision, Object: c.Object, Target: b.Dir, Reason: fmt.Sprintf("hostpath provisioner: volume %s for the claim", b.Volume)}, Claim: key, Volume: b.Volume})
		}
		pl.add(Action{Step: plan.Step{Action: ActBind, Object: c.Object, Target: b.path(), Reason: fmt.Sprintf("bind to PersistentVolume %s (%s)", b.Volume, bindWhy(c))}, Claim: key, Volume: b.Volume})
		pl.p.Binds[key] = b
	} else {
		pl.p.Binds[key] = b
	}
	pl.data(c, rec, b)
}

func bindWhy(c *Claim) string {
	if len(c.Consumers) > 0 {
		return "used by " + strings.Join(c.Consumers, ", ")
	}
	return "volumeBindingMode Immediate"
}

// bound is the binding of a claim bound earlier.
func (pl *planner) bound(rec *claimRecord) *Binding {
	v := pl.m.volumeRecs[rec.Volume]
	if v == nil {
		return nil
	}
	return &Binding{Volume: v.Name, Dynamic: v.Dynamic, Dir: v.Dir, Device: v.Device, Backing: v.Backing, Class: v.Class, Reclaim: v.ReclaimPolicy}
}

// choose finds a volume for a claim: the smallest matching static volume,
// else a new hostpath volume when the class provisions them.
func (pl *planner) choose(c *Claim) (*Binding, string) {
	var fits []*Volume
	for _, name := range slices.Sorted(maps.Keys(pl.st.Volumes)) {
		v := pl.st.Volumes[name]
		if pl.taken[name] != "" || !pl.usable(name) {
			continue
		}
		if rec := pl.m.volumeRecs[name]; rec != nil && rec.Phase == VolumeReleased {
			continue // reuse needs a new PersistentVolume (seed 8.18.19)
		}
		if matches(c, v) {
			fits = append(fits, v)
		}
	}
	sort.SliceStable(fits, func(i, j int) bool { return fits[i].Capacity < fits[j].Capacity })
	var first *Binding
	for _, v := range fits {
		b := &Binding{Volume: v.Name, Class: v.Class, Reclaim: v.ReclaimPolicy}
		switch {
		case v.Loop:
			b.Device, b.Backing = v.Path, pl.m.backing(v.Name)
		case v.Device:
			b.Device = pl.m.devicePath(v.Path)
		default:
			dir, err := pl.m.host(v.Path)
			if err != nil {
				return nil, err.Error()
			}
			b.Dir = dir
		}
		// A volume holding a claim's marked disk belongs to that claim:
		// after a lost state the claim finds its own volume again, and
		// no other claim is bound onto its data.
		mk, _ := pl.m.readMarker(b.diskFile())
		switch {
		case mk != nil && mk.Claim == c.Key():
			return b, ""
		case mk == nil && first == nil:
			first = b
		}
	}
	if first != nil {
		return first, ""
	}
	cls := pl.classes[c.Class]
	if cls != nil && isHostPath(cls.Provisioner) && c.VolumeName == "" && len(c.Selector) == 0 {
		hp := pl.st.HostPath
		if hp == nil {
			return nil, ErrNoHostPath.Error()
		}
		root := hp.Path
		if pool := cls.Parameters["storagePool"]; pool != "" {
			root = hp.Pools[pool]
		}
		name := dynamicName(c.Key())
		dirName := name
		if hp.UseNamingPrefix {
			dirName = c.Name + "-" + name
		}
		// The claim name becomes a directory name: one clean element only.
		base, err := pl.m.host(root)
		if err != nil {
			return nil, err.Error()
		}
		dir, err := pathelem.Join(base, dirName)
		if err != nil {
			return nil, fmt.Sprintf("the claim's name cannot be a directory on the host: %v", err)
		}
		return &Binding{Volume: name, Dynamic: true, Dir: dir, Class: cls.Name, Reclaim: cls.ReclaimPolicy}, ""
	}
	what := []string{fmt.Sprintf("class %q", c.Class), "capacity ≥ " + quantity(c.Capacity), "volumeMode " + c.VolumeMode,
		"accessModes " + strings.Join(c.AccessModes, ",")}
	if len(c.Selector) > 0 {
		what = append(what, "labels "+fmt.Sprint(c.Selector))
	}
	if c.VolumeName != "" {
		what = append(what, "name "+c.VolumeName)
	}
	msg := "no PersistentVolume on this node matches: " + strings.Join(what, ", ")
	// The volumes of the claim's class say what is off, so the fix is
	// one field away.
	var near []string
	for _, sameClass := range []bool{true, false} {
		for _, name := range slices.Sorted(maps.Keys(pl.st.Volumes)) {
			v := pl.st.Volumes[name]
			why := mismatch(c, v)
			if why == "" {
				// It fits, but is not free.
				switch rec := pl.m.volumeRecs[name]; {
				case pl.taken[name] != "":
					why = "bound to claim " + pl.taken[name]
				case rec != nil && rec.Phase == VolumeReleased:
					why = "Released (reuse needs a new PersistentVolume)"
				case !pl.usable(name):
					why = "in conflict (see its action)"
				}
			}
			if (v.Class == c.Class) == sameClass && why != "" && len(near) < 3 {
				near = append(near, fmt.Sprintf("PersistentVolume %s: %s", name, why))
			}
		}
	}
	if len(near) > 0 {
		msg += " (" + strings.Join(near, "; ") + ")"
	}
	switch {
	case cls == nil && c.Class != "":
		msg += fmt.Sprintf("; and no StorageClass %q in the repository to provision one", c.Class)
	case cls != nil && !isHostPath(cls.Provisioner) && cls.Provisioner != ProvisionerNone:
		msg += fmt.Sprintf("; provisioner %q cannot provision on this host", cls.Provisioner)
	}
	return nil, msg
}

// matches is the PersistentVolume binder's test.
func matches(c *Claim, v *Volume) bool { return mismatch(c, v) == "" }

// mismatch says why v cannot take c ("" if it can), in the binder's order:
// pre-binding, class, volumeMode, capacity, access modes, labels.
func mismatch(c *Claim, v *Volume) string {
	if v.ClaimRef != "" && v.ClaimRef != c.Key() {
		return "claimRef is " + v.ClaimRef
	}
	if c.VolumeName != "" && c.VolumeName != v.Name {
		return "the claim names volume " + c.VolumeName
	}
	if v.Class != c.Class {
		return fmt.Sprintf("storageClassName is %q", v.Class)
	}
	if v.VolumeMode != c.VolumeMode {
		return "volumeMode is " + v.VolumeMode
	}
	if v.Capacity < c.Capacity {
		return "capacity is " + quantity(v.Capacity)
	}
	for _, m := range c.AccessModes {
		if !slices.Contains(v.AccessModes, m) {
			return "accessModes are " + strings.Join(v.AccessModes, ",")
		}
	}
	for k, want := range c.Selector {
		if v.Labels[k] != want {
			return fmt.Sprintf("label %s is %q", k, v.Labels[k])
		}
	}
	return ""
}

// data decides what a bound claim's data needs.
func (pl *planner) data(c *Claim, rec *claimRecord, b *Binding) {
	key := c.Key()
	target := b.path()
	block := b.Device != ""
	st := func(phase, reason, msg string, progress float64) {
		pl.p.Claims[key] = ClaimStatus{Phase: phase, Reason: reason, Message: msg, Progress: progress, Path: target, Block: block, Volume: b.Volume,
			Ready: phase == PhaseSucceeded || phase == PhaseBound}
	}
	if !c.IsDataVolume() {
		from, err := pl.m.movedFrom(b)
		pulled := rec != nil && rec.Phase == PhaseSucceeded
		switch {
		case err != nil && !pulled:
			msg := fmt.Sprintf("PersistentVolume %s moved here, but where its data is cannot be told: %v", b.Volume, err)
			pl.add(Action{Step: plan.Step{Action: ActWait, Object: c.Object, Target: target, Reason: msg}, Claim: key})
			st(PhasePending, "MovedVolume", msg, 0)
			return
		case from != "" && !pulled && (block || !pl.m.files.Exists(target)):
			// Its data is on the node that held the volume: pulled as a
			// DataVolume's import is (below), with its retries; a blank
			// disk here would hide it.
		case !block && !pl.m.files.Exists(target):
			// A plain claim: a blank disk.img as KubeVirt makes one,
			// unless the volume already holds a disk.
			pl.add(Action{Step: plan.Step{Action: ActCreateDisk, Object: c.Object, Target: target, Reason: fmt.Sprintf("create a blank %s disk.img (filesystem overhead %.1f%%)", quantity(c.DiskSize), c.Overhead*100), Drift: rec != nil && rec.Phase == PhaseBound}, Claim: key, Volume: b.Volume})
			st(PhasePending, "Provisioning", "", 0)
			return
		default:
			st(PhaseBound, "Bound", "", 100)
			return
		}
	}
	running := pl.m.jobs[key] != nil
	switch {
	case running:
		phase := rec.Phase
		pl.add(Action{Step: plan.Step{Action: ActWait, Object: c.Object, Target: target, Reason: fmt.Sprintf("%s %.1f%%", phase, rec.Progress)}, Claim: key})
		st(phase, rec.Reason, rec.Message, rec.Progress)
		return
	case rec != nil && rec.Phase == PhaseSucceeded && rec.Hash != c.Hash:
		pl.p.Diags = append(pl.p.Diags, diag.Diagnostic{Severity: diag.Error, File: c.File, Line: c.Line, Object: c.Object, Path: "spec",
			Message: ErrDVImmutable.Error(), Err: ErrDVImmutable})
		pl.add(Action{Step: plan.Step{Action: ActKeep, Object: c.Object, Target: target, Reason: ErrDVImmutable.Error()}, Claim: key})
		st(PhaseSucceeded, rec.Reason, rec.Message, 100)
		return
	case rec != nil && rec.Phase == PhaseSucceeded:
		if !block && !pl.m.files.Exists(target) && c.Source != nil && c.Source.Kind == SourceUpload {
			// Only its user has the image: nothing can fetch it again.
			msg := "disk.img of the completed upload is missing; " + readyMessage(c)
			pl.add(Action{Step: plan.Step{Action: ActWait, Object: c.Object, Target: target, Drift: true, Reason: msg}, Claim: key})
			st(PhaseUploadReady, PhaseUploadReady, msg, 0)
			return
		}
		if !block && !pl.m.files.Exists(target) {
			pl.add(Action{Step: plan.Step{Action: ActImport, Object: c.Object, Target: target, Drift: true, Reason: "disk.img of a completed import is missing; import it again"}, Claim: key})
			st(PhaseImportScheduled, "Missing", "disk.img is missing", 0)
			return
		}
		pl.p.InSync = append(pl.p.InSync, c.Object)
		st(PhaseSucceeded, rec.Reason, rec.Message, 100)
		return
	}
	switch v, mk, msg := pl.m.inspect(c, rec, b); v {
	case diskAdopt:
		pl.add(Action{Step: plan.Step{Action: ActAdopt, Object: c.Object, Target: mk.File, Reason: fmt.Sprintf("%s carries nodevirt's marker of this DataVolume's completed import (finished %s); adopt it instead of importing again",
			mk.File, mk.Finished.Format(time.RFC3339))}, Claim: key, Volume: b.Volume})
		st(PhaseSucceeded, "Completed", "adopted: the disk holds the completed import", 100)
		return
	case diskConflict:
		pl.add(Action{Step: plan.Step{Action: ActConflict, Object: c.Object, Target: b.diskFile(), Reason: msg}, Claim: key, Volume: b.Volume})
		st(PhasePending, "DiskExists", msg, 0)
		return
	}
	src := c.Source
	if src == nil && c.IsDataVolume() {
		return
	}
	if from, err := pl.m.movedFrom(b); err != nil {
		msg := fmt.Sprintf("PersistentVolume %s moved here, but where its data is cannot be told: %v", b.Volume, err)
		pl.add(Action{Step: plan.Step{Action: ActWait, Object: c.Object, Target: target, Reason: msg}, Claim: key})
		st(PhaseImportScheduled, "MovedVolume", msg, 0)
		return
	} else if from != "" {
		src = &Source{Kind: SourcePeer, URL: from}
	}
	switch src.Kind {
	case SourceUpload:
		pl.upload(c, rec, b, target, st)
		return
	case SourcePVC:
		srcStatus, ok := pl.p.Claims[src.CloneOf]
		if !ok {
			if r := pl.m.claimRecs[src.CloneOf]; r != nil {
				srcStatus, ok = statusOf(r), true
			}
		}
		if !ok || !srcStatus.Ready {
			msg := fmt.Sprintf("clone source %s is not ready (%s)", src.CloneOf, srcStatus.Phase)
			pl.add(Action{Step: plan.Step{Action: ActWait, Object: c.Object, Target: target, Reason: msg}, Claim: key})
			st(PhaseCloneScheduled, "CloneScheduled", msg, 0)
			return
		}
	}
	reason := "import " + describeSource(src)
	phase := PhaseImportScheduled
	if src.Kind == SourcePVC {
		phase = PhaseCloneScheduled
	}
	if rec != nil {
		switch {
		case rec.Phase == PhaseFailed && rec.Hash == c.Hash && pl.now.Before(rec.Retry):
			msg := fmt.Sprintf("Failed (attempt %d): %s; retry in %s", rec.Attempts, rec.Message, rec.Retry.Sub(pl.now).Round(time.Second))
			pl.add(Action{Step: plan.Step{Action: ActWait, Object: c.Object, Target: target, Reason: msg}, Claim: key})
			st(PhaseFailed, rec.Reason, rec.Message, 0)
			return
		case rec.Phase == PhaseFailed && rec.Hash == c.Hash:
			reason = fmt.Sprintf("retry %d after: %s", rec.Attempts, rec.Message)
		case rec.Phase == PhaseFailed:
			reason = "the source changed after a failed import; " + reason
		case rec.Phase == PhaseImportInProgress || rec.Phase == PhaseCloneInProgress:
			reason = fmt.Sprintf("restart the import interrupted at %.1f%% (the agent stopped); ", rec.Progress) + reason
		}
	}
	pl.add(Action{Step: plan.Step{Action: ActImport, Object: c.Object, Target: target, Reason: reason}, Claim: key})
	msg := ""
	if rec != nil {
		msg = rec.Message
	}
	st(phase, phase, msg, 0)
}

// upload decides an upload DataVolume's phase: UploadScheduled until its
// volume is bound and prepared, then UploadReady until an upload succeeds;
// a failed upload shows Failed until the next one starts.
func (pl *planner) upload(c *Claim, rec *claimRecord, b *Binding, target string, st func(phase, reason, msg string, progress float64)) {
	key := c.Key()
	wait := func(reason string) {
		pl.add(Action{Step: plan.Step{Action: ActWait, Object: c.Object, Target: target, Reason: reason}, Claim: key})
	}
	if why := pl.unprepared(rec, b); why != "" {
		msg := "waiting for the volume: " + why
		wait(msg)
		st(PhaseUploadScheduled, PhaseUploadScheduled, msg, 0)
		return
	}
	switch {
	case rec.Phase == PhaseFailed:
		wait(fmt.Sprintf("the last upload failed: %s; upload again: %s", rec.Message, uploadCommand(c.Namespace, c.Name)))
		st(PhaseFailed, rec.Reason, rec.Message, 0)
	case rec.Reason == ReasonUploading:
		// The agent stopped during the transfer: what arrived is gone.
		msg := "the upload was interrupted (the agent stopped); " + readyMessage(c)
		wait(msg)
		st(PhaseUploadReady, PhaseUploadReady, msg, 0)
	default:
		wait(readyMessage(c))
		st(PhaseUploadReady, PhaseUploadReady, readyMessage(c), 0)
	}
}

// unprepared says why a claim's volume cannot take data yet ("" when it
// can): bound and provisioned only by this plan's actions, or not there.
func (pl *planner) unprepared(rec *claimRecord, b *Binding) string {
	if rec == nil || rec.Volume == "" {
		return "the claim is bound by this reconcile"
	}
	for _, a := range pl.p.Actions {
		if a.Volume != b.Volume {
			continue
		}
		switch a.Action {
		case ActProvision, ActAttach, ActBind:
			return fmt.Sprintf("%s %s first", a.Action, a.Target)
		case ActConflict:
			return a.Reason
		}
	}
	if ok, why := pl.m.prepared(b); !ok {
		return why
	}
	return ""
}

func describeSource(s *Source) string {
	switch s.Kind {
	case SourceHTTP, SourceRegistry:
		return "from " + s.URL
	case SourcePVC:
		return "clone of " + s.CloneOf
	case SourcePeer:
		return "from node " + s.URL + ", which held the volume before it moved here"
	}
	return s.Kind
}

// removedClaims releases or deletes the data of claims no longer desired.
func (pl *planner) removedClaims() {
	var gone []string
	withData := 0
	for key, r := range pl.m.claimRecs {
		if r.hasData() {
			withData++
		}
		if pl.st.Claims[key] != nil || pl.st.Elsewhere[key] != "" || pl.st.Invalid[r.Object] != "" || (r.Owner != "" && pl.st.Invalid[r.Owner] != "") {
			continue
		}
		gone = append(gone, key)
	}
	sort.Strings(gone)
	removing := 0
	for _, key := range gone {
		if pl.m.claimRecs[key].hasData() {
			removing++
		}
	}
	held := ""
	switch {
	case len(gone) > 0 && pl.st.PruneSuspended:
		held = "a file of this revision failed to parse, so the objects it held are unknown; nothing with data is removed"
	case removing > 0 && removing == withData && !pl.st.AllowPruneAll && !pl.m.cfg.AllowPruneAll:
		held = fmt.Sprintf("this revision would remove every claim with data on this node (%d); confirm with --allow-prune-all or the %s annotation", removing, annotationAllowPruneAll)
	}
	for _, key := range gone {
		r := pl.m.claimRecs[key]
		if held != "" {
			pl.add(Action{Step: plan.Step{Action: ActHold, Object: r.Object, Target: r.Path, Reason: held}, Claim: key})
			continue
		}
		why := "manifest removed from the source"
		if r.Owner != "" {
			why = "its VM " + r.Owner + " was removed (it owned the DataVolume through dataVolumeTemplates)"
		}
		v := pl.m.volumeRecs[r.Volume]
		if pl.m.cfg.InUse != nil && r.Path != "" && pl.m.cfg.InUse(r.Path) {
			// A shareable claim is one path for all its VMs: any running
			// one holds it.
			pl.add(Action{Step: plan.Step{Action: ActHold, Object: r.Object, Target: r.Path, Reason: why + "; but a running domain still uses its disk"}, Claim: key})
			continue
		}
		switch {
		case v == nil:
			pl.add(Action{Step: plan.Step{Action: ActForget, Object: r.Object, Reason: why + "; it was never bound"}, Claim: key})
		case v.hostDevice():
			pl.add(Action{Step: plan.Step{Action: ActRelease, Object: r.Object, Target: r.Path, Reason: why + fmt.Sprintf("; PersistentVolume %s is a host block device, which nodevirt never erases: the data stays and the volume becomes Released (reuse needs a new PersistentVolume)", v.Name)}, Claim: key, Volume: v.Name})
		case v.ReclaimPolicy == Retain:
			pl.add(Action{Step: plan.Step{Action: ActRelease, Object: r.Object, Target: r.Path, Reason: why + fmt.Sprintf("; reclaim policy Retain: the data stays and PersistentVolume %s becomes Released (reuse needs a new PersistentVolume)", v.Name)}, Claim: key, Volume: v.Name})
		default:
			pl.add(Action{Step: plan.Step{Action: ActDeleteData, Object: r.Object, Target: dataOf(v), Reason: why + fmt.Sprintf("; reclaim policy Delete: the data of PersistentVolume %s is removed", v.Name)}, Claim: key, Volume: v.Name})
		}
	}
}

func dataOf(v *volumeRecord) string {
	if v.Backing != "" {
		return v.Backing
	}
	if v.hostDevice() {
		return v.Device
	}
	if v.Dynamic {
		return v.Dir
	}
	return filepath.Join(v.Dir, "disk.img")
}

// removedVolumes handles static PersistentVolumes removed from the source.
func (pl *planner) removedVolumes() {
	for _, name := range slices.Sorted(maps.Keys(pl.m.volumeRecs)) {
		v := pl.m.volumeRecs[name]
		if v.Dynamic || pl.st.Volumes[name] != nil || pl.st.Invalid[v.Object] != "" {
			continue
		}
		if away, ok := pl.st.Away[name]; ok && (v.Claim != "" || v.Phase == VolumeReleased) {
			// A moved volume: the new node pulls this copy, which must
			// outlive the move (seed 8.18.12) until that node runs the VM.
			why := away.Reason + ": its data stays here for that node to pull, until that node runs the VM"
			if pl.m.cfg.Released != nil && v.Claim != "" {
				done, wait := pl.m.cfg.Released(name, pl.m.vmsOf(v.Claim))
				// The VM's stopped domain may keep its definition here,
				// for the VM may come back: only a running one holds it.
				inUse := pl.m.cfg.Running == nil || pl.m.cfg.Running(dataOf(v))
				switch {
				case done && !inUse && v.hostDevice():
					pl.add(Action{Step: plan.Step{Action: ActForget, Object: v.Object, Target: dataOf(v),
						Reason: away.Reason + ", where its VM now runs: nodevirt forgets the host block device here and never erases it"}, Claim: v.Claim, Volume: name})
					continue
				case done && !inUse:
					pl.add(Action{Step: plan.Step{Action: ActDeleteData, Object: v.Object, Target: dataOf(v),
						Reason: away.Reason + ", where its VM now runs: the copy here goes"}, Claim: v.Claim, Volume: name})
					continue
				case wait != "":
					why = away.Reason + ": " + wait
				}
			}
			pl.add(Action{Step: plan.Step{Action: ActHold, Object: v.Object, Target: dataOf(v), Reason: why}, Volume: name})
			continue
		}
		if v.Claim != "" && pl.st.Claims[v.Claim] != nil {
			pl.add(Action{Step: plan.Step{Action: ActHold, Object: v.Object, Reason: fmt.Sprintf("bound to claim %s; the volume goes once the claim does (kubernetes.io/pv-protection)", v.Claim)}, Volume: name})
			continue
		}
		if pl.st.PruneSuspended {
			pl.add(Action{Step: plan.Step{Action: ActHold, Object: v.Object, Reason: "a file of this revision failed to parse; pruning is suspended"}, Volume: name})
			continue
		}
		switch {
		case v.hostDevice():
			pl.add(Action{Step: plan.Step{Action: ActForget, Object: v.Object, Target: v.Device, Reason: "PersistentVolume removed from the source; its host block device is left as it is"}, Volume: name})
		case v.Device != "":
			reason := "PersistentVolume removed from the source: detach its loop device and remove the empty backing file"
			if v.Phase == VolumeReleased || v.Claim != "" {
				reason = "PersistentVolume removed from the source: detach its loop device; the backing file keeps the retained data at " + v.Backing
			}
			pl.add(Action{Step: plan.Step{Action: ActDetach, Object: v.Object, Target: v.Device, Reason: reason}, Volume: name})
		default:
			pl.add(Action{Step: plan.Step{Action: ActForget, Object: v.Object, Target: v.Dir, Reason: "PersistentVolume removed from the source; its directory is left as it is"}, Volume: name})
		}
	}
}
