package snapshot

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	snapshotv1beta1 "kubevirt.io/api/snapshot/v1beta1"

	"github.com/nodevirt/nodevirt/reconciler/plan"
)

// Stage is the snapshot stage's name in plans and reports. It applies
// after storage setup and before the VMs.
const Stage plan.Stage = "snapshot"

// Actions of the snapshot stage.
const (
	// ActSnapshot copies every claim volume of a stopped VM into a content.
	ActSnapshot plan.Action = "snapshot"
	// ActRestore copies a content back into its VM's volumes.
	ActRestore plan.Action = "restore"
	// ActFail records a snapshot or restore that cannot succeed, with why.
	ActFail plan.Action = "fail"
	// ActDeleteContent removes a content whose snapshot left the source.
	ActDeleteContent plan.Action = "delete-content"
	// ActRetain keeps the content of a snapshot with deletionPolicy Retain
	// that left the source; only the host holds it then.
	ActRetain plan.Action = "retain-content"
	// ActForget drops the record of a restore that left the source, or of a
	// snapshot that never made a content.
	ActForget plan.Action = "forget"
	// ActLost records a content whose files vanished (drift): it is no
	// longer ready to use.
	ActLost plan.Action = "content-lost"
)

// Step is one step of a snapshot plan.
type Step struct {
	plan.Step
	// Snapshot or Restore is the object's key, "namespace/name".
	Snapshot string `json:"snapshot,omitempty"`
	Restore  string `json:"restore,omitempty"`
}

// Plan is what Apply would do.
type Plan struct {
	Steps []Step `json:"steps"`
	State *State `json:"state"`
}

// Drift returns the steps that report out-of-band changes.
func (p *Plan) Drift() []Step {
	var out []Step
	for _, s := range p.Steps {
		if s.Drift {
			out = append(out, s)
		}
	}
	return out
}

// Messages said in plans and statuses.
const (
	msgRunningSnapshot = "the VM is running; an offline snapshot waits until it is stopped"
	msgRunningRestore  = "the VM is running; a restore waits until it is stopped"
	msgDeadline        = "snapshot deadline exceeded"
	msgImmutable       = "spec in immutable after creation: the snapshot keeps what it took; commit a new VirtualMachineSnapshot under another name to take another"
)

type planner struct {
	m       *Manager
	st      *State
	p       *Plan
	running map[string]bool
	// taking are the snapshots this plan takes, so a restore from one can
	// follow it in the same apply.
	taking map[string]bool
}

func (pl *planner) add(s Step) {
	s.Stage = Stage
	pl.p.Steps = append(pl.p.Steps, s)
}

// Plan computes the steps for st without changing anything.
func (m *Manager) Plan(ctx context.Context, st *State) (*Plan, error) {
	// Only snapshots and restores to take ask whether their VM runs; a node
	// without any would list every domain a second time per iteration.
	var running map[string]bool
	if len(st.Snapshots) > 0 || len(st.Restores) > 0 {
		var err error
		if running, err = m.running(ctx); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	pl := &planner{m: m, st: st, p: &Plan{State: st, Steps: []Step{}}, running: running, taking: map[string]bool{}}
	for _, s := range st.Snapshots {
		pl.snapshot(s)
	}
	pl.removedSnapshots()
	for _, r := range st.Restores {
		pl.restore(r)
	}
	pl.removedRestores()
	return pl.p, nil
}

func (pl *planner) snapshot(s *Snapshot) {
	key := s.Key()
	rec := pl.m.snaps[key]
	vm := pl.st.VMs[s.Namespace+"/"+s.VM]
	vmObj := "VirtualMachine " + s.Namespace + "/" + s.VM
	step := func(a plan.Action, target, why string) {
		pl.add(Step{Step: plan.Step{Action: a, Object: s.Object, Target: target, Reason: why}, Snapshot: key})
	}
	if vm != nil && vm.Elsewhere {
		return // the node the VM runs on takes it
	}
	switch {
	case rec != nil && rec.Retained:
		step(plan.Conflict, rec.Dir, fmt.Sprintf("the content of an earlier snapshot of this name was retained (deletionPolicy Retain) at %s; move it away or give the snapshot another name", rec.Dir))
		return
	case rec != nil && rec.Phase == phaseSucceeded:
		if rec.Hash != s.Hash {
			step(plan.Keep, rec.Dir, msgImmutable)
			return
		}
		var lost []string
		for _, v := range rec.Volumes {
			if !pl.m.files.Exists(v.File) {
				lost = append(lost, v.File)
			}
		}
		if len(lost) > 0 {
			pl.add(Step{Step: plan.Step{Action: ActLost, Object: s.Object, Target: rec.Dir, Drift: true,
				Reason: "content files missing: " + strings.Join(lost, ", ") + "; the snapshot cannot be restored (delete it and take a new one)"}, Snapshot: key})
		}
		return
	case rec != nil && rec.Phase == phaseFailed:
		if rec.Hash != s.Hash {
			step(plan.Keep, "", "the snapshot failed ("+rec.Error+"); "+msgImmutable)
		}
		return
	}
	// Not taken yet.
	if rec != nil && s.FailureDead > 0 && pl.m.cfg.Now().Sub(rec.FirstSeen) > s.FailureDead {
		step(ActFail, "", fmt.Sprintf("%s (%s after it was first seen; waiting: %s)", msgDeadline, s.FailureDead, rec.Waiting))
		return
	}
	switch {
	case vm == nil:
		step(plan.Wait, "", vmObj+" is not in the source; the snapshot waits for it")
	case vm.Refused != "":
		step(ActFail, "", "storage cannot snapshot: "+vm.Refused)
	case pl.running[vm.Domain]:
		step(plan.Wait, vm.Domain, msgRunningSnapshot)
	default:
		if why := pl.claimsReady(vm); why != "" {
			step(plan.Wait, "", why)
			return
		}
		why := fmt.Sprintf("copy %d volume(s) of the stopped %s into its content", len(vm.Volumes), vmObj)
		if len(vm.Volumes) == 0 {
			why = fmt.Sprintf("%s has no DataVolume or PVC volume; the content holds its spec only", vmObj)
		}
		step(ActSnapshot, pl.m.dirOf(key), why)
		pl.taking[key] = true
	}
}

// claimsReady says why vm's claims cannot be copied yet, or "".
func (pl *planner) claimsReady(vm *VM) string {
	for _, v := range vm.Volumes {
		ns, name, _ := strings.Cut(v.Claim, "/")
		cs, ok := pl.m.claims.Claim(ns, name)
		switch {
		case !ok:
			return fmt.Sprintf("volume %s: claim %s is not provisioned yet", v.Name, v.Claim)
		case !cs.Ready || cs.Path == "":
			return fmt.Sprintf("volume %s: claim %s is not ready (%s)", v.Name, v.Claim, cs.Phase)
		}
	}
	return ""
}

// removedSnapshots deletes (or, under Retain, keeps) the contents of
// snapshots that left the source, behind the prune guard.
func (pl *planner) removedSnapshots() {
	desired := map[string]bool{}
	for _, s := range pl.st.Snapshots {
		desired[s.Key()] = true
	}
	var gone []string
	withContent, removing := 0, 0
	for _, key := range sortedKeys(pl.m.snaps) {
		r := pl.m.snaps[key]
		has := r.Phase == phaseSucceeded && !r.Retained
		if has {
			withContent++
		}
		if desired[key] || pl.st.Invalid[key] || r.Retained {
			continue
		}
		gone = append(gone, key)
		if has && !r.Retain {
			removing++
		}
	}
	held := ""
	switch {
	case len(gone) > 0 && pl.st.PruneSuspended:
		held = "a file of this revision failed to parse, so the objects it held are unknown; no snapshot content is deleted"
	case removing > 0 && removing == withContent && !pl.st.AllowPruneAll && !pl.m.cfg.AllowPruneAll:
		held = fmt.Sprintf("this revision would delete every snapshot content on this node (%d); confirm with --allow-prune-all or the nodevirt.io/allow-prune-all annotation", removing)
	}
	for _, key := range gone {
		r := pl.m.snaps[key]
		s := Step{Step: plan.Step{Object: r.Object, Target: r.Dir}, Snapshot: key}
		switch {
		case r.Phase != phaseSucceeded:
			s.Action, s.Reason = ActForget, "manifest removed from the source; it made no content"
		case held != "":
			s.Action, s.Reason = plan.Hold, held
		case r.Retain:
			s.Action, s.Reason = ActRetain, "manifest removed from the source; deletionPolicy Retain: the content stays at "+r.Dir+" (only this host holds it now)"
		default:
			s.Action, s.Reason = ActDeleteContent, "manifest removed from the source; deletionPolicy Delete: its content "+ContentName(r.UID)+" is deleted"
		}
		pl.add(s)
	}
}

func (pl *planner) restore(r *Restore) {
	key := r.Key()
	rec := pl.m.rests[key]
	step := func(a plan.Action, target, why string) {
		pl.add(Step{Step: plan.Step{Action: a, Object: r.Object, Target: target, Reason: why}, Restore: key})
	}
	vm := pl.st.VMs[r.Namespace+"/"+r.Target]
	if vm != nil && vm.Elsewhere {
		return
	}
	switch {
	case rec != nil && rec.Complete && rec.Hash != r.Hash:
		step(plan.Keep, "", "the restore's spec changed after it completed; a restore runs once: commit a new VirtualMachineRestore under another name to restore again")
		return
	case rec != nil && rec.Complete:
		return
	case rec != nil && rec.Failed && rec.Hash == r.Hash:
		return
	}
	snapKey := r.Namespace + "/" + r.Snapshot
	sr := pl.m.snaps[snapKey]
	snapObj := "VirtualMachineSnapshot " + snapKey
	switch {
	case sr == nil && !pl.taking[snapKey]:
		step(plan.Wait, "", snapObj+" has not been taken on this node")
		return
	case sr != nil && sr.VM != r.Target:
		step(ActFail, "", fmt.Sprintf("%s is of VirtualMachine %s/%s: a restore into another VM is not supported", snapObj, r.Namespace, sr.VM))
		return
	case sr != nil && sr.Phase == phaseFailed:
		step(ActFail, "", snapObj+" failed: "+sr.Error)
		return
	case !pl.taking[snapKey] && (sr == nil || !sr.Ready):
		step(plan.Wait, "", snapObj+" is not ready to use")
		return
	case vm == nil:
		step(plan.Wait, "", "VirtualMachine "+r.Namespace+"/"+r.Target+" is not in the source")
		return
	case pl.running[vm.Domain]:
		if why := pl.notReady(r, rec); why != "" {
			step(ActFail, vm.Domain, why)
			return
		}
		step(plan.Wait, vm.Domain, msgRunningRestore)
		return
	}
	if why := pl.claimsReady(vm); why != "" {
		step(plan.Wait, "", why)
		return
	}
	step(ActRestore, vm.Domain, fmt.Sprintf("put the data of %s back into the volumes of the stopped VirtualMachine %s/%s", snapObj, r.Namespace, r.Target))
}

// notReady applies the restore's targetReadinessPolicy to a running
// target: "" waits on, else the reason it fails (KubeVirt's text).
// StopTarget waits too: the agent does not stop a VM the source runs.
func (pl *planner) notReady(r *Restore, rec *restoreRecord) string {
	policy := snapshotv1beta1.VirtualMachineRestoreWaitGracePeriodAndFail
	if p := r.Spec.TargetReadinessPolicy; p != nil {
		policy = *p
	}
	switch policy {
	case snapshotv1beta1.VirtualMachineRestoreFailImmediate:
		return "Restore target failed to be ready. Please power off the target VM before attempting restore"
	case snapshotv1beta1.VirtualMachineRestoreWaitGracePeriodAndFail:
		if rec != nil && pl.m.cfg.Now().Sub(rec.FirstSeen) > snapshotv1beta1.DefaultGracePeriod {
			return fmt.Sprintf("Restore target failed to be ready within %s. Please power off the target VM before attempting restore", snapshotv1beta1.DefaultGracePeriod)
		}
	}
	return ""
}

// removedRestores forgets restores that left the source: nothing on the
// host is undone (a restore is done once).
func (pl *planner) removedRestores() {
	desired := map[string]bool{}
	for _, r := range pl.st.Restores {
		desired[r.Key()] = true
	}
	for _, key := range sortedKeys(pl.m.rests) {
		if desired[key] || pl.st.Invalid[key] {
			continue
		}
		r := pl.m.rests[key]
		pl.add(Step{Step: plan.Step{Action: ActForget, Object: r.Object, Reason: "manifest removed from the source; the restored data stays"}, Restore: key})
	}
}

func contentFile(dir, volume string) string { return filepath.Join(dir, volume+".img") }
