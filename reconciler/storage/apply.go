package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nodevirt/nodevirt/reconciler/plan"

	"github.com/nodevirt/nodevirt/internal/pathelem"
)

// Report is the result of one Apply.
type Report struct {
	plan.Report
	// Started are the claims whose imports this apply started.
	Started []string `json:"importsStarted,omitempty"`
}

// Append adds the outcomes of a later apply (the teardown after the setup).
func (r *Report) Append(o Report) {
	r.Report.Append(o.Report)
	r.Started = append(r.Started, o.Started...)
}

// Err is non-nil when any action failed.
func (r Report) Err() error {
	if r.Failed == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d storage actions failed", r.Failed, len(r.Outcomes))
}

// Phase splits a plan around the VMs: Setup (provision, attach, bind,
// import) runs before VMs are defined and started; Teardown (release,
// delete data, detach) after VMs that were removed are gone.
type Phase int

const (
	All Phase = iota
	Setup
	Teardown
)

func phaseOf(kind plan.Action) Phase {
	switch kind {
	case ActRelease, ActDeleteData, ActDetach, ActForget:
		return Teardown
	}
	return Setup
}

// storageOrder is the dependency order of a storage plan.
var storageOrder = []plan.Action{ActProvision, ActAttach, ActBind, ActAdopt, ActCreateDisk, ActImport, ActWait, ActRelease, ActDeleteData, ActDetach, ActForget}

// Apply executes the actions of phase. Imports start in the background.
// An object's later actions are skipped after its own failure.
func (m *Manager) Apply(ctx context.Context, p *Plan, phase Phase) Report {
	order := storageOrder
	if phase != All {
		order = nil
		for _, k := range storageOrder {
			if phaseOf(k) == phase {
				order = append(order, k)
			}
		}
	}
	var started []string
	rep := plan.Apply(ctx, p.Actions, plan.Runner[Action]{
		Order:         order,
		SelfHeal:      func(Action) bool { return m.cfg.SelfHeal },
		Informational: func(a Action) bool { return a.Action == ActWait },
		Note: func(a Action) plan.Result {
			m.mu.Lock()
			m.noteWait(p, a)
			m.mu.Unlock()
			return "" // a wait is the claim's status, not an outcome
		},
		Do: func(ctx context.Context, a Action) (plan.Result, string, error) {
			err := m.do(ctx, p, a)
			if err == nil && a.Action == ActImport && a.Claim != "" {
				started = append(started, a.Claim)
			}
			return "", "", err
		},
		Log: m.log,
	})
	return Report{Report: rep, Started: started}
}

// noteWait records why a bound claim waits (an upload, a clone source).
func (m *Manager) noteWait(p *Plan, a Action) {
	r := m.claimRecs[a.Claim]
	s, ok := p.Claims[a.Claim]
	if r == nil || !ok || m.jobs[a.Claim] != nil || r.Phase == PhaseFailed {
		return
	}
	if r.Phase == PhaseSucceeded && !(a.Drift && m.cfg.SelfHeal && s.Phase == PhaseUploadReady) {
		// Only a lost uploaded disk takes a completed DataVolume back to
		// waiting, and only when drift is healed.
		return
	}
	if s.Phase == PhaseUploadScheduled {
		// The volume this plan bound and provisioned may be ready now:
		// offer the upload at once rather than at the next reconcile.
		if c := p.State.Claims[a.Claim]; c != nil {
			if ok, _ := m.prepared(m.binding(r)); ok {
				s.Phase, s.Reason, s.Message = PhaseUploadReady, PhaseUploadReady, readyMessage(c)
			}
		}
	}
	if r.Phase != s.Phase || r.Message != s.Message || r.Reason != s.Reason {
		r.Phase, r.Reason, r.Message = s.Phase, s.Reason, s.Message
		_ = m.putClaim(r)
	}
}

func (m *Manager) do(ctx context.Context, p *Plan, a Action) error {
	switch a.Action {
	case ActProvision:
		return m.provision(p, a)
	case ActCreateDisk:
		return m.createDisk(p, a)
	case ActAttach:
		v := p.State.Volumes[a.Volume]
		if err := m.loops.AttachAt(v.Path, m.backing(v.Name)); err != nil {
			return err
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		rec := m.volumeRec(v, "")
		rec.Attached = true
		return m.putVolume(rec)
	case ActBind:
		return m.bind(p, a)
	case ActImport:
		return m.importClaim(p, a)
	case ActAdopt:
		m.mu.Lock()
		defer m.mu.Unlock()
		c, b := p.State.Claims[a.Claim], p.Binds[a.Claim]
		if c == nil || b == nil {
			return fmt.Errorf("adopt %s: the claim is not bound", a.Claim)
		}
		// Looked at again: the plan may be old.
		v, mk, msg := m.inspect(c, m.claimRecs[a.Claim], b)
		if v != diskAdopt {
			if msg == "" {
				msg = fmt.Sprintf("%s no longer carries the marker of a completed import", b.diskFile())
			}
			return errors.New(msg)
		}
		return m.adopt(a.Claim, mk)
	case ActRelease:
		m.stop(a.Claim)
		m.mu.Lock()
		defer m.mu.Unlock()
		if r := m.claimRecs[a.Claim]; r != nil {
			// The data stays, but it is no longer this claim's.
			if err := m.dropMarker(a.Claim, m.fileOf(r)); err != nil {
				return err
			}
		}
		if v := m.volumeRecs[a.Volume]; v != nil {
			v.Phase, v.ReleasedFrom, v.Claim = VolumeReleased, a.Claim, ""
			if err := m.putVolume(v); err != nil {
				return err
			}
		}
		return m.deleteClaim(a.Claim)
	case ActDeleteData:
		m.stop(a.Claim)
		return m.deleteData(a)
	case ActDetach:
		m.mu.Lock()
		defer m.mu.Unlock()
		v := m.volumeRecs[a.Volume]
		if v == nil {
			return nil
		}
		if err := m.loops.Detach(v.Device); err != nil {
			return err
		}
		if v.Phase == VolumeReleased || v.Claim != "" {
			// Retained data stays in the backing file; forget the device.
			v.Attached, v.Device = false, ""
			return m.putVolume(v)
		}
		if err := m.files.Remove(v.Backing); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return m.deleteVolume(v.Name)
	case ActForget:
		m.mu.Lock()
		defer m.mu.Unlock()
		if a.Claim != "" {
			if err := m.deleteClaim(a.Claim); err != nil || a.Volume == "" {
				return err
			}
		}
		return m.deleteVolume(a.Volume)
	}
	return nil
}

// fileOf is the disk file of a recorded claim ("" if unbound). m.mu held.
func (m *Manager) fileOf(r *claimRecord) string {
	if v := m.volumeRecs[r.Volume]; v != nil && v.Backing != "" {
		return v.Backing
	}
	if r.Block {
		return ""
	}
	return r.Path
}

// volumeRec returns (creating) the record of a static volume. m.mu held.
// dir is the volume's directory as the plan resolved it under the root
// (unused for a loop volume).
func (m *Manager) volumeRec(v *Volume, dir string) *volumeRecord {
	rec := m.volumeRecs[v.Name]
	if rec == nil {
		rec = &volumeRecord{Name: v.Name, Phase: VolumeAvailable, Created: m.cfg.Now()}
	}
	rec.Object, rec.Class, rec.ReclaimPolicy, rec.VolumeMode = v.Object, v.Class, v.ReclaimPolicy, v.VolumeMode
	rec.Capacity, rec.AccessModes = v.Capacity, v.AccessModes
	switch {
	case v.Loop:
		rec.Device, rec.Backing = v.Path, m.backing(v.Name)
	case v.Device:
		rec.Device = m.devicePath(v.Path)
	default:
		rec.Dir = dir
	}
	return rec
}

// createDisk makes the blank disk.img of a plain claim.
func (m *Manager) createDisk(p *Plan, a Action) error {
	c := p.State.Claims[a.Claim]
	if err := m.files.CreateSparse(a.Target, c.DiskSize); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.claimRecs[a.Claim]; r != nil {
		r.Phase, r.Reason, r.Message, r.Progress = PhaseBound, "Bound", "", 100
		return m.putClaim(r)
	}
	return nil
}

func (m *Manager) provision(p *Plan, a Action) error {
	if a.Claim != "" {
		// A hostpath provisioner directory; bind records it.
		return m.files.MkdirAll(a.Target)
	}
	v := p.State.Volumes[a.Volume]
	if v.Loop {
		if err := m.files.CreateSparse(a.Target, v.Capacity); err != nil {
			return err
		}
	} else if err := m.files.MkdirAll(a.Target); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.putVolume(m.volumeRec(v, a.Target))
}

func (m *Manager) bind(p *Plan, a Action) error {
	c := p.State.Claims[a.Claim]
	b := p.Binds[a.Claim]
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	var vrec *volumeRecord
	if b.Dynamic {
		vrec = &volumeRecord{Name: b.Volume, Dynamic: true, Class: c.Class, ReclaimPolicy: b.Reclaim, VolumeMode: Filesystem,
			Capacity: c.Capacity, AccessModes: c.AccessModes, Dir: b.Dir, Created: now}
	} else {
		vrec = m.volumeRec(p.State.Volumes[b.Volume], b.Dir)
	}
	vrec.Claim, vrec.Phase = a.Claim, VolumeBound
	if err := m.putVolume(vrec); err != nil {
		return err
	}
	// The class is used from now on: its parameters are fixed.
	if cls := p.State.Classes[c.Class]; cls != nil && m.classRecs[cls.Name] == nil {
		if err := m.putClass(&classRecord{Name: cls.Name, Object: cls.Object, Spec: cls.Immutable(), Since: now}); err != nil {
			return err
		}
	}
	phase := PhasePending
	switch {
	case c.IsDataVolume() && c.Source != nil && c.Source.Kind == SourceUpload:
		phase = PhaseUploadScheduled
	case c.IsDataVolume():
		phase = PhaseImportScheduled
	}
	r := &claimRecord{Key: a.Claim, Object: c.Object, Owner: c.Owner, Hash: c.Hash, Volume: b.Volume, Path: b.path(),
		Block: b.Device != "", Phase: phase, Claim: c}
	if old := m.claimRecs[a.Claim]; old != nil {
		r.Attempts, r.Restarts = old.Attempts, old.Restarts
	}
	return m.putClaim(r)
}

func (m *Manager) importClaim(p *Plan, a Action) error {
	c := p.State.Claims[a.Claim]
	b := p.Binds[a.Claim]
	if c == nil || b == nil {
		return fmt.Errorf("import %s: the claim is not bound", a.Claim)
	}
	from, err := m.movedFrom(b)
	if err != nil {
		return fmt.Errorf("import %s: PersistentVolume %s moved here: %w", a.Claim, b.Volume, err)
	}
	if c.Source == nil && from == "" {
		return fmt.Errorf("import %s: the claim has no source", a.Claim)
	}
	var req ImportRequest
	if c.Source != nil {
		req = ImportRequest{Kind: c.Source.Kind, URL: c.Source.URL, Checksum: c.Source.Checksum, Insecure: c.Source.Insecure,
			Architecture: c.Source.Architecture, Target: b.path(), Block: b.Device != "", Preallocate: c.Preallocate, Limits: c.Limits}
		if !req.Block {
			req.Size = c.DiskSize
		}
	}
	if from != "" {
		// The data exists: the node that held the volume serves it.
		req = ImportRequest{Kind: SourcePeer, URL: from, SourcePath: b.Volume, Target: b.path(), Block: b.Device != "", Limits: c.Limits}
	} else if err := m.resolve(c.Namespace, c.Source, &req); err != nil {
		m.fail(a.Claim, c, err)
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if from == "" && c.Source.Kind == SourcePVC {
		src := m.claimRecs[c.Source.CloneOf]
		if src == nil || src.Path == "" {
			return fmt.Errorf("clone source %s has no disk", c.Source.CloneOf)
		}
		req.SourcePath = src.Path
	}
	if from == "" && c.Source.Kind == SourceBlank && req.Block {
		req.Size = 0
	}
	scratch, err := m.scratchDir(p.State, c)
	if err != nil {
		return fmt.Errorf("import %s: scratch space: %w", a.Claim, err)
	}
	req.Scratch = scratch
	r := m.claimRecs[a.Claim]
	if r == nil {
		return fmt.Errorf("import %s: no binding recorded", a.Claim)
	}
	if r.Phase == PhaseImportInProgress || r.Phase == PhaseCloneInProgress {
		r.Restarts++
	}
	r.Hash, r.Claim, r.Owner, r.Object = c.Hash, c, c.Owner, c.Object
	r.Phase, r.Progress, r.Reason, r.Message = PhaseImportInProgress, 0, "Running", "Import in progress"
	switch {
	case from != "":
		r.Message = "Pulling the moved volume from node " + from
	case c.Source.Kind == SourcePVC:
		r.Phase, r.Message = PhaseCloneInProgress, "Clone in progress"
	}
	// Before anything writes the disk: a file the state does not know is
	// never imported over, and a stale marker never outlives the data.
	switch v, mk, msg := m.inspect(c, r, b); v {
	case diskAdopt:
		return m.adopt(a.Claim, mk)
	case diskConflict:
		return errors.New(msg)
	}
	if err := m.dropMarker(a.Claim, b.diskFile()); err != nil {
		return err
	}
	r.Started, r.Finished, r.Result = m.cfg.Now(), time.Time{}, nil
	if err := m.putClaim(r); err != nil {
		return err
	}
	m.startImport(r, req, scratch, b.diskFile())
	return nil
}

// fail records an import that could not start.
func (m *Manager) fail(key string, c *Claim, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.claimRecs[key]
	if r == nil {
		return
	}
	r.Attempts++
	r.Phase, r.Reason, r.Message = PhaseFailed, "Error", err.Error()
	r.Retry = m.cfg.Now().Add(m.cfg.Backoff(r.Attempts))
	r.Hash = c.Hash
	_ = m.putClaim(r)
}

// scratchDir is where an import may put scratch space: a directory of the
// scratch class when it is a hostpath class, else the state directory's.
func (m *Manager) scratchDir(st *State, c *Claim) (string, error) {
	name := c.Name + "-scratch-" + dynamicName(c.Key())
	if cls := st.Classes[c.ScratchClass]; cls != nil && isHostPath(cls.Provisioner) && st.HostPath != nil {
		root := st.HostPath.Path
		if pool := cls.Parameters["storagePool"]; pool != "" {
			root = st.HostPath.Pools[pool]
		}
		if root != "" {
			dir, err := m.host(root)
			if err != nil {
				return "", err
			}
			return pathelem.Join(dir, name)
		}
	}
	return pathelem.Join(filepath.Join(m.cfg.StateDir, "scratch"), name)
}

// deleteData removes a deleted claim's data (reclaim policy Delete).
func (m *Manager) deleteData(a Action) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.volumeRecs[a.Volume]
	if r := m.claimRecs[a.Claim]; r != nil {
		if err := m.dropMarker(a.Claim, m.fileOf(r)); err != nil {
			return err
		}
	}
	if v != nil {
		switch {
		case v.hostDevice():
			// Never erased: the plan releases or forgets such a volume
			// instead; a delete reaching one keeps the device as it is.
			v.Claim, v.Phase = "", VolumeReleased
			if err := m.putVolume(v); err != nil {
				return err
			}
		case v.Dynamic:
			if err := m.files.RemoveAll(v.Dir); err != nil {
				return err
			}
			if err := m.deleteVolume(v.Name); err != nil {
				return err
			}
		case v.Backing != "":
			// A loop volume: detach, drop the file; the PersistentVolume
			// (still in the source) is provisioned empty again.
			if err := m.loops.Detach(v.Device); err != nil {
				return err
			}
			if err := m.files.Remove(v.Backing); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			if err := m.deleteVolume(v.Name); err != nil {
				return err
			}
		default:
			if err := m.files.Remove(filepath.Join(v.Dir, "disk.img")); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			v.Claim, v.Phase = "", VolumeAvailable
			if err := m.putVolume(v); err != nil {
				return err
			}
		}
	}
	return m.deleteClaim(a.Claim)
}
