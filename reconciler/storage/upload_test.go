package storage

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/runtime/importer"
	"github.com/nodevirt/nodevirt/runtime/volumes"
)

// realImporter is runtime/importer behind Importer, as the agent wires it.
type realImporter struct{ im *importer.Importer }

func (r realImporter) Import(ctx context.Context, req ImportRequest, progress func(float64)) (ImportResult, error) {
	res, err := r.im.Import(ctx, importer.Request{
		Source:   importer.Source{Kind: importer.SourceKind(req.Kind), Reader: req.Reader, Size: req.ReaderSize},
		Target:   importer.Target{Path: req.Target, Block: req.Block, Size: req.Size, Preallocate: req.Preallocate},
		Scratch:  req.Scratch,
		Progress: progress,
		Received: req.Received,
	})
	return ImportResult{Format: res.Format, Compression: res.Compression, VirtualSize: res.VirtualSize, Transferred: res.Transferred, Scratch: res.Scratch}, err
}

const uploadDV = `---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: up, namespace: default}
spec:
  source: {upload: {}}
  storage: {resources: {requests: {storage: 8Mi}}}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: blank, namespace: default}
spec:
  source: {blank: {}}
  storage: {resources: {requests: {storage: 8Mi}}}
`

// uploadRig is a Manager over real files under a temporary root with the
// real importer, holding the upload DataVolume default/up used by a VM.
type uploadRig struct {
	t     *testing.T
	root  string
	cfg   Config
	kv    *fakeKV
	loops *fakeLoops
	m     *Manager
	st    *State
}

func newUploadRig(t *testing.T) *uploadRig {
	t.Helper()
	root := t.TempDir()
	u := &uploadRig{t: t, root: root, kv: newFakeKV(), loops: newFakeLoops(),
		cfg: Config{Root: root, StateDir: filepath.Join(root, "var/lib/nodevirt"), SelfHeal: true, Now: time.Now}}
	u.st = Build(manifests.Parse("storage.yaml", []byte(hostpathBase+uploadDV+vm("web", "dv:up", "dv:blank")), manifests.Options{}), Options{Node: "node01"})
	if u.st.Diags.HasErrors() {
		t.Fatal(u.st.Diags)
	}
	u.restart()
	return u
}

func (u *uploadRig) restart() {
	u.t.Helper()
	m, err := NewManager(u.cfg, realImporter{importer.New(importer.Config{})}, u.loops, volumes.Files{}, fakeSecrets{}, u.kv)
	if err != nil {
		u.t.Fatal(err)
	}
	u.m = m
	u.t.Cleanup(m.Close)
}

func (u *uploadRig) apply() *Plan {
	u.t.Helper()
	p, err := u.m.Plan(context.Background(), u.st)
	if err != nil {
		u.t.Fatal(err)
	}
	if err := u.m.Apply(context.Background(), p, All).Err(); err != nil {
		u.t.Fatal(err)
	}
	if err := u.m.Wait(u.t.Context()); err != nil {
		u.t.Fatal(err)
	}
	return p
}

func (u *uploadRig) status() ClaimStatus {
	s, _ := u.m.Claim("default", "up")
	return s
}

func (u *uploadRig) disk() string {
	return filepath.Join(u.root, "var/hpvolumes", dynamicName("default/up"), "disk.img")
}

func image(size int) []byte {
	b := make([]byte, size)
	copy(b, "uploaded image: start")
	copy(b[size/2:], "uploaded image: middle")
	return b
}

// An upload DataVolume is UploadScheduled until its volume is there, then
// UploadReady naming the command; an upload makes it Succeeded with the
// image byte-identical in its disk and the completed-import marker beside
// it; a second upload is refused with CDI's text.
func TestUpload_lifecycle(t *testing.T) {
	u := newUploadRig(t)
	if err := u.m.UploadReady("default", "up"); !errors.Is(err, ErrUploadNotFound) {
		t.Fatalf("before any plan: %v", err)
	}
	p, err := u.m.Plan(context.Background(), u.st)
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Claims["default/up"]; s.Phase != PhaseUploadScheduled {
		t.Fatalf("planned %+v", s)
	}
	if err := u.m.UploadReady("default", "up"); !errors.Is(err, ErrUploadNotReady) || !strings.Contains(err.Error(), "UploadScheduled") {
		t.Fatalf("before the volume exists: %v", err)
	}
	if err := u.m.Apply(context.Background(), p, All).Err(); err != nil {
		t.Fatal(err)
	}
	if err := u.m.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := u.status()
	if s.Phase != PhaseUploadReady || s.Ready || s.Message != "ready for an upload: nodevirt image-upload dv up --no-create --image-path FILE" {
		t.Fatalf("after the apply %+v", s)
	}
	if err := u.m.UploadReady("default", "up"); err != nil {
		t.Fatalf("UploadReady: %v", err)
	}
	if err := u.m.UploadReady("default", "blank"); !errors.Is(err, ErrUploadNotFound) || !strings.Contains(err.Error(), "source blank") {
		t.Fatalf("a blank DataVolume: %v", err)
	}
	if err := u.m.UploadReady("default", "nope"); !errors.Is(err, ErrUploadNotFound) || !strings.Contains(err.Error(), "not in the source") {
		t.Fatalf("an unknown DataVolume: %v", err)
	}

	img := image(6 << 20)
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(img)
	zw.Close()
	if err := u.m.Upload(t.Context(), "default", "up", bytes.NewReader(zb.Bytes()), int64(zb.Len()), nil); err != nil {
		t.Fatalf("upload: %v", err)
	}
	s = u.status()
	if s.Phase != PhaseSucceeded || !s.Ready || s.Message != "Upload Complete" {
		t.Fatalf("after the upload %+v", s)
	}
	got, err := os.ReadFile(u.disk())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(img) || !bytes.Equal(got[:len(img)], img) {
		t.Fatal("the disk differs from the uploaded image")
	}
	if _, err := os.Stat(markerPath(u.disk())); err != nil {
		t.Fatalf("no marker of the completed upload: %v", err)
	}
	err = u.m.Upload(t.Context(), "default", "up", bytes.NewReader(img), int64(len(img)), nil)
	if !errors.Is(err, ErrUploadDone) || !strings.Contains(err.Error(), "rejecting Upload Request for PVC up that already finished uploading") {
		t.Fatalf("second upload: %v", err)
	}
	if p := u.apply(); !strings.Contains(strings.Join(p.InSync, " "), "DataVolume default/up") {
		t.Fatalf("not in sync after the upload: %q", actions(p))
	}

	// A lost disk is drift only a new upload heals.
	if err := os.Rename(u.disk(), u.disk()+".away"); err != nil {
		t.Fatal(err)
	}
	p = u.apply()
	if a := hasAction(p, ActWait, "DataVolume default/up"); a == nil || !a.Drift || !strings.Contains(a.Reason, "missing") {
		t.Fatalf("plan without the uploaded disk: %q", actions(p))
	}
	if s := u.status(); s.Phase != PhaseUploadReady || s.Ready {
		t.Fatalf("without its disk %+v", s)
	}
	if err := u.m.Upload(t.Context(), "default", "up", bytes.NewReader(img), int64(len(img)), nil); err != nil {
		t.Fatalf("upload again: %v", err)
	}
	os.Remove(u.disk() + ".away")

	// A lost state adopts the uploaded disk by its marker.
	u.m.Close()
	u.kv = newFakeKV()
	u.restart()
	u.apply()
	if s := u.status(); s.Phase != PhaseSucceeded {
		t.Fatalf("after a lost state %+v", s)
	}
}

// Too large an image, a dropped connection: Failed with the reason, no disk
// in place, and the next upload may start at once.
func TestUpload_failsAndRetries(t *testing.T) {
	u := newUploadRig(t)
	u.apply()
	big := image(16 << 20)
	err := u.m.Upload(t.Context(), "default", "up", bytes.NewReader(big), int64(len(big)), nil)
	if !errors.Is(err, importer.ErrTooSmall) {
		t.Fatalf("too large: %v", err)
	}
	s := u.status()
	if s.Phase != PhaseFailed || s.Ready || !strings.Contains(s.Message, "a larger PVC is required") {
		t.Fatalf("after a too large upload %+v", s)
	}
	if _, err := os.Stat(u.disk()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a disk is in place after a failed upload: %v", err)
	}
	p := u.apply()
	if a := hasAction(p, ActWait, "DataVolume default/up"); a == nil || !strings.Contains(a.Reason, "upload again: nodevirt image-upload dv up") {
		t.Fatalf("plan after the failure: %q", actions(p))
	}
	if s := u.status(); s.Phase != PhaseFailed {
		t.Fatalf("the failure is not shown until the next upload: %+v", s)
	}

	img := image(6 << 20)
	pr, pw := io.Pipe()
	go func() {
		pw.Write(img[:3<<20])
		pw.CloseWithError(errors.New("connection reset by peer"))
	}()
	err = u.m.Upload(t.Context(), "default", "up", pr, int64(len(img)), nil)
	if err == nil || !strings.Contains(err.Error(), "connection reset by peer") {
		t.Fatalf("dropped upload: %v", err)
	}
	if s := u.status(); s.Phase != PhaseFailed || !strings.Contains(s.Message, "connection reset by peer") {
		t.Fatalf("after a dropped upload %+v", s)
	}
	if _, err := os.Stat(u.disk()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a half-written disk is in place: %v", err)
	}
	if err := u.m.Upload(t.Context(), "default", "up", bytes.NewReader(img), int64(len(img)), nil); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if s := u.status(); s.Phase != PhaseSucceeded {
		t.Fatalf("after the retry %+v", s)
	}
}

// While an upload runs a second one is refused as busy, the DataVolume is
// not ready for its VM and no disk is in place; an agent stopping during
// the transfer leaves it UploadReady again.
func TestUpload_busyAndInterrupted(t *testing.T) {
	u := newUploadRig(t)
	u.apply()
	img := image(6 << 20)
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- u.m.Upload(context.Background(), "default", "up", pr, int64(len(img)), nil) }()
	if _, err := pw.Write(img[:2<<20]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return u.status().Progress > 0 })
	s := u.status()
	if s.Phase != PhaseUploadReady || s.Reason != ReasonUploading || s.Ready {
		t.Fatalf("during the transfer %+v", s)
	}
	if err := u.m.Upload(t.Context(), "default", "up", bytes.NewReader(img), int64(len(img)), nil); !errors.Is(err, ErrUploadBusy) {
		t.Fatalf("second upload: %v", err)
	}
	if err := u.m.UploadReady("default", "up"); !errors.Is(err, ErrUploadBusy) {
		t.Fatalf("UploadReady during an upload: %v", err)
	}
	if _, err := os.Stat(u.disk()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a disk is in place during the upload: %v", err)
	}
	// The agent stops; the server then drops the connection.
	closed := make(chan struct{})
	go func() { u.m.Close(); close(closed) }()
	waitFor(t, func() bool { return u.m.ctx.Err() != nil })
	pw.CloseWithError(errors.New("server shutting down"))
	<-closed
	if err := <-errc; err == nil {
		t.Fatal("an interrupted upload succeeded")
	}
	u.restart()
	p := u.apply()
	if a := hasAction(p, ActWait, "DataVolume default/up"); a == nil || !strings.Contains(a.Reason, "interrupted") {
		t.Fatalf("after the restart: %q", actions(p))
	}
	if s := u.status(); s.Phase != PhaseUploadReady || s.Ready {
		t.Fatalf("after the restart %+v", s)
	}
	if err := u.m.Upload(t.Context(), "default", "up", bytes.NewReader(img), int64(len(img)), nil); err != nil {
		t.Fatalf("upload after the restart: %v", err)
	}
}

// An asynchronous upload returns once every byte was read and the image
// checked; the conversion of a qcow2 goes on and ends Succeeded.
func TestUpload_async(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img is not installed")
	}
	u := newUploadRig(t)
	u.apply()
	img := image(6 << 20)
	dir := t.TempDir()
	raw := filepath.Join(dir, "in.raw")
	if err := os.WriteFile(raw, img, 0o644); err != nil {
		t.Fatal(err)
	}
	qcow := filepath.Join(dir, "in.qcow2")
	if msg, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, msg)
	}
	data, err := os.ReadFile(qcow)
	if err != nil {
		t.Fatal(err)
	}
	r := &countReader{r: bytes.NewReader(data)}
	told := false
	if err := u.m.Upload(t.Context(), "default", "up", r, int64(len(data)), func() { told = true }); err != nil {
		t.Fatalf("async upload: %v", err)
	}
	if !told || r.n != int64(len(data)) {
		t.Fatalf("returned before every byte was read (%d of %d, received %v)", r.n, len(data), told)
	}
	if err := u.m.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := u.status(); s.Phase != PhaseSucceeded {
		t.Fatalf("after the conversion %+v", s)
	}
	got, err := os.ReadFile(u.disk())
	if err != nil || !bytes.Equal(got[:len(img)], img) {
		t.Fatalf("the converted disk differs: %v", err)
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// slowReader hands out a little at a time, as a slow connection does.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(b []byte) (int, error) {
	time.Sleep(5 * time.Millisecond)
	return s.r.Read(b[:min(len(b), 64<<10)])
}

// A client that goes away during the transfer fails the upload with that
// reason; no disk is left in place.
func TestUpload_clientGone(t *testing.T) {
	u := newUploadRig(t)
	u.apply()
	img := image(6 << 20)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for u.status().Progress == 0 && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	err := u.m.Upload(ctx, "default", "up", slowReader{bytes.NewReader(img)}, int64(len(img)), nil)
	if !errors.Is(err, errClientGone) {
		t.Fatalf("upload whose client went away: %v", err)
	}
	if s := u.status(); s.Phase != PhaseFailed || !strings.Contains(s.Message, "client went away") {
		t.Fatalf("status %+v", s)
	}
	if _, err := os.Stat(u.disk()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a disk is in place: %v", err)
	}
}
