package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nodevirt/nodevirt/internal/pathelem"
)

// Outcome is what happened to one action.
type Outcome struct {
	Action
	// Result is "done", "skipped" or "failed".
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
	Took   string `json:"took,omitempty"`
}

// Report is the result of one Apply.
type Report struct {
	Outcomes []Outcome `json:"outcomes"`
	Failed   int       `json:"failed"`
}

// Err is non-nil when any action failed.
func (r Report) Err() error {
	if r.Failed == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d storage actions failed", r.Failed, len(r.Outcomes))
}

// Stage splits a plan around the VMs: Setup (provision, attach, bind,
// import) runs before VMs are defined and started; Teardown (release,
// delete data, detach) after VMs that were removed are gone.
type Stage int

const (
	All Stage = iota
	Setup
	Teardown
)

func stageOf(kind string) Stage {
	switch kind {
	case ActRelease, ActDeleteData, ActDetach, ActForget:
		return Teardown
	}
	return Setup
}

// Apply executes the actions of stage. Imports start in the background.
// An object's later actions are skipped after its own failure.
func (m *Manager) Apply(ctx context.Context, p *Plan, stage Stage) Report {
	var rep Report
	failed := map[string]bool{}
	order := []string{ActProvision, ActAttach, ActBind, ActAdopt, ActCreateDisk, ActImport, ActWait, ActRelease, ActDeleteData, ActDetach, ActForget}
	for _, kind := range order {
		for _, a := range p.Actions {
			if a.Kind != kind || (stage != All && stageOf(kind) != stage) {
				continue
			}
			if a.Kind == ActWait {
				m.mu.Lock()
				m.noteWait(p, a)
				m.mu.Unlock()
				continue
			}
			out := Outcome{Action: a}
			switch {
			case failed[a.Object]:
				out.Result, out.Error = "skipped", "an earlier action for this object failed"
			case a.Drift && !m.cfg.SelfHeal:
				out.Result, out.Error = "skipped", "self-heal is off; drift reported only"
			default:
				start := time.Now()
				err := m.do(ctx, p, a)
				out.Took = time.Since(start).Round(time.Millisecond).String()
				if err != nil {
					failed[a.Object] = true
					out.Result, out.Error = "failed", err.Error()
					rep.Failed++
					m.log.Error("storage action failed", "action", a.Kind, "object", a.Object, "err", err)
				} else {
					out.Result = "done"
					m.log.Info("storage applied", "action", a.Kind, "object", a.Object, "target", a.Target)
				}
			}
			rep.Outcomes = append(rep.Outcomes, out)
		}
	}
	return rep
}

// noteWait records why a bound claim waits (an upload, a clone source).
func (m *Manager) noteWait(p *Plan, a Action) {
	r := m.claimRecs[a.claim]
	s, ok := p.Claims[a.claim]
	if r == nil || !ok || m.jobs[a.claim] != nil || r.Phase == PhaseSucceeded || r.Phase == PhaseFailed {
		return
	}
	if r.Phase != s.Phase || r.Message != s.Message {
		r.Phase, r.Reason, r.Message = s.Phase, s.Reason, s.Message
		_ = m.putClaim(r)
	}
}

func (m *Manager) do(ctx context.Context, p *Plan, a Action) error {
	switch a.Kind {
	case ActProvision:
		return m.provision(p, a)
	case ActCreateDisk:
		return m.createDisk(p, a)
	case ActAttach:
		v := p.st.Volumes[a.volume]
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
		c, b := p.st.Claims[a.claim], p.binds[a.claim]
		if c == nil || b == nil {
			return fmt.Errorf("adopt %s: the claim is not bound", a.claim)
		}
		// Looked at again: the plan may be old.
		v, mk, msg := m.inspect(c, m.claimRecs[a.claim], b)
		if v != diskAdopt {
			if msg == "" {
				msg = fmt.Sprintf("%s no longer carries the marker of a completed import", b.diskFile())
			}
			return errors.New(msg)
		}
		return m.adopt(a.claim, mk)
	case ActRelease:
		m.stop(a.claim)
		m.mu.Lock()
		defer m.mu.Unlock()
		if r := m.claimRecs[a.claim]; r != nil {
			// The data stays, but it is no longer this claim's.
			if err := m.dropMarker(a.claim, m.fileOf(r)); err != nil {
				return err
			}
		}
		if v := m.volumeRecs[a.volume]; v != nil {
			v.Phase, v.ReleasedFrom, v.Claim = VolumeReleased, a.claim, ""
			if err := m.putVolume(v); err != nil {
				return err
			}
		}
		return m.deleteClaim(a.claim)
	case ActDeleteData:
		m.stop(a.claim)
		return m.deleteData(a)
	case ActDetach:
		m.mu.Lock()
		defer m.mu.Unlock()
		v := m.volumeRecs[a.volume]
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
		if a.claim != "" {
			return m.deleteClaim(a.claim)
		}
		return m.deleteVolume(a.volume)
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
	if v.Loop {
		rec.Device, rec.Backing = v.Path, m.backing(v.Name)
	} else {
		rec.Dir = dir
	}
	return rec
}

// createDisk makes the blank disk.img of a plain claim.
func (m *Manager) createDisk(p *Plan, a Action) error {
	c := p.st.Claims[a.claim]
	if err := m.files.CreateSparse(a.Target, c.DiskSize); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.claimRecs[a.claim]; r != nil {
		r.Phase, r.Reason, r.Message, r.Progress = PhaseBound, "Bound", "", 100
		return m.putClaim(r)
	}
	return nil
}

func (m *Manager) provision(p *Plan, a Action) error {
	if a.claim != "" {
		// A hostpath provisioner directory; bind records it.
		return m.files.MkdirAll(a.Target)
	}
	v := p.st.Volumes[a.volume]
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
	c := p.st.Claims[a.claim]
	b := p.binds[a.claim]
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	var vrec *volumeRecord
	if b.dynamic {
		vrec = &volumeRecord{Name: b.volume, Dynamic: true, Class: c.Class, ReclaimPolicy: b.reclaim, VolumeMode: Filesystem,
			Capacity: c.Capacity, AccessModes: c.AccessModes, Dir: b.dir, Created: now}
	} else {
		vrec = m.volumeRec(p.st.Volumes[b.volume], b.dir)
	}
	vrec.Claim, vrec.Phase = a.claim, VolumeBound
	if err := m.putVolume(vrec); err != nil {
		return err
	}
	// The class is used from now on: its parameters are fixed.
	if cls := p.st.Classes[c.Class]; cls != nil && m.classRecs[cls.Name] == nil {
		if err := m.putClass(&classRecord{Name: cls.Name, Object: cls.Object, Spec: cls.Immutable(), Since: now}); err != nil {
			return err
		}
	}
	phase := PhasePending
	if c.IsDataVolume() {
		phase = PhaseImportScheduled
	}
	r := &claimRecord{Key: a.claim, Object: c.Object, Owner: c.Owner, Hash: c.Hash, Volume: b.volume, Path: b.path(),
		Block: b.device != "", Phase: phase, Claim: c}
	if old := m.claimRecs[a.claim]; old != nil {
		r.Attempts, r.Restarts = old.Attempts, old.Restarts
	}
	return m.putClaim(r)
}

func (m *Manager) importClaim(p *Plan, a Action) error {
	c := p.st.Claims[a.claim]
	b := p.binds[a.claim]
	if c == nil || b == nil || c.Source == nil {
		return fmt.Errorf("import %s: the claim is not bound", a.claim)
	}
	req := ImportRequest{Kind: c.Source.Kind, URL: c.Source.URL, Checksum: c.Source.Checksum, Insecure: c.Source.Insecure,
		Architecture: c.Source.Architecture, Target: b.path(), Block: b.device != "", Preallocate: c.Preallocate, Limits: c.Limits}
	if !req.Block {
		req.Size = c.DiskSize
	}
	if err := m.resolve(c.Namespace, c.Source, &req); err != nil {
		m.fail(a.claim, c, err)
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.Source.Kind == SourcePVC {
		src := m.claimRecs[c.Source.CloneOf]
		if src == nil || src.Path == "" {
			return fmt.Errorf("clone source %s has no disk", c.Source.CloneOf)
		}
		req.SourcePath = src.Path
	}
	if c.Source.Kind == SourceBlank && req.Block {
		req.Size = 0
	}
	scratch, err := m.scratchDir(p.st, c)
	if err != nil {
		return fmt.Errorf("import %s: scratch space: %w", a.claim, err)
	}
	req.Scratch = scratch
	r := m.claimRecs[a.claim]
	if r == nil {
		return fmt.Errorf("import %s: no binding recorded", a.claim)
	}
	if r.Phase == PhaseImportInProgress || r.Phase == PhaseCloneInProgress {
		r.Restarts++
	}
	r.Hash, r.Claim, r.Owner, r.Object = c.Hash, c, c.Owner, c.Object
	r.Phase, r.Progress, r.Reason, r.Message = PhaseImportInProgress, 0, "Running", "Import in progress"
	if c.Source.Kind == SourcePVC {
		r.Phase, r.Message = PhaseCloneInProgress, "Clone in progress"
	}
	// Before anything writes the disk: a file the state does not know is
	// never imported over, and a stale marker never outlives the data.
	switch v, mk, msg := m.inspect(c, r, b); v {
	case diskAdopt:
		return m.adopt(a.claim, mk)
	case diskConflict:
		return errors.New(msg)
	}
	if err := m.dropMarker(a.claim, b.diskFile()); err != nil {
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
	v := m.volumeRecs[a.volume]
	if r := m.claimRecs[a.claim]; r != nil {
		if err := m.dropMarker(a.claim, m.fileOf(r)); err != nil {
			return err
		}
	}
	if v != nil {
		switch {
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
	return m.deleteClaim(a.claim)
}
