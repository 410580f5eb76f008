package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/nodedesc"
	"github.com/nodevirt/nodevirt/internal/pki"
	"github.com/nodevirt/nodevirt/internal/report"
	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/internal/token"
)

// uploadAgent is an agent that holds DataVolumes and takes uploads into
// them: the disks are the bytes it really read, its status follows.
type uploadAgent struct {
	mu       sync.Mutex
	st       status.Node
	version  uint64
	disks    map[string][]byte
	attempts int
	// drop aborts this many uploads halfway, as a dropped connection.
	drop int
	// refuse is the error of every upload when set.
	refuse error
	// imports are the DataVolumes that import from elsewhere.
	imports map[string]bool
}

func (a *uploadAgent) Status() status.Node {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st
}
func (a *uploadAgent) StatusVersion() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.version
}
func (a *uploadAgent) Events() []status.Event                    { return nil }
func (a *uploadAgent) Plan(context.Context) (report.Plan, error) { return report.Plan{}, nil }
func (a *uploadAgent) Describe(context.Context) (nodedesc.Description, error) {
	return nodedesc.Description{}, nil
}
func (a *uploadAgent) VMAction(context.Context, string, string, string) (status.ActionResult, error) {
	return status.ActionResult{}, errors.New("not here")
}
func (a *uploadAgent) Reconcile(context.Context) (status.ActionResult, error) {
	return status.ActionResult{}, nil
}
func (a *uploadAgent) Suspend(context.Context, string, bool) (status.ActionResult, error) {
	return status.ActionResult{}, nil
}

func (a *uploadAgent) addDV(ns, name string, phase cdiv1.DataVolumePhase, upload bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	// As the agent shows it: no spec; the claim says when it takes an
	// upload.
	dv := cdiv1.DataVolume{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Status: cdiv1.DataVolumeStatus{Phase: phase}}
	a.st.DataVolumes = append(a.st.DataVolumes, dv)
	if !upload {
		if a.imports == nil {
			a.imports = map[string]bool{}
		}
		a.imports[ns+"/"+name] = true
	}
	a.version++
}

func (a *uploadAgent) setPhase(ns, name string, phase cdiv1.DataVolumePhase, msg string) {
	for i := range a.st.DataVolumes {
		dv := &a.st.DataVolumes[i]
		if dv.Namespace == ns && dv.Name == name {
			dv.Status.Phase = phase
			dv.Status.Conditions = []cdiv1.DataVolumeCondition{{Type: cdiv1.DataVolumeRunning, Status: corev1.ConditionFalse,
				Message: msg, LastTransitionTime: metav1.Now()}}
		}
	}
	a.version++
}

func (a *uploadAgent) phase(ns, name string) cdiv1.DataVolumePhase {
	for _, dv := range a.st.DataVolumes {
		if dv.Namespace == ns && dv.Name == name {
			return dv.Status.Phase
		}
	}
	return ""
}

func (a *uploadAgent) UploadReady(_ context.Context, ns, name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.phase(ns, name) == "" {
		return api.NotFound(fmt.Errorf("no upload DataVolume %s/%s", ns, name))
	}
	if a.imports[ns+"/"+name] {
		return api.NotFound(fmt.Errorf("DataVolume %s/%s imports over HTTP: it takes no upload", ns, name))
	}
	switch a.phase(ns, name) {
	case cdiv1.Succeeded:
		return api.Conflict(fmt.Errorf("DataVolume %s/%s already finished uploading", ns, name))
	case cdiv1.UploadReady, cdiv1.Failed:
		return nil
	}
	return api.Unavailable(fmt.Errorf("DataVolume %s/%s is not UploadReady", ns, name))
}

func (a *uploadAgent) Upload(ctx context.Context, ns, name string, r io.Reader, size int64, async bool) error {
	if err := a.UploadReady(ctx, ns, name); err != nil {
		return err
	}
	a.mu.Lock()
	a.attempts++
	drop, refuse := a.drop > 0, a.refuse
	if drop {
		a.drop--
	}
	a.mu.Unlock()
	if drop {
		io.CopyN(io.Discard, r, size/2)
		a.mu.Lock()
		a.setPhase(ns, name, cdiv1.Failed, "the upload's connection closed after half the image")
		a.mu.Unlock()
		panic(http.ErrAbortHandler) // the connection drops
	}
	b, err := io.ReadAll(r)
	if err == nil && refuse != nil {
		err = refuse
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.setPhase(ns, name, cdiv1.Failed, err.Error())
		return err
	}
	if a.disks == nil {
		a.disks = map[string][]byte{}
	}
	a.disks[ns+"/"+name] = b
	a.setPhase(ns, name, cdiv1.Succeeded, "")
	return nil
}

// uploadServer serves a an API on loopback HTTPS and returns the global
// flags that reach it: --server, --token-file, --certificate-authority.
func uploadServer(t *testing.T, a *uploadAgent) []string {
	t.Helper()
	dir := t.TempDir()
	tokens, err := token.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.New(pki.Options{Dir: filepath.Join(dir, "pki"), Lifetimes: pki.DefaultLifetimes(),
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(api.Options{Node: "n1", Agent: a, Uploads: a, Token: func(s string) (string, time.Time, error) {
		info, err := tokens.Verify(s)
		return info.Name, info.Expires, err
	}})
	l, err := api.ListenTLS("127.0.0.1:0", certs.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); api.Serve(ctx, l, srv.Handler(), nil) }()
	t.Cleanup(func() { cancel(); <-done })
	secret, _, err := tokens.Create("cli", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tf := filepath.Join(dir, "token")
	if err := os.WriteFile(tf, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--server", "https://" + l.Addr().String(), "--token-file", tf, "--certificate-authority", filepath.Join(dir, "pki", "ca.crt")}
}

func imageFile(t *testing.T, n int) (string, []byte) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

func TestImageUpload_argumentsAndFlags(t *testing.T) {
	img, _ := imageFile(t, 10)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"image-upload"}, "accepts between 1 and 2 arg(s)"},
		{[]string{"image-upload", "vm", "x", "--image-path", img}, `want dv NAME (or dv/NAME), not "vm x"`},
		{[]string{"image-upload", "pvc", "x", "--image-path", img}, "DataVolumes only"},
		{[]string{"image-upload", "dv/", "--image-path", img}, "name is missing"},
		{[]string{"image-upload", "dv", "x"}, "--image-path is required"},
		{[]string{"image-upload", "dv", "x", "--image-path", filepath.Join(t.TempDir(), "none.img")}, "no such file"},
		{[]string{"image-upload", "dv", "x", "--image-path", t.TempDir()}, "is not a regular file"},
		{[]string{"image-upload", "dv", "x", "--image-path", img, "--size", "ten gigs"}, `--size "ten gigs"`},
		{[]string{"image-upload", "dv", "x", "--image-path", img}, "no agent runs on the state directory"},
	} {
		_, errOut, code := run(t, c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want an error with %q", c.args, code, errOut, c.want)
		}
	}
}

// A DataVolume the source does not hold is printed to commit, never made:
// the command exits non-zero and nothing is uploaded.
func TestImageUpload_missingDataVolumeIsPrintedToCommit(t *testing.T) {
	a := &uploadAgent{}
	a.addDV("default", "fromhttp", cdiv1.Succeeded, false)
	flags := uploadServer(t, a)
	img, _ := imageFile(t, 4096)
	args := append(flags, "image-upload", "dv", "newdisk", "--image-path", img)

	if _, errOut, code := run(t, args...); code == 0 || !strings.Contains(errOut, "when creating a resource, the size must be specified") {
		t.Fatalf("no --size: exit %d %q", code, errOut)
	}
	out, errOut, code := run(t, append(args, "--size", "2Gi", "--block-volume", "--storage-class", "local", "--namespace", "prod")...)
	if code == 0 {
		t.Fatal("a missing DataVolume exited 0")
	}
	if !strings.Contains(errOut, "prod/newdisk is not in the source") || !strings.Contains(errOut, "--no-create") {
		t.Errorf("stderr does not say to commit and run again: %q", errOut)
	}
	var dv cdiv1.DataVolume
	if err := yaml.UnmarshalStrict([]byte(out), &dv); err != nil {
		t.Fatalf("stdout is not a DataVolume: %v\n%s", err, out)
	}
	if dv.APIVersion != "cdi.kubevirt.io/v1beta1" || dv.Kind != "DataVolume" || dv.Name != "newdisk" || dv.Namespace != "prod" ||
		dv.Spec.Source == nil || dv.Spec.Source.Upload == nil || dv.Spec.Storage == nil ||
		dv.Spec.Storage.Resources.Requests.Storage().String() != "2Gi" ||
		dv.Spec.Storage.VolumeMode == nil || *dv.Spec.Storage.VolumeMode != corev1.PersistentVolumeBlock ||
		dv.Spec.Storage.StorageClassName == nil || *dv.Spec.Storage.StorageClassName != "local" {
		t.Errorf("printed DataVolume:\n%s", out)
	}
	if strings.Contains(out, "status") || strings.Contains(out, "creationTimestamp") {
		t.Errorf("the manifest to commit carries server fields:\n%s", out)
	}

	if _, errOut, code := run(t, append(args, "--no-create")...); code == 0 || !strings.Contains(errOut, "default/newdisk is not in the source") {
		t.Errorf("--no-create with a missing DataVolume: exit %d %q", code, errOut)
	}
	if _, errOut, code := run(t, append(flags, "image-upload", "dv", "fromhttp", "--image-path", img, "--no-create")...); code == 0 || !strings.Contains(errOut, "not an upload DataVolume") {
		t.Errorf("a DataVolume that imports over HTTP: exit %d %q", code, errOut)
	}
	if a.attempts != 0 || len(a.disks) != 0 {
		t.Fatalf("refused commands uploaded: %d attempts", a.attempts)
	}
}

// The upload as virtctl makes it: the progress bar, a dropped attempt
// sent again from the first byte, the disk identical to the file, and the
// two closing lines. --token-file works after the subcommand too.
func TestImageUpload_retriesADroppedUploadFromTheStart(t *testing.T) {
	a := &uploadAgent{drop: 1}
	a.addDV("default", "disk", cdiv1.UploadReady, true)
	flags := uploadServer(t, a)
	img, want := imageFile(t, 2<<20)
	args := append([]string{"image-upload", "dv/disk", "--image-path", img, "--no-create"}, flags...)
	out, errOut, code := run(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	if !bytes.Equal(a.disks["default/disk"], want) {
		t.Fatalf("the disk has %d bytes, want the %d of the file", len(a.disks["default/disk"]), len(want))
	}
	if a.attempts != 2 {
		t.Errorf("%d attempts, want 2 (one dropped, one retried)", a.attempts)
	}
	for _, line := range []string{"Upload failed", "sending again from the start",
		"Uploading data completed successfully, waiting for processing to complete, you can hit ctrl-c without interrupting the progress",
		"Processing completed successfully", "2.00 MiB"} {
		if !strings.Contains(out, line) {
			t.Errorf("stdout lacks %q:\n%s", line, out)
		}
	}
}

// An image the agent refuses is not sent again, and the command fails
// with the agent's reason; a DataVolume that never becomes ready fails
// after --wait-secs.
func TestImageUpload_refusedImageAndNotReady(t *testing.T) {
	a := &uploadAgent{refuse: api.Invalid(errors.New("the image is larger than the DataVolume (too small a target)"))}
	a.addDV("default", "disk", cdiv1.UploadReady, true)
	a.addDV("default", "later", cdiv1.UploadScheduled, true)
	flags := uploadServer(t, a)
	img, _ := imageFile(t, 64<<10)
	_, errOut, code := run(t, append(flags, "image-upload", "dv", "disk", "--image-path", img, "--no-create")...)
	if code == 0 || !strings.Contains(errOut, "too small a target") {
		t.Fatalf("refused image: exit %d %q", code, errOut)
	}
	if a.attempts != 1 {
		t.Errorf("a refused image was sent %d times", a.attempts)
	}
	start := time.Now()
	out, errOut, code := run(t, append(flags, "image-upload", "dv", "later", "--image-path", img, "--no-create", "--wait-secs", "1")...)
	if code == 0 || !strings.Contains(errOut, "not ready for the upload after 1 seconds (phase UploadScheduled)") || !strings.Contains(out, "Waiting for DataVolume default/later") {
		t.Fatalf("never ready: exit %d %q %q", code, out, errOut)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("--wait-secs 1 took %s", d)
	}
}

// --uploadproxy-url alone (no scheme, no --server) reaches the agent over
// HTTPS, and --insecure stands in for its CA; without either the agent's
// self-made certificate is refused.
func TestImageUpload_uploadProxyURLAndInsecure(t *testing.T) {
	a := &uploadAgent{}
	a.addDV("default", "disk", cdiv1.UploadReady, true)
	flags := uploadServer(t, a) // --server URL --token-file F --certificate-authority CA
	hostPort := strings.TrimPrefix(flags[1], "https://")
	img, want := imageFile(t, 256<<10)
	args := []string{"image-upload", "dv", "disk", "--image-path", img, "--no-create", "--uploadproxy-url", hostPort, "--token-file", flags[3]}
	if _, errOut, code := run(t, args...); code == 0 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("an unverified agent certificate was accepted: exit %d %q", code, errOut)
	}
	out, errOut, code := run(t, append(args, "--insecure")...)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	if !bytes.Equal(a.disks["default/disk"], want) {
		t.Fatal("the disk differs from the file")
	}
}
