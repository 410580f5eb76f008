package api_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/nodedesc"
	"github.com/nodevirt/nodevirt/internal/pki"
	"github.com/nodevirt/nodevirt/internal/report"
	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/internal/token"
	"github.com/nodevirt/nodevirt/internal/webhook"
)

// node is the API's consumer side in a test: it records what the server
// asked of it and answers with what the test set.
type node struct {
	mu         sync.Mutex
	reconciled int
	calls      []string
	actionErr  error
	st         status.Node
	version    uint64
}

func (n *node) Status() status.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.st
}
func (n *node) StatusVersion() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.version
}
func (n *node) Events() []status.Event { return []status.Event{{Type: status.Normal, Reason: "Test"}} }
func (n *node) Plan(context.Context) (report.Plan, error) {
	return report.Plan{}, nil
}
func (n *node) Describe(context.Context) (nodedesc.Description, error) {
	return nodedesc.Description{Name: "n1"}, nil
}
func (n *node) VMAction(_ context.Context, action, ns, name string) (status.ActionResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, action+" "+ns+"/"+name)
	return status.ActionResult{Changed: true, Action: action, Object: "VirtualMachine " + ns + "/" + name}, n.actionErr
}
func (n *node) Reconcile(context.Context) (status.ActionResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.reconciled++
	return status.ActionResult{Changed: true, Action: "reconcile"}, nil
}
func (n *node) Suspend(_ context.Context, object string, on bool) (status.ActionResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, fmt.Sprintf("suspend %q %v", object, on))
	return status.ActionResult{Changed: true, Action: "suspend", Object: object}, nil
}

func (n *node) called() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.calls...)
}

// world is a served API: a real token store and a real certificate
// manager in a state directory, HTTPS on loopback and the unix socket.
type world struct {
	t      *testing.T
	state  string
	node   *node
	tokens *token.Store
	certs  *pki.Manager
	url    string
	socket string
	logs   *syncBuffer
	client *http.Client // trusts the agent's CA; no credentials
	now    atomic.Pointer[time.Time]
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const hookSecret = "s3cret-hook"

func newWorld(t *testing.T, with ...func(*api.Options)) *world {
	t.Helper()
	w := &world{t: t, state: t.TempDir(), node: &node{}, logs: &syncBuffer{}}
	start := time.Now()
	w.now.Store(&start)
	var err error
	if w.tokens, err = token.Open(w.state, token.WithClock(func() time.Time { return *w.now.Load() })); err != nil {
		t.Fatal(err)
	}
	if w.certs, err = pki.New(pki.Options{Dir: filepath.Join(w.state, "pki"), Lifetimes: pki.DefaultLifetimes(),
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := api.Options{
		Node: "n1", Agent: w.node, Log: log,
		Token: func(secret string) (string, time.Time, error) {
			info, err := w.tokens.Verify(secret)
			return info.Name, info.Expires, err
		},
		Certificates: func() any { return w.certs.Status() },
		Metrics: http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			io.WriteString(rw, "nodevirt_up 1\n")
		}),
		Page: http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			io.WriteString(rw, "<html>page</html>")
		}),
		Webhook: webhook.New([]byte(hookSecret), func(webhook.Event) { w.node.Reconcile(context.Background()) }, log),
	}
	for _, f := range with {
		f(&opts)
	}
	srv := api.New(opts)
	tcp, err := api.ListenTLS("127.0.0.1:0", w.certs.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	w.socket = filepath.Join(w.state, api.SocketName)
	sock, err := api.ListenSocket(w.socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); api.Serve(ctx, tcp, srv.Handler(), log) }()
	go func() { defer wg.Done(); api.Serve(ctx, sock, srv.LocalHandler(), log) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	w.url = "https://" + tcp.Addr().String()
	w.client = w.httpsClient(nil)
	return w
}

func (w *world) httpsClient(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: w.certs.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (w *world) token(ttl time.Duration) string {
	w.t.Helper()
	secret, _, err := w.tokens.Create("ci", ttl)
	if err != nil {
		w.t.Fatal(err)
	}
	return secret
}

// do sends a request with the bearer token tok ("" for none) and returns
// the status code and the body.
func (w *world) do(c *http.Client, method, path, tok, body string) (int, http.Header, string) {
	w.t.Helper()
	req, err := http.NewRequest(method, w.url+path, strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// jsonError decodes an error answer, failing the test when it is not one.
func jsonError(t *testing.T, body string) api.Error {
	t.Helper()
	var e api.Error
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
		t.Fatalf("not a JSON error: %q (%v)", body, err)
	}
	return e
}

func TestAPI_healthIsOpenAndReadinessFollowsTheFirstReconcile(t *testing.T) {
	w := newWorld(t)
	if code, _, body := w.do(w.client, "GET", "/healthz", "", ""); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("healthz: %d %s", code, body)
	}
	code, _, body := w.do(w.client, "GET", "/readyz", "", "")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("readyz before the first reconcile: %d %s", code, body)
	}
	jsonError(t, body)
	w.node.mu.Lock()
	w.node.st.Reconcile.Count = 1
	w.node.version++
	w.node.mu.Unlock()
	if code, _, body := w.do(w.client, "GET", "/readyz", "", ""); code != 200 {
		t.Fatalf("readyz after it: %d %s", code, body)
	}
}

func TestAPI_everythingElseNeedsCredentials(t *testing.T) {
	w := newWorld(t)
	good := w.token(time.Hour)
	for _, path := range []string{"/api/v1/status", "/api/v1/drift", "/api/v1/plan", "/api/v1/node", "/api/v1/events", "/api/v1/certificates", "/metrics", "/"} {
		code, h, body := w.do(w.client, "GET", path, "", "")
		if code != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without a token: %d %v", path, code, h)
		}
		jsonError(t, body)
		if code, _, body := w.do(w.client, "GET", path, good, ""); code != 200 {
			t.Errorf("%s with a token: %d %s", path, code, body)
		}
	}
	code, _, body := w.do(w.client, "GET", "/api/v1/status", "", "")
	if code != 401 || !strings.Contains(body, "token create") {
		t.Errorf("the refusal says how to get in: %d %s", code, body)
	}
	// A token for another agent (another key) and a garbled one.
	other, err := token.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	foreign, _, _ := other.Create("ci", time.Hour)
	for _, bad := range []string{foreign, good[:len(good)-2] + "xx", "nvt_garbage"} {
		if code, _, _ := w.do(w.client, "GET", "/api/v1/status", bad, ""); code != 401 {
			t.Errorf("token %q: %d, want 401", bad, code)
		}
		if strings.Contains(w.logs.String(), bad) {
			t.Errorf("the log shows the refused token %q", bad)
		}
	}
	if !strings.Contains(w.logs.String(), "API request refused") {
		t.Errorf("refusals are not logged:\n%s", w.logs)
	}
	if strings.Contains(w.logs.String(), good) {
		t.Error("the log shows a token")
	}
}

func TestAPI_expiredAndRevokedTokensAreRefused(t *testing.T) {
	w := newWorld(t)
	short := w.token(time.Minute)
	long := w.token(time.Hour)
	if code, _, _ := w.do(w.client, "GET", "/api/v1/status", short, ""); code != 200 {
		t.Fatalf("fresh token: %d", code)
	}
	later := w.now.Load().Add(2 * time.Minute)
	w.now.Store(&later)
	code, _, body := w.do(w.client, "GET", "/api/v1/status", short, "")
	if code != 401 || !strings.Contains(body, "expired") {
		t.Fatalf("expired token: %d %s", code, body)
	}
	if code, _, _ := w.do(w.client, "GET", "/api/v1/status", long, ""); code != 200 {
		t.Fatalf("the other token still works: %d", code)
	}
	// Revoked by another process's store on the same files.
	other, err := token.Open(w.state)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Revoke("ci"); err != nil {
		t.Fatal(err)
	}
	code, _, body = w.do(w.client, "GET", "/api/v1/status", long, "")
	if code != 401 || !strings.Contains(body, "revoked") {
		t.Fatalf("revoked token: %d %s", code, body)
	}
}

func TestAPI_clientCertificateOfTheAgentsCA(t *testing.T) {
	w := newWorld(t)
	certPEM, keyPEM, err := pki.IssueClient(filepath.Join(w.state, "pki"), "ops", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, body := w.do(w.httpsClient(&pair), "GET", "/api/v1/status", "", ""); code != 200 {
		t.Fatalf("client certificate: %d %s", code, body)
	}
	// A certificate of another CA fails the handshake.
	dir := t.TempDir()
	if _, err := pki.New(pki.Options{Dir: dir, Lifetimes: pki.DefaultLifetimes()}); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err = pki.IssueClient(dir, "mallory", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if pair, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", w.url+"/api/v1/status", nil)
	if resp, err := w.httpsClient(&pair).Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("a foreign client certificate was accepted")
		}
	}
}

func TestAPI_badRequestsGetJSONErrorsAndChangeNothing(t *testing.T) {
	w := newWorld(t)
	tok := w.token(time.Hour)
	for _, tc := range []struct {
		method, path, body string
		code               int
	}{
		{"GET", "/api/v1/nope", "", 404},
		{"GET", "/api/v2/status", "", 404},
		{"DELETE", "/api/v1/status", "", 405},
		{"POST", "/api/v1/status", "", 405},
		{"GET", "/api/v1/reconcile", "", 405},
		{"POST", "/api/v1/suspend", "{not json", 400},
		{"POST", "/api/v1/suspend", `{"object": "vm/web", "extra": 1}`, 400},
		{"POST", "/api/v1/suspend", `{"object": 3}`, 400},
		{"POST", "/api/v1/suspend", `{"object": "a"}{"object": "b"}`, 400},
		{"PUT", "/api/v1/namespaces/default/virtualmachines/web/explode", "", 404},
		{"PUT", "/api/v1/namespaces/default/virtualmachines/web/start", "[1,2", 400},
		{"POST", "/api/v1/resume", `{"object": "` + strings.Repeat("x", 70<<10) + `"}`, 413},
	} {
		code, h, body := w.do(w.client, tc.method, tc.path, tok, tc.body)
		if code != tc.code {
			t.Errorf("%s %s %.40q: %d %s, want %d", tc.method, tc.path, tc.body, code, body, tc.code)
			continue
		}
		if e := jsonError(t, body); e.Status != code {
			t.Errorf("%s %s: body status %d, code %d", tc.method, tc.path, e.Status, code)
		}
		if ct := h.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, ct)
		}
		if code == 405 && h.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
	}
	if calls := w.node.called(); len(calls) != 0 {
		t.Errorf("bad requests reached the agent: %v", calls)
	}
}

func TestAPI_actions(t *testing.T) {
	w := newWorld(t)
	tok := w.token(time.Hour)
	code, _, body := w.do(w.client, "PUT", "/api/v1/namespaces/prod/virtualmachines/web/stop", tok, "")
	var res status.ActionResult
	if code != 200 || json.Unmarshal([]byte(body), &res) != nil || !res.Changed {
		t.Fatalf("stop: %d %s", code, body)
	}
	if code, _, body := w.do(w.client, "POST", "/api/v1/suspend", tok, `{"object": "vm/web"}`); code != 200 {
		t.Fatalf("suspend: %d %s", code, body)
	}
	if code, _, body := w.do(w.client, "POST", "/api/v1/resume", tok, ``); code != 200 {
		t.Fatalf("resume of the node: %d %s", code, body)
	}
	want := []string{"stop prod/web", `suspend "vm/web" true`, `suspend "" false`}
	if got := w.node.called(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("calls %q, want %q", got, want)
	}
	for err, code := range map[error]int{
		fmt.Errorf("vm x: %w", api.ErrNotFound):      404,
		fmt.Errorf("Halted VM: %w", api.ErrConflict): 409,
		fmt.Errorf("bad object: %w", api.ErrInvalid): 400,
		fmt.Errorf("busy: %w", api.ErrUnavailable):   503,
		errors.New("libvirt went away"):              500,
	} {
		w.node.mu.Lock()
		w.node.actionErr = err
		w.node.mu.Unlock()
		c, _, body := w.do(w.client, "POST", "/api/v1/namespaces/default/virtualmachines/x/restart", tok, "")
		if c != code || jsonError(t, body).Error != err.Error() {
			t.Errorf("%v: %d %s, want %d", err, c, body, code)
		}
	}
}

func TestAPI_reportsHaveTheEnvelope(t *testing.T) {
	w := newWorld(t)
	tok := w.token(time.Hour)
	for path, kind := range map[string]string{"/api/v1/status": "NodeStatus", "/api/v1/drift": "DriftReport",
		"/api/v1/plan": "Plan", "/api/v1/node": "NodeDescription", "/api/v1/events": "EventList"} {
		_, _, body := w.do(w.client, "GET", path, tok, "")
		var env struct {
			APIVersion, Kind string
			Metadata         report.Metadata
		}
		if err := json.Unmarshal([]byte(body), &env); err != nil || env.Kind != kind || env.APIVersion != report.APIVersion || env.Metadata.Node != "n1" {
			t.Errorf("%s: %+v (%v)", path, env, err)
		}
	}
}

func TestAPI_pageLoginSetsASecureCookieAndDropsTheToken(t *testing.T) {
	w := newWorld(t)
	tok := w.token(time.Hour)
	code, h, _ := w.do(w.client, "GET", "/?token="+tok, "", "")
	if code != http.StatusSeeOther || h.Get("Location") != "/" {
		t.Fatalf("login: %d %v", code, h)
	}
	resp := http.Response{Header: h}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == api.CookieName {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie %+v", cookie)
	}
	req, _ := http.NewRequest("GET", w.url+"/", nil)
	req.AddCookie(cookie)
	r2, err := w.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != 200 || !strings.Contains(string(b), "page") {
		t.Fatalf("page with the cookie: %d %s", r2.StatusCode, b)
	}
	if code, _, _ := w.do(w.client, "GET", "/?token=nvt_wrong", "", ""); code != 401 {
		t.Fatalf("login with a bad token: %d", code)
	}
}

func TestAPI_webhookNeedsItsSignatureNotAToken(t *testing.T) {
	w := newWorld(t)
	body := `{"ref":"refs/heads/main","after":"abc"}`
	send := func(sig string) int {
		req, _ := http.NewRequest("POST", w.url+"/hooks/git", strings.NewReader(body))
		req.Header.Set("X-Signature", sig)
		resp, err := w.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	mac := hmac.New(sha256.New, []byte(hookSecret))
	mac.Write([]byte(body))
	good := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if code := send("sha256=" + strings.Repeat("0", 64)); code != 401 {
		t.Fatalf("bad signature: %d", code)
	}
	if code := send(good); code != http.StatusAccepted {
		t.Fatalf("good signature: %d", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.node.mu.Lock()
		n := w.node.reconciled
		w.node.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook triggered %d reconciles, want 1", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAPI_unixSocketIsRootOnlyAndNeedsNoToken(t *testing.T) {
	w := newWorld(t)
	fi, err := os.Stat(w.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v", fi.Mode())
	}
	c, err := api.Local(context.Background(), w.socket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("status over the socket: %v", err)
	}
	if res, err := c.VMAction(context.Background(), "pause", "default", "web"); err != nil || !res.Changed {
		t.Fatalf("pause over the socket: %+v %v", res, err)
	}
	// A second agent cannot take a socket that answers.
	if _, err := api.ListenSocket(w.socket); err == nil || !strings.Contains(err.Error(), "another nodevirt") {
		t.Fatalf("second listener: %v", err)
	}
	// A socket file nobody answers on (an agent that died) is replaced.
	stale := filepath.Join(t.TempDir(), api.SocketName)
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, err := api.ListenSocket(stale)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	l2.Close()
	if _, err := api.Local(context.Background(), filepath.Join(t.TempDir(), "none.sock")); !errors.Is(err, api.ErrNoAgent) {
		t.Fatalf("no agent: %v", err)
	}
}

// Clients that trusted the bundle of before a CA rotation keep working
// through it under load, rotation after rotation: the new CA is
// cross-signed by the old one, and every handshake gets the current
// certificate. (A client refreshes its bundle once per rotation, as one
// must within the CA's renewBefore.)
func TestAPI_rotationUnderLoad(t *testing.T) {
	w := newWorld(t)
	tok := w.token(time.Hour)
	var trusted atomic.Pointer[x509.CertPool]
	trusted.Store(w.certs.Pool())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.certs.Run(ctx)
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// A new connection each time, so each sees the certificate
				// served at that moment.
				c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
					TLSClientConfig: &tls.Config{RootCAs: trusted.Load(), MinVersion: tls.VersionTLS12}}}
				req, _ := http.NewRequest("GET", w.url+"/api/v1/status", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := c.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	serials := map[string]bool{}
	for i := 0; i < 3; i++ {
		// The clients refresh their bundle, then a rotation comes (the
		// pause lets requests begun with the older bundle end first).
		trusted.Store(w.certs.Pool())
		time.Sleep(300 * time.Millisecond)
		before := w.certs.Status()
		w.certs.RotateNow(true)
		deadline := time.Now().Add(20 * time.Second)
		for w.certs.Status().CA.Serial == before.CA.Serial {
			if time.Now().After(deadline) {
				t.Fatal("the CA did not rotate")
			}
			time.Sleep(10 * time.Millisecond)
		}
		serials[w.certs.Status().Server.Serial] = true
		time.Sleep(300 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed across rotations: %v", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	if ok.Load() < 20 || len(serials) < 3 {
		t.Fatalf("%d requests, %d serving certificates: the test did not exercise rotation", ok.Load(), len(serials))
	}
}

// The status is encoded once per version: a poller with its ETag gets 304
// until it changes, a gzip client gets it gzipped.
func TestAPI_statusIsCachedPerVersionWithETag(t *testing.T) {
	w := newWorld(t)
	tok := w.token(time.Hour)
	get := func(h map[string]string) *http.Response {
		req, _ := http.NewRequest("GET", w.url+"/api/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := w.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	first := get(nil)
	etag := first.Header.Get("ETag")
	if first.StatusCode != 200 || etag == "" {
		t.Fatalf("first: %d etag %q", first.StatusCode, etag)
	}
	if r := get(map[string]string{"If-None-Match": etag}); r.StatusCode != http.StatusNotModified {
		t.Fatalf("unchanged: %d, want 304", r.StatusCode)
	}
	if r := get(map[string]string{"Accept-Encoding": "gzip"}); r.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip: %v", r.Header)
	}
	w.node.mu.Lock()
	w.node.st.Drifted = 7
	w.node.version++
	w.node.mu.Unlock()
	// A poller may get a status up to a second old; the CLI asks for the
	// current one.
	if r := get(map[string]string{"If-None-Match": etag}); r.StatusCode != http.StatusNotModified {
		t.Fatalf("changed, within a second, for a poller: %d, want 304", r.StatusCode)
	}
	r := get(map[string]string{"If-None-Match": etag, "Cache-Control": "no-cache"})
	if r.StatusCode != 200 || r.Header.Get("ETag") == etag {
		t.Fatalf("changed, asked with no-cache: %d etag %q", r.StatusCode, r.Header.Get("ETag"))
	}
	time.Sleep(1100 * time.Millisecond)
	w.node.mu.Lock()
	w.node.version++
	w.node.mu.Unlock()
	if r := get(map[string]string{"If-None-Match": r.Header.Get("ETag")}); r.StatusCode != 200 {
		// The status itself is the same, but its envelope's timestamp is new.
		t.Fatalf("changed, a second later, for a poller: %d, want 200", r.StatusCode)
	}
	c, err := api.Local(context.Background(), w.socket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(context.Background())
	if err != nil || st.Drifted != 7 {
		t.Fatalf("new status: %+v %v", st.Drifted, err)
	}
}
