package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/internal/api"
)

// uploads is the agent's side in these tests: DataVolumes in a phase,
// whose disks are the bytes really read from the request.
type uploads struct {
	mu  sync.Mutex
	dvs map[string]*uploadDV
	// gate, when set, holds every upload after its first byte until it
	// is closed, so a test can look at the server mid-stream.
	gate chan struct{}
}

type uploadDV struct {
	phase string // UploadReady, Succeeded, UploadScheduled
	busy  bool
	disk  []byte
	// failures are the errors of the uploads that failed.
	failures []error
	async    []bool
}

func newUploads(ready ...string) *uploads {
	u := &uploads{dvs: map[string]*uploadDV{}}
	for _, k := range ready {
		u.dvs[k] = &uploadDV{phase: "UploadReady"}
	}
	return u
}

func (u *uploads) dv(ns, name string) (*uploadDV, error) {
	d := u.dvs[ns+"/"+name]
	switch {
	case d == nil:
		return nil, api.NotFound(fmt.Errorf("no upload DataVolume %s/%s", ns, name))
	case d.phase == "Succeeded":
		return nil, api.Conflict(fmt.Errorf("DataVolume %s/%s already finished uploading", ns, name))
	case d.busy:
		return nil, api.Unavailable(fmt.Errorf("DataVolume %s/%s is taking another upload", ns, name))
	case d.phase != "UploadReady":
		return nil, api.Unavailable(fmt.Errorf("DataVolume %s/%s is %s, not UploadReady yet", ns, name, d.phase))
	}
	return d, nil
}

func (u *uploads) UploadReady(_ context.Context, ns, name string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, err := u.dv(ns, name)
	return err
}

func (u *uploads) Upload(ctx context.Context, ns, name string, r io.Reader, size int64, async bool) error {
	u.mu.Lock()
	d, err := u.dv(ns, name)
	if err != nil {
		u.mu.Unlock()
		return err
	}
	d.busy = true
	gate := u.gate
	u.mu.Unlock()
	var buf bytes.Buffer
	_, err = io.CopyN(&buf, r, 1)
	if err == nil && gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err == nil {
		_, err = io.Copy(&buf, r)
	}
	if err == nil && size >= 0 && int64(buf.Len()) != size {
		err = fmt.Errorf("got %d bytes of %d", buf.Len(), size)
	}
	if err == nil && bytes.HasPrefix(buf.Bytes(), []byte("BAD")) {
		err = api.Invalid(errors.New("not a disk image: no known format"))
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	d.busy = false
	if err != nil {
		d.failures = append(d.failures, err)
		return err
	}
	d.disk, d.phase, d.async = buf.Bytes(), "Succeeded", append(d.async, async)
	return nil
}

func (u *uploads) get(key string) uploadDV {
	u.mu.Lock()
	defer u.mu.Unlock()
	return *u.dvs[key]
}

func withUploads(u *uploads) func(*api.Options) {
	return func(o *api.Options) { o.Uploads = u }
}

// remote is an api.Client of w over HTTPS with a fresh API token.
func (w *world) remote() *api.Client {
	w.t.Helper()
	tf := filepath.Join(w.t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte(w.token(time.Hour)), 0o600); err != nil {
		w.t.Fatal(err)
	}
	ca := filepath.Join(w.state, "pki", "ca.crt")
	c, err := api.Remote(w.url, api.Credentials{TokenFile: tf, CAFile: ca})
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func codeOf(err error) int {
	var e *api.APIError
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// The whole exchange as virtctl has it: a token for one DataVolume, then
// the image over HTTPS; the disk holds exactly the bytes sent, and the
// token is CDI's shape.
func TestUpload_tokenThenImageOverHTTPS(t *testing.T) {
	u := newUploads("default/disk", "default/other")
	var received atomic.Int64
	w := newWorld(t, withUploads(u), func(o *api.Options) { o.Uploaded = func(n int64) { received.Add(n) } })
	c := w.remote()
	ctx := context.Background()
	tok, err := c.UploadToken(ctx, "default", "disk")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWS compact serialization", tok)
	}
	var header struct{ Alg, Typ string }
	var claims struct {
		Iss           string
		Iat, Nbf, Exp int64
		Operation     string
		Name          string
		Namespace     string
		Resource      map[string]string
	}
	for i, v := range []any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	if header.Alg != "PS256" {
		t.Errorf("token alg %q, want PS256", header.Alg)
	}
	if claims.Operation != "Upload" || claims.Name != "disk" || claims.Namespace != "default" ||
		claims.Resource["resource"] != "persistentvolumeclaims" || claims.Resource["version"] != "v1" {
		t.Errorf("token claims: %+v", claims)
	}
	if claims.Exp-claims.Iat != 300 || claims.Nbf != claims.Iat || claims.Iss == "" {
		t.Errorf("token times: iat %d nbf %d exp %d iss %q, want 5 minutes", claims.Iat, claims.Nbf, claims.Exp, claims.Iss)
	}

	img := randomBytes(t, 3<<20)
	if err := c.Upload(ctx, "", tok, bytes.NewReader(img), int64(len(img)), false); err != nil {
		t.Fatal(err)
	}
	got := u.get("default/disk")
	if !bytes.Equal(got.disk, img) || got.phase != "Succeeded" || got.async[0] {
		t.Fatalf("disk has %d bytes (want %d identical), phase %s, async %v", len(got.disk), len(img), got.phase, got.async)
	}
	if got := received.Load(); got != int64(len(img)) {
		t.Errorf("the upload counted %d bytes, want %d", got, len(img))
	}
	if other := u.get("default/other"); other.disk != nil {
		t.Fatal("the token of disk wrote into other")
	}
	// Done: the same token, and a new one, are refused with 409.
	err = c.Upload(ctx, "", tok, bytes.NewReader(img), int64(len(img)), true)
	if codeOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "already finished") {
		t.Fatalf("second upload: %v", err)
	}
	// Async to another DataVolume, size unknown (chunked).
	tok2, err := c.UploadToken(ctx, "default", "other")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Upload(ctx, "", tok2, io.MultiReader(bytes.NewReader(img[:1000])), -1, true); err != nil {
		t.Fatal(err)
	}
	if got := u.get("default/other"); !bytes.Equal(got.disk, img[:1000]) || !got.async[0] {
		t.Fatalf("async upload: %d bytes, async %v", len(got.disk), got.async)
	}
}

func TestUpload_tokenRequestRefusals(t *testing.T) {
	u := newUploads("default/disk")
	u.dvs["default/later"] = &uploadDV{phase: "UploadScheduled"}
	w := newWorld(t, withUploads(u))
	c := w.remote()
	ctx := context.Background()
	if _, err := c.UploadToken(ctx, "default", "nope"); codeOf(err) != http.StatusNotFound || !strings.Contains(err.Error(), "default/nope") {
		t.Errorf("token for a DataVolume that takes no upload: %v", err)
	}
	// Not ready yet: the token is given, the upload says why it waits.
	tok, err := c.UploadToken(ctx, "default", "later")
	if err != nil {
		t.Fatalf("token for a DataVolume not ready yet: %v", err)
	}
	err = c.Upload(ctx, "", tok, strings.NewReader("data"), 4, false)
	if codeOf(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "not UploadReady") {
		t.Errorf("upload before UploadReady: %v", err)
	}
	path := "/apis/upload.cdi.kubevirt.io/v1beta1/namespaces/default/uploadtokenrequests"
	body := `{"apiVersion":"upload.cdi.kubevirt.io/v1beta1","kind":"UploadTokenRequest","metadata":{"generateName":"token-for-virtctl-"},"spec":{"pvcName":"disk"}}`
	if code, _, b := w.do(w.client, "POST", path, "", body); code != http.StatusUnauthorized {
		t.Errorf("token request without API credentials: %d %s", code, b)
	}
	good := w.token(time.Hour)
	code, _, b := w.do(w.client, "POST", path, good, body)
	if code != http.StatusCreated {
		t.Fatalf("virtctl's token request: %d %s", code, b)
	}
	var res struct {
		Kind     string
		Metadata struct{ Name, Namespace string }
		Status   struct{ Token string }
	}
	if err := json.Unmarshal([]byte(b), &res); err != nil || res.Kind != "UploadTokenRequest" ||
		!strings.HasPrefix(res.Metadata.Name, "token-for-virtctl-") || res.Metadata.Namespace != "default" || res.Status.Token == "" {
		t.Errorf("token answer %s (%v)", b, err)
	}
	if code, _, b := w.do(w.client, "POST", path, good, `{"spec":{}}`); code != http.StatusBadRequest || !strings.Contains(b, "spec.pvcName") {
		t.Errorf("token request without pvcName: %d %s", code, b)
	}
	if code, _, b := w.do(w.client, "GET", path, good, ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET of the token path: %d %s", code, b)
	}

	// An agent without uploads says so.
	w2 := newWorld(t)
	if _, err := w2.remote().UploadToken(ctx, "default", "disk"); codeOf(err) != http.StatusNotImplemented || !strings.Contains(err.Error(), "no uploads") {
		t.Errorf("token from an agent without uploads: %v", err)
	}
	if code, _, b := w2.do(w2.client, "POST", "/v1beta1/upload", "", "x"); code != http.StatusNotImplemented {
		t.Errorf("upload to an agent without uploads: %d %s", code, b)
	}
}

// CDI's codes for the upload's own authentication: a missing or
// malformed header is 400, a token the agent did not sign (or that is
// forged from one it did) 401, and HEAD with a good token is 200.
func TestUpload_authenticationCodes(t *testing.T) {
	u := newUploads("default/disk")
	w := newWorld(t, withUploads(u))
	other := newWorld(t, withUploads(newUploads("default/disk")))
	ctx := context.Background()
	tok, err := w.remote().UploadToken(ctx, "default", "disk")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.remote().UploadToken(ctx, "default", "disk")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"operation":"Upload","name":"x","namespace":"default","resource":{"group":"","version":"v1","resource":"persistentvolumeclaims"},"exp":9999999999}`)) + "." + parts[2]
	apiToken := w.token(time.Hour)
	for _, c := range []struct {
		header string
		code   int
	}{
		{"", http.StatusBadRequest},
		{"Basic dXNlcjpwdw==", http.StatusBadRequest},
		{"Bearer a b", http.StatusBadRequest},
		{"Bearer " + foreign, http.StatusUnauthorized},
		{"Bearer " + forged, http.StatusUnauthorized},
		{"Bearer " + apiToken, http.StatusUnauthorized}, // an API token is no upload token
	} {
		req, _ := http.NewRequest("POST", w.url+"/v1beta1/upload", strings.NewReader("data"))
		if c.header != "" {
			req.Header.Set("Authorization", c.header)
		}
		resp, err := w.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("Authorization %.20q: %d %s, want %d", c.header, resp.StatusCode, b, c.code)
		}
		jsonError(t, string(b))
	}
	if got := u.get("default/disk"); got.disk != nil || len(got.failures) != 0 {
		t.Fatalf("a refused request reached the DataVolume: %+v", got)
	}
	req, _ := http.NewRequest("HEAD", w.url+"/v1beta1/upload-async", nil)
	req.Header.Set("Authorization", "bearer "+tok) // CDI's match is case-insensitive
	resp, err := w.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD of upload-async: %d", resp.StatusCode)
	}
	if code, h, _ := w.do(w.client, "GET", "/v1beta1/upload", tok, ""); code != http.StatusMethodNotAllowed || h.Get("Allow") == "" {
		t.Errorf("GET of the upload path: %d", code)
	}
}

// One upload at a time: a second while the first streams is 503, and the
// rest of the API keeps answering while it streams (an upload does not
// hold the in-flight bound); bad data is 400 and leaves no disk.
func TestUpload_busyBadDataAndTheAPIStaysResponsive(t *testing.T) {
	u := newUploads("default/disk", "default/bad")
	u.gate = make(chan struct{})
	w := newWorld(t, withUploads(u))
	c := w.remote()
	ctx := context.Background()
	tok, err := c.UploadToken(ctx, "default", "disk")
	if err != nil {
		t.Fatal(err)
	}
	img := randomBytes(t, 1<<20)
	first := make(chan error, 1)
	go func() { first <- c.Upload(ctx, "", tok, bytes.NewReader(img), int64(len(img)), false) }()
	deadline := time.Now().Add(10 * time.Second)
	for !u.get("default/disk").busy {
		if time.Now().After(deadline) {
			t.Fatal("the first upload never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	err = c.Upload(ctx, "", tok, strings.NewReader("more"), 4, false)
	if codeOf(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "another upload") {
		t.Errorf("upload beside a running one: %v", err)
	}
	for range 3 {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.Status(sctx)
		cancel()
		if err != nil {
			t.Fatalf("status while an upload streams: %v", err)
		}
	}
	close(u.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(u.get("default/disk").disk, img) {
		t.Fatal("the first upload's disk differs")
	}

	tok, err = c.UploadToken(ctx, "default", "bad")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Upload(ctx, "", tok, strings.NewReader("BAD image"), 9, false)
	if codeOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "no known format") {
		t.Fatalf("bad data: %v", err)
	}
	if got := u.get("default/bad"); got.disk != nil || got.phase != "UploadReady" {
		t.Fatalf("bad data left %+v", got)
	}
}

// The browser's form: only the part named file is the image; a form
// without it is 400.
func TestUpload_formTakesThePartNamedFile(t *testing.T) {
	u := newUploads("default/disk", "default/empty")
	w := newWorld(t, withUploads(u))
	c := w.remote()
	img := randomBytes(t, 200<<10)
	post := func(name string, withFile bool) (int, string) {
		tok, err := c.UploadToken(context.Background(), "default", name)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		mw.WriteField("note", "not the image")
		if withFile {
			fw, _ := mw.CreateFormFile("file", "disk.img")
			fw.Write(img)
		}
		mw.WriteField("after", "ignored")
		mw.Close()
		req, _ := http.NewRequest("POST", w.url+"/v1beta1/upload-form-async", &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := w.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, b := post("disk", true); code != http.StatusOK {
		t.Fatalf("form upload: %d %s", code, b)
	}
	if got := u.get("default/disk"); !bytes.Equal(got.disk, img) || !got.async[0] {
		t.Fatalf("form upload wrote %d bytes (want %d), async %v", len(got.disk), len(img), got.async)
	}
	if code, b := post("empty", false); code != http.StatusBadRequest || !strings.Contains(b, `no part named`) {
		t.Fatalf("form without file: %d %s", code, b)
	}
}

// On the host the socket is the credential: a token and an upload need
// no API token.
func TestUpload_overTheSocket(t *testing.T) {
	u := newUploads("ns1/disk")
	w := newWorld(t, withUploads(u))
	ctx := context.Background()
	c, err := api.Local(ctx, w.socket)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.UploadToken(ctx, "ns1", "disk")
	if err != nil {
		t.Fatal(err)
	}
	img := randomBytes(t, 100<<10)
	if err := c.Upload(ctx, "", tok, bytes.NewReader(img), int64(len(img)), true); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(u.get("ns1/disk").disk, img) {
		t.Fatal("socket upload: disk differs")
	}
	if err := c.Upload(ctx, "https://elsewhere:9443", tok, bytes.NewReader(img), int64(len(img)), true); err == nil {
		t.Fatal("a socket client sent an upload elsewhere")
	}
}

// A connection dropped halfway: the agent's side sees the stream end
// early, nothing is written, and a retry with the same token succeeds.
func TestUpload_droppedConnectionFailsAndRetrySucceeds(t *testing.T) {
	u := newUploads("default/disk")
	w := newWorld(t, withUploads(u))
	c := w.remote()
	tok, err := c.UploadToken(context.Background(), "default", "disk")
	if err != nil {
		t.Fatal(err)
	}
	img := randomBytes(t, 512<<10)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(w.url, "https://"), &tls.Config{RootCAs: w.certs.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1beta1/upload HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", tok, len(img))
	conn.Write(img[:len(img)/2])
	conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for len(u.get("default/disk").failures) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the dropped upload never failed on the agent's side")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := u.get("default/disk"); got.disk != nil || got.phase != "UploadReady" {
		t.Fatalf("a dropped upload left %+v", got)
	}
	if err := c.Upload(context.Background(), "", tok, bytes.NewReader(img), int64(len(img)), false); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !bytes.Equal(u.get("default/disk").disk, img) {
		t.Fatal("retry: disk differs")
	}
}

// An upload that takes longer than the server's read timeout is not cut:
// the route lifts the deadlines the server set for small requests.
func TestUpload_outlivesTheServersReadTimeout(t *testing.T) {
	u := newUploads("default/disk")
	srv := api.New(api.Options{Node: "n1", Agent: &node{}, Uploads: u})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.LocalHandler(), ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	// The token from the same handler behind a server without deadlines:
	// minting the first one (its signing key) may take longer than 300 ms
	// on a loaded machine. The upload then trickles over 1.2 s.
	plain := httptest.NewServer(srv.LocalHandler())
	t.Cleanup(plain.Close)
	resp, err := http.Post(plain.URL+"/apis/upload.cdi.kubevirt.io/v1beta1/namespaces/default/uploadtokenrequests",
		"application/json", strings.NewReader(`{"spec":{"pvcName":"disk"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var tr struct{ Status struct{ Token string } }
	json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if tr.Status.Token == "" {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
	pr, pw := io.Pipe()
	go func() {
		for i := range 6 {
			pw.Write([]byte(fmt.Sprintf("chunk %d;", i)))
			time.Sleep(200 * time.Millisecond)
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", "http://"+l.Addr().String()+"/v1beta1/upload", pr)
	req.Header.Set("Authorization", "Bearer "+tr.Status.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("a slow upload was cut: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("slow upload: %d %s", resp.StatusCode, b)
	}
	if got := string(u.get("default/disk").disk); got != "chunk 0;chunk 1;chunk 2;chunk 3;chunk 4;chunk 5;" {
		t.Fatalf("slow upload wrote %q", got)
	}
}
