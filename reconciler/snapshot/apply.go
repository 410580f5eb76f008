package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodevirt/nodevirt/reconciler/plan"
)

// Apply runs p's steps in order and records what became of each. Waits
// are recorded too: the status says why a snapshot or restore waits.
func (m *Manager) Apply(ctx context.Context, p *Plan) plan.Report {
	var rep plan.Report
	for _, s := range p.Steps {
		start := time.Now()
		o := plan.Outcome{Step: s.Step}
		if s.Suspended {
			o.Result = plan.Skipped
			rep.Add(o)
			continue
		}
		detail, err := m.do(ctx, p, s)
		o.Detail, o.Took = detail, plan.Duration(time.Since(start))
		switch {
		case err != nil:
			o.Result, o.Error = plan.Failed, err.Error()
		case s.Action == plan.Wait || s.Action == plan.Keep || s.Action == plan.Conflict:
			o.Result = plan.Skipped
		case s.Action == plan.Hold:
			o.Result = plan.Held
		case s.Action == ActLost || s.Action == ActFail:
			o.Result = plan.Reported
		default:
			o.Result = plan.Done
		}
		rep.Add(o)
	}
	return rep
}

// do runs one step. It holds no lock while it copies: the status reads
// the records beside it, and a record is replaced whole (putSnap,
// putRestore), never changed in place once stored.
func (m *Manager) do(ctx context.Context, p *Plan, s Step) (string, error) {
	switch {
	case s.Snapshot != "":
		return m.doSnapshot(ctx, p, s)
	case s.Restore != "":
		return m.doRestore(ctx, p, s)
	}
	return "", nil
}

func (m *Manager) snapOf(p *Plan, key string) *Snapshot {
	for _, s := range p.State.Snapshots {
		if s.Key() == key {
			return s
		}
	}
	return nil
}

func (m *Manager) restoreOf(p *Plan, key string) *Restore {
	for _, r := range p.State.Restores {
		if r.Key() == key {
			return r
		}
	}
	return nil
}

// snapRec returns the record of s, made when s is first seen.
func (m *Manager) snapRec(s *Snapshot) *snapRecord {
	if r := m.snaps[s.Key()]; r != nil && !r.Retained {
		c := *r
		return &c
	}
	now := m.cfg.Now().UTC().Truncate(time.Second)
	return &snapRecord{Key: s.Key(), Object: s.Object, UID: uid("vmsnapshot", s.Key(), now), FirstSeen: now,
		Hash: s.Hash, VM: s.VM, Phase: phaseInProgress, Retain: s.Retain}
}

func (m *Manager) doSnapshot(ctx context.Context, p *Plan, st Step) (string, error) {
	key := st.Snapshot
	switch st.Action {
	case ActDeleteContent:
		r := m.snaps[key]
		if err := m.files.RemoveAll(r.Dir); err != nil {
			return "", fmt.Errorf("delete content %s: %w", r.Dir, err)
		}
		return "", m.dropSnap(key)
	case ActForget:
		return "", m.dropSnap(key)
	case ActRetain:
		r := *m.snaps[key]
		r.Retained = true
		return "", m.putSnap(&r)
	case plan.Hold, plan.Conflict, plan.Keep:
		return "", nil
	}
	s := m.snapOf(p, key)
	if s == nil {
		return "", fmt.Errorf("snapshot %s is not in the plan's state", key)
	}
	rec := m.snapRec(s)
	now := m.cfg.Now().UTC().Truncate(time.Second)
	switch st.Action {
	case plan.Wait:
		rec.Waiting = st.Reason
		return "", m.putSnap(rec)
	case ActFail:
		rec.Phase, rec.Ready, rec.Error, rec.ErrorTime, rec.Waiting = phaseFailed, false, st.Reason, &now, ""
		return "", m.putSnap(rec)
	case ActLost:
		if rec.Ready || rec.Error != st.Reason {
			rec.Ready, rec.Error, rec.ErrorTime = false, st.Reason, &now
			return "", m.putSnap(rec)
		}
		return "", nil
	case ActSnapshot:
		return m.take(ctx, p.State, s, rec)
	}
	return "", fmt.Errorf("unknown snapshot action %q", st.Action)
}

func (m *Manager) dropSnap(key string) error {
	if err := m.kv.Delete(bucketSnapshots, key); err != nil {
		return fmt.Errorf("forget snapshot %s: %w", key, err)
	}
	m.mu.Lock()
	delete(m.snaps, key)
	m.mu.Unlock()
	return nil
}

// take copies the volumes of s's stopped VM into <dir>.tmp, writes the
// content, and renames it into place: a content directory is complete or
// absent. The domain's state is read again first: it may have started since
// the plan.
func (m *Manager) take(ctx context.Context, st *State, s *Snapshot, rec *snapRecord) (string, error) {
	vm := st.VMs[s.Namespace+"/"+s.VM]
	running, err := m.running(ctx)
	if err != nil {
		return "", err
	}
	if running[vm.Domain] {
		rec.Waiting = msgRunningSnapshot
		return "", m.putSnap(rec)
	}
	dir := m.dirOf(s.Key())
	tmp := dir + ".tmp"
	if err := m.files.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := m.files.MkdirAll(tmp); err != nil {
		return "", fmt.Errorf("content directory: %w", err)
	}
	fail := func(err error) (string, error) {
		_ = m.files.RemoveAll(tmp)
		now := m.cfg.Now().UTC().Truncate(time.Second)
		rec.Error, rec.ErrorTime = err.Error(), &now
		if perr := m.putSnap(rec); perr != nil {
			err = errors.Join(err, perr)
		}
		return "", err
	}
	var vols []volRecord
	methods := map[string]int{}
	for _, v := range vm.Volumes {
		ns, name, _ := strings.Cut(v.Claim, "/")
		cs, ok := m.claims.Claim(ns, name)
		if !ok || !cs.Ready || cs.Path == "" {
			return fail(fmt.Errorf("volume %s: claim %s is not ready", v.Name, v.Claim))
		}
		method, err := m.files.Copy(ctx, contentFile(tmp, v.Name), cs.Path)
		if err != nil {
			return fail(fmt.Errorf("volume %s: %w", v.Name, err))
		}
		methods[method]++
		vols = append(vols, volRecord{Name: v.Name, Claim: v.Claim, DataVolume: v.DataVolume, File: contentFile(dir, v.Name),
			From: cs.Path, Block: cs.Block, Method: method})
	}
	tpm, err := m.copyTPM(ctx, vm, filepath.Join(tmp, "tpm"), true)
	if err != nil {
		return fail(fmt.Errorf("TPM state: %w", err))
	}
	rec.TPM = ""
	if tpm > 0 {
		rec.TPM = filepath.Join(dir, "tpm")
	}
	now := m.cfg.Now().UTC().Truncate(time.Second)
	rec.Volumes, rec.Excluded, rec.VMUID, rec.VMSpec, rec.Dir = vols, vm.Excluded, vm.UID, vm.Spec, dir
	rec.Phase, rec.Ready, rec.CreationTime, rec.Waiting, rec.Error, rec.ErrorTime = phaseSucceeded, true, &now, "", "", nil
	content, err := json.MarshalIndent(contentOf(rec), "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := m.files.WriteFile(filepath.Join(tmp, "content.json"), content); err != nil {
		return fail(fmt.Errorf("write content.json: %w", err))
	}
	if err := m.files.RemoveAll(dir); err != nil {
		return fail(err)
	}
	if err := m.files.Rename(tmp, dir); err != nil {
		return fail(fmt.Errorf("put the content in place: %w", err))
	}
	if err := m.putSnap(rec); err != nil {
		return "", err
	}
	var how []string
	for _, k := range sortedKeys(methods) {
		how = append(how, fmt.Sprintf("%d by %s", methods[k], k))
	}
	detail := fmt.Sprintf("content %s: %d volume(s) %s", ContentName(rec.UID), len(vols), strings.Join(how, ", "))
	if tpm > 0 {
		detail += ", and the TPM state"
	}
	return detail, nil
}

// copyTPM copies the files of a persistent TPM's state between libvirt's
// directory of vm's domain and dir, the content's copy: out of libvirt's
// (a snapshot) or back into it (a restore). It copies regular files one
// level down (tpm2/tpm2-00.permall), which is where swtpm keeps its state,
// and a restore removes the state files the snapshot did not have;
// swtpm's lock file (.lock) stays behind. It returns how many
// files it copied: none for a VM without a persistent TPM or one that has
// not run yet.
func (m *Manager) copyTPM(ctx context.Context, vm *VM, dir string, out bool) (int, error) {
	if !vm.PersistentTPM || m.cfg.TPMStateDir == nil || vm.UID == "" {
		return 0, nil
	}
	state := m.cfg.TPMStateDir(vm.UID)
	if state == "" {
		return 0, nil
	}
	from, to := state, dir
	if !out {
		from, to = dir, state
	}
	files, err := m.files.Glob(filepath.Join(from, "*", "*"))
	if err != nil {
		return 0, err
	}
	copied := map[string]bool{}
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), ".") {
			continue
		}
		rel, err := filepath.Rel(from, f)
		if err != nil {
			return 0, err
		}
		dst := filepath.Join(to, rel)
		if err := m.files.MkdirAll(filepath.Dir(dst)); err != nil {
			return 0, err
		}
		if _, err := m.files.Copy(ctx, dst, f); err != nil {
			return 0, err
		}
		copied[dst] = true
	}
	if !out && len(copied) > 0 {
		// State swtpm saved after the snapshot (a volatile state) would
		// be loaded over the restored one.
		later, err := m.files.Glob(filepath.Join(to, "*", "*"))
		if err != nil {
			return 0, err
		}
		for _, f := range later {
			if !copied[f] && !strings.HasPrefix(filepath.Base(f), ".") {
				if err := m.files.RemoveAll(f); err != nil {
					return 0, err
				}
			}
		}
	}
	return len(copied), nil
}

func (m *Manager) doRestore(ctx context.Context, p *Plan, st Step) (string, error) {
	key := st.Restore
	if st.Action == ActForget {
		if err := m.kv.Delete(bucketRestores, key); err != nil {
			return "", fmt.Errorf("forget restore %s: %w", key, err)
		}
		m.mu.Lock()
		delete(m.rests, key)
		m.mu.Unlock()
		return "", nil
	}
	if st.Action == plan.Keep {
		return "", nil
	}
	r := m.restoreOf(p, key)
	if r == nil {
		return "", fmt.Errorf("restore %s is not in the plan's state", key)
	}
	var rec *restoreRecord
	if old := m.rests[key]; old != nil {
		c := *old
		rec = &c
	}
	if rec == nil || rec.Hash != r.Hash && !rec.Complete {
		now := m.cfg.Now().UTC().Truncate(time.Second)
		rec = &restoreRecord{Key: key, Object: r.Object, UID: uid("vmrestore", key, now), FirstSeen: now, Hash: r.Hash, Target: r.Target, Snapshot: r.Snapshot}
	}
	switch st.Action {
	case plan.Wait:
		rec.Waiting = st.Reason
		return "", m.putRestore(rec)
	case ActFail:
		rec.Failed, rec.Error, rec.Waiting = true, st.Reason, ""
		return "", m.putRestore(rec)
	case ActRestore:
		return m.put(ctx, p.State, r, rec)
	}
	return "", fmt.Errorf("unknown restore action %q", st.Action)
}

// put copies the snapshot's volumes back over the VM's: a file volume is
// replaced atomically, a block volume written whole. The domain's state is
// read again first. The record is written complete last: a restore cut
// short runs again, whole, on the next apply.
func (m *Manager) put(ctx context.Context, st *State, r *Restore, rec *restoreRecord) (string, error) {
	sr := m.snaps[r.Namespace+"/"+r.Snapshot]
	if sr == nil || !sr.Ready {
		rec.Waiting = "VirtualMachineSnapshot " + r.Namespace + "/" + r.Snapshot + " is not ready to use"
		return "", m.putRestore(rec)
	}
	vm := st.VMs[r.Namespace+"/"+r.Target]
	running, err := m.running(ctx)
	if err != nil {
		return "", err
	}
	if running[vm.Domain] {
		rec.Waiting = msgRunningRestore
		return "", m.putRestore(rec)
	}
	current := map[string]Volume{}
	for _, v := range vm.Volumes {
		current[v.Name] = v
	}
	var done []restoredVolume
	for _, sv := range sr.Volumes {
		v, ok := current[sv.Name]
		if !ok {
			rec.Failed, rec.Error = true, fmt.Sprintf("volume %s of the snapshot is no longer a volume of the VM", sv.Name)
			return "", errors.Join(errors.New(rec.Error), m.putRestore(rec))
		}
		ns, name, _ := strings.Cut(v.Claim, "/")
		cs, ok := m.claims.Claim(ns, name)
		if !ok || cs.Path == "" {
			rec.Waiting = fmt.Sprintf("volume %s: claim %s is not provisioned", v.Name, v.Claim)
			return "", m.putRestore(rec)
		}
		if cs.Block {
			err = m.files.ToDevice(ctx, cs.Path, sv.File)
		} else {
			_, err = m.files.Copy(ctx, cs.Path, sv.File)
		}
		if err != nil {
			rec.Error = fmt.Sprintf("volume %s: %v", sv.Name, err)
			return "", errors.Join(fmt.Errorf("volume %s: %w", sv.Name, err), m.putRestore(rec))
		}
		rv := restoredVolume{Volume: sv.Name, Claim: name, Snapshot: volumeSnapshotName(sr.UID, sv.Name)}
		if v.DataVolume {
			rv.DataVolume = name
		}
		done = append(done, rv)
	}
	tpm := 0
	if sr.TPM != "" {
		if tpm, err = m.copyTPM(ctx, vm, sr.TPM, false); err != nil {
			rec.Error = fmt.Sprintf("TPM state: %v", err)
			return "", errors.Join(fmt.Errorf("TPM state: %w", err), m.putRestore(rec))
		}
	}
	now := m.cfg.Now().UTC().Truncate(time.Second)
	rec.Complete, rec.RestoreTime, rec.Restores, rec.Waiting, rec.Error = true, &now, done, "", ""
	if string(sr.VMSpec) != "" && string(vm.Spec) != "" && string(sr.VMSpec) != string(vm.Spec) {
		rec.Note = "the VM's spec in the source differs from the one in the snapshot; the source stays authoritative: commit the snapshot's spec (in its content) to restore it too"
	}
	if err := m.putRestore(rec); err != nil {
		return "", err
	}
	detail := fmt.Sprintf("%d volume(s) restored from %s", len(done), ContentName(sr.UID))
	if tpm > 0 {
		detail += ", and the TPM state"
	}
	if rec.Note != "" {
		detail += "; " + rec.Note
	}
	return detail, nil
}
