package agent

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/runtime/importer"
)

// uploadKick is how often a running upload asks the loop for an iteration,
// so the status the API serves shows its progress.
const uploadKick = 2 * time.Second

// UploadReady reports whether DataVolume namespace/name takes an upload now
// (namespace "" is the agent's default namespace). Its errors carry the API
// answer CDI's upload proxy gives: no such upload DataVolume (404), already
// uploaded (409), another upload running or the volume not ready (503).
func (s *Service) UploadReady(ctx context.Context, namespace, name string) error {
	a := s.agent()
	if a.storage == nil {
		return api.Unavailable(errors.New("this agent runs no storage stage: it takes no uploads"))
	}
	if namespace == "" {
		namespace = a.defaultNamespace()
	}
	return uploadErr(a.storage.UploadReady(namespace, name))
}

// Upload reads an image of size bytes (-1 when unknown) from r into
// DataVolume namespace/name. With async it returns once every byte was
// received and the image checked, while the conversion goes on; else once
// the disk is complete or the upload failed. A completed upload makes the
// loop reconcile, so VMs waiting for the DataVolume start.
func (s *Service) Upload(ctx context.Context, namespace, name string, r io.Reader, size int64, async bool) error {
	a := s.agent()
	if a.storage == nil {
		return api.Unavailable(errors.New("this agent runs no storage stage: it takes no uploads"))
	}
	if namespace == "" {
		namespace = a.defaultNamespace()
	}
	var received func()
	if async {
		received = func() {}
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(uploadKick)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				a.Kick()
			}
		}
	}()
	err := a.storage.Upload(ctx, namespace, name, r, size, received)
	if err != nil {
		a.Event(status.Warning, "UploadFailed", "DataVolume "+namespace+"/"+name, err.Error())
		return uploadErr(err)
	}
	what := "upload complete"
	if async {
		what = "upload received; converting"
	}
	a.Event(status.Normal, "Uploaded", "DataVolume "+namespace+"/"+name, what)
	return nil
}

// uploadErr marks an upload's error with the answer it gets.
func uploadErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrUploadNotFound):
		return api.NotFound(err)
	case errors.Is(err, storage.ErrUploadDone):
		return api.Conflict(err)
	case errors.Is(err, storage.ErrUploadBusy), errors.Is(err, storage.ErrUploadNotReady):
		return api.Unavailable(err)
	case errors.Is(err, importer.ErrTooSmall), errors.Is(err, importer.ErrFormat), errors.Is(err, importer.ErrUnsupported),
		errors.Is(err, io.ErrUnexpectedEOF):
		return api.Invalid(err)
	}
	return err
}
