package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Errors of an upload, so the API answers with CDI's codes.
var (
	// ErrUploadNotFound: no such DataVolume in the source, or its source
	// is not an upload.
	ErrUploadNotFound = errors.New("no upload DataVolume of this name")
	// ErrUploadDone: the DataVolume already holds its upload.
	ErrUploadDone = errors.New("already finished uploading")
	// ErrUploadBusy: another upload into the DataVolume runs.
	ErrUploadBusy = errors.New("another upload into it is running")
	// ErrUploadNotReady: the DataVolume does not take an upload yet (its
	// volume is not bound or not prepared).
	ErrUploadNotReady = errors.New("not ready for an upload")
)

// errClientGone ends an upload whose client went away before every byte
// arrived.
var errClientGone = errors.New("the client went away before every byte of the image arrived")

// PhaseUploadScheduled is CDI's phase of an upload DataVolume whose volume
// is not prepared yet; PhaseUploadReady (also during the transfer, with
// reason ReasonUploading) follows.
const (
	PhaseUploadScheduled = "UploadScheduled"
	ReasonUploading      = "Uploading"
)

// uploadCommand is what a user runs to fill an upload DataVolume.
func uploadCommand(namespace, name string) string {
	cmd := "nodevirt image-upload dv " + name + " --no-create --image-path FILE"
	if namespace != "default" {
		cmd += " -n " + namespace
	}
	return cmd
}

func readyMessage(c *Claim) string {
	return "ready for an upload: " + uploadCommand(c.Namespace, c.Name)
}

// uploadClaim is the desired upload DataVolume namespace/name. m.mu held.
func (m *Manager) uploadClaim(key string) (*Claim, error) {
	var c *Claim
	if m.desired != nil {
		c = m.desired.Claims[key]
	}
	if c == nil {
		return nil, fmt.Errorf("DataVolume %s is not in the source: %w", key, ErrUploadNotFound)
	}
	if !c.IsDataVolume() || c.Source == nil || c.Source.Kind != SourceUpload {
		what := "a PersistentVolumeClaim"
		if c.IsDataVolume() && c.Source != nil {
			what = "a DataVolume with source " + c.Source.Kind
		}
		return nil, fmt.Errorf("%s is %s, not an upload DataVolume (spec.source.upload): %w", key, what, ErrUploadNotFound)
	}
	return c, nil
}

// binding is the recorded binding of a claim; nil when unbound. m.mu held.
func (m *Manager) binding(r *claimRecord) *Binding {
	if r == nil || r.Volume == "" {
		return nil
	}
	v := m.volumeRecs[r.Volume]
	if v == nil {
		return nil
	}
	return &Binding{Volume: v.Name, Dynamic: v.Dynamic, Dir: v.Dir, Device: v.Device, Backing: v.Backing, Class: v.Class, Reclaim: v.ReclaimPolicy}
}

// prepared says whether a bound claim's volume can be written now: its
// directory exists, or its loop device is attached to its backing file.
// m.mu held.
func (m *Manager) prepared(b *Binding) (bool, string) {
	if b == nil {
		return false, "the claim is not bound to a volume yet"
	}
	if b.Device != "" && b.Backing == "" {
		// A host block device: there when the plan checked it.
		return true, ""
	}
	if b.Device != "" {
		cur, attached, err := m.loops.Backing(b.Device)
		switch {
		case err != nil:
			return false, fmt.Sprintf("cannot read loop device %s: %v", b.Device, err)
		case !attached || cur != b.Backing:
			return false, fmt.Sprintf("loop device %s is not attached to %s yet", b.Device, b.Backing)
		}
		return true, ""
	}
	if !m.files.Exists(b.Dir) {
		return false, fmt.Sprintf("the volume's directory %s does not exist yet", b.Dir)
	}
	return true, ""
}

// UploadReady reports whether DataVolume namespace/name takes an upload
// now; its errors wrap ErrUploadNotFound, ErrUploadDone, ErrUploadBusy or
// ErrUploadNotReady.
func (m *Manager) UploadReady(namespace, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _, err := m.uploadCheck(namespace + "/" + name)
	return err
}

// uploadCheck is UploadReady's test; it returns the claim and its record
// when an upload may start. m.mu held.
func (m *Manager) uploadCheck(key string) (*Claim, *claimRecord, error) {
	c, err := m.uploadClaim(key)
	if err != nil {
		return nil, nil, err
	}
	if m.jobs[key] != nil {
		return nil, nil, fmt.Errorf("DataVolume %s: %w", key, ErrUploadBusy)
	}
	r := m.claimRecs[key]
	if r != nil && r.Phase == PhaseSucceeded && (r.Block || m.files.Exists(r.Path)) {
		// CDI's text, which clients match.
		return nil, nil, fmt.Errorf("rejecting Upload Request for PVC %s that already finished uploading: %w", c.Name, ErrUploadDone)
	}
	b := m.binding(r)
	if b == nil {
		s := m.pending[key]
		why := s.Message
		if why == "" {
			why = "its claim is not bound to a volume yet"
		}
		phase := s.Phase
		if phase == "" {
			phase = PhasePending
		}
		return nil, nil, fmt.Errorf("DataVolume %s is %s (%s): %w", key, phase, why, ErrUploadNotReady)
	}
	if ok, why := m.prepared(b); !ok {
		return nil, nil, fmt.Errorf("DataVolume %s is %s (%s): %w", key, PhaseUploadScheduled, why, ErrUploadNotReady)
	}
	switch v, mk, msg := m.inspect(c, r, b); v {
	case diskAdopt:
		return nil, nil, fmt.Errorf("rejecting Upload Request for PVC %s that already finished uploading (%s carries the marker of its completed upload): %w", c.Name, mk.File, ErrUploadDone)
	case diskConflict:
		return nil, nil, fmt.Errorf("DataVolume %s: %s: %w", key, msg, ErrUploadNotReady)
	}
	return c, r, nil
}

// Upload fills the upload DataVolume namespace/name with the image read
// from r (size bytes, -1 when unknown). It returns once the disk is
// complete or the upload failed; with received set, it returns as soon as
// every byte was read and the image checked, after calling received, and
// the conversion goes on in the background (the claim's phase tells how
// it ended). The outcome is recorded as an import's: Succeeded with the
// completed-import marker, or Failed with the reason; a failed upload may
// be retried at once. Refusals wrap ErrUploadNotFound, ErrUploadDone,
// ErrUploadBusy or ErrUploadNotReady.
func (m *Manager) Upload(ctx context.Context, namespace, name string, r io.Reader, size int64, received func()) error {
	key := namespace + "/" + name
	m.mu.Lock()
	c, rec, err := m.uploadCheck(key)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	b := m.binding(rec)
	req := ImportRequest{Kind: SourceUpload, Target: b.path(), Block: b.Device != "", Preallocate: c.Preallocate, Limits: c.Limits,
		Reader: r, ReaderSize: size}
	if !req.Block {
		req.Size = c.DiskSize
	}
	scratch, err := m.scratchDir(m.desired, c)
	if err != nil {
		m.mu.Unlock()
		return fmt.Errorf("upload into %s: scratch space: %w", key, err)
	}
	req.Scratch = scratch
	// Before anything writes the disk: a stale marker never outlives it.
	if err := m.dropMarker(key, b.diskFile()); err != nil {
		m.mu.Unlock()
		return fmt.Errorf("upload into %s: %w", key, err)
	}
	rec.Hash, rec.Claim, rec.Owner, rec.Object = c.Hash, c, c.Owner, c.Object
	rec.Phase, rec.Progress, rec.Reason, rec.Message = PhaseUploadReady, 0, ReasonUploading, "Upload in progress"
	rec.Started, rec.Finished, rec.Result, rec.Retry = m.cfg.Now(), time.Time{}, nil, time.Time{}
	if err := m.putClaim(rec); err != nil {
		m.mu.Unlock()
		return fmt.Errorf("upload into %s: %w", key, err)
	}
	jctx, cancelCause := context.WithCancelCause(m.ctx)
	j := &job{cancel: func() { cancelCause(nil) }, done: make(chan struct{})}
	m.jobs[key] = j
	m.mu.Unlock()

	in := make(chan struct{})
	var once sync.Once
	req.Received = func() { once.Do(func() { close(in) }) }
	var jobErr error
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(j.done)
		defer cancelCause(nil)
		jobErr = m.runUpload(jctx, key, req, scratch, b.diskFile())
	}()
	if m.cfg.OnChange != nil {
		m.cfg.OnChange() // the phase shows the transfer
	}
	for {
		select {
		case <-j.done:
			return jobErr
		case <-in:
			if received != nil {
				received()
				return nil
			}
			in = nil // a synchronous upload waits for the end
		case <-ctx.Done():
			if in != nil {
				// The caller went away before every byte arrived: the
				// upload cannot complete.
				cancelCause(errClientGone)
				<-j.done
				return jobErr
			}
			// Every byte is in: the conversion finishes without the caller.
			return ctx.Err()
		}
	}
}

// runUpload runs one upload and records its outcome.
func (m *Manager) runUpload(ctx context.Context, key string, req ImportRequest, scratch, file string) error {
	res, err := m.imp.Import(ctx, req, func(p float64) { m.progress(key, p) })
	if err != nil && errors.Is(err, context.Canceled) && errors.Is(context.Cause(ctx), errClientGone) {
		err = errClientGone
	}
	serr := m.settle(key, scratch, func(rec *claimRecord, now time.Time) {
		if err == nil {
			rec.Phase, rec.Progress, rec.Reason, rec.Message = PhaseSucceeded, 100, "Completed", "Upload Complete"
			rec.Result, rec.Attempts = &res, 0
			m.log.Info("upload done", "claim", key, "format", res.Format, "bytes", res.Transferred, "took", now.Sub(rec.Started).Round(time.Millisecond))
			if merr := m.writeMarker(rec, file, ""); merr != nil {
				m.log.Error("write upload marker", "claim", key, "file", file, "err", merr)
			}
			return
		}
		err = fmt.Errorf("upload into %s: %w", key, err)
		rec.Attempts++
		rec.Phase, rec.Progress, rec.Reason, rec.Message = PhaseFailed, 0, "Error", err.Error()
		m.log.Error("upload failed", "claim", key, "attempt", rec.Attempts, "err", err)
	})
	if serr != nil && err == nil {
		// The record stays "uploading" and the next plan offers the
		// upload again.
		err = fmt.Errorf("upload into %s: %w", key, serr)
	}
	return err
}
