// Package api is the running agent's HTTP API: health and readiness, the
// node's status, plan, drift report, description and events as JSON under
// /api/v1/, the imperative commands virtctl has (start, stop, restart,
// pause, unpause, addvolume, removevolume), reconcile now, suspend and
// resume, Prometheus metrics, the git webhook and the web page. Over TCP
// it is HTTPS and every route but the health checks and the webhook (which
// signs its calls) needs a bearer token or a client certificate of the
// agent's CA; over the unix socket, which only root may open, the file's
// permissions are the authentication, as with Incus's and the kubelet's
// local sockets. Disk images are uploaded with CDI's upload protocol at
// CDI's paths: a token request under /apis/upload.cdi.kubevirt.io
// authenticated like the API, then the image with that short-lived token.
// Client is the CLI's side.
package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/nodevirt/nodevirt/internal/nodedesc"
	"github.com/nodevirt/nodevirt/internal/report"
	"github.com/nodevirt/nodevirt/internal/status"
)

// Prefix is the versioned API's path.
const Prefix = "/api/v1"

// statusMaxAge is how stale a status pollers may get: with reconciles back
// to back, encoding a 1,000-VM status for each (13 ms) would cost a
// reconcile a fifth of its time.
const statusMaxAge = time.Second

// DefaultMaxRequestsPerSecond keeps the API's own work, TLS included,
// to a small share of a small node's CPUs (see docs/performance.md).
const DefaultMaxRequestsPerSecond = 500

// CookieName is the web page's session cookie: it carries the token the
// page was opened with (/?token=…).
const CookieName = "nodevirt_token"

// maxBody caps a request body: the API takes small JSON documents only.
const maxBody = 64 << 10

// Agent is what the API serves and drives.
type Agent interface {
	Status() status.Node
	// StatusVersion changes whenever Status does.
	StatusVersion() uint64
	Events() []status.Event
	// Plan plans the node now without changing anything.
	Plan(ctx context.Context) (report.Plan, error)
	Describe(ctx context.Context) (nodedesc.Description, error)
	VMAction(ctx context.Context, action, namespace, name string) (status.ActionResult, error)
	Reconcile(ctx context.Context) (status.ActionResult, error)
	// Suspend suspends (on) or resumes reconciliation of object, or of the
	// whole node when object is "".
	Suspend(ctx context.Context, object string, on bool) (status.ActionResult, error)
}

// Options configure a Server.
type Options struct {
	Node  string
	Agent Agent
	// Token verifies a bearer token and returns who it names; nil refuses
	// every token.
	Token func(secret string) (name string, expires time.Time, err error)
	// Certificates reports the serving certificates (certs status).
	Certificates func() any
	// Version is what the agent was built from, served at /api/v1/version.
	Version any
	// MaxRequestsPerSecond is how many requests the API serves a second,
	// all clients together; more wait their turn. 0 is
	// DefaultMaxRequestsPerSecond.
	MaxRequestsPerSecond int
	// Metrics, Webhook and Page are mounted at /metrics, /hooks/git and /
	// when set.
	Metrics, Webhook, Page http.Handler
	// Uploads takes images uploaded with CDI's protocol; nil answers the
	// upload paths with 501.
	Uploads Uploads
	// Uploaded, when set, is told the bytes each upload received.
	Uploaded func(n int64)
	// Disks, when set, serves local disks to peer nodes under
	// DisksPrefix; it authenticates peers by their certificates itself.
	Disks http.Handler
	// ClientCAs, when set, are the only CAs whose client certificates are
	// credentials for the API: the handshake also accepts the peers'
	// CAs, whose certificates reach Disks only.
	ClientCAs func() *x509.CertPool
	Log       *slog.Logger
}

// Server routes the API.
type Server struct {
	o   Options
	mux *http.ServeMux
	now func() time.Time

	// inflight bounds the requests served at once and rate the requests
	// served per second: a crowd of pollers cannot starve the reconcile
	// loop (the kube-apiserver's max-requests-inflight, queued here
	// instead of refused, and a client's QPS, on the server's side).
	inflight chan struct{}
	rate     *rate.Limiter

	// status is the last status encoded: encoding a node of 1,000 VMs
	// costs milliseconds, and pollers ask far more often than it changes.
	statusMu  sync.Mutex
	statusEnc atomic.Pointer[encoded]

	uploadKey uploadSigner
}

// encoded is one version of a report, plain and gzipped, with its ETag.
type encoded struct {
	version   uint64
	at        time.Time // when it was encoded
	plain, gz []byte
	etag      string
}

// New builds the routes.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxRequestsPerSecond <= 0 {
		o.MaxRequestsPerSecond = DefaultMaxRequestsPerSecond
	}
	s := &Server{o: o, mux: http.NewServeMux(), now: time.Now, inflight: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		rate: rate.NewLimiter(rate.Limit(o.MaxRequestsPerSecond), o.MaxRequestsPerSecond/5+1)}
	s.routes()
	return s
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
	// Status is the HTTP status code, repeated for readers of the body.
	Status int `json:"status"`
}

func (s *Server) routes() {
	m := s.mux
	m.Handle("/healthz", only(s.healthz, http.MethodGet))
	m.Handle("/readyz", only(s.readyz, http.MethodGet))
	if s.o.Metrics != nil {
		m.Handle("/metrics", s.o.Metrics)
	}
	if s.o.Webhook != nil {
		m.Handle("/hooks/git", s.o.Webhook)
	}
	if s.o.Page != nil {
		m.Handle("/{$}", s.o.Page)
	}
	m.Handle(Prefix+"/status", only(s.status, http.MethodGet))
	m.Handle(Prefix+"/plan", only(s.plan, http.MethodGet))
	m.Handle(Prefix+"/drift", only(s.drift, http.MethodGet))
	m.Handle(Prefix+"/node", only(s.node, http.MethodGet))
	m.Handle(Prefix+"/events", only(s.events, http.MethodGet))
	m.Handle(Prefix+"/certificates", only(s.certificates, http.MethodGet))
	m.Handle(Prefix+"/version", only(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.o.Version) }, http.MethodGet))
	m.Handle(Prefix+"/namespaces/{namespace}/virtualmachines/{name}/{action}", only(s.vmAction, http.MethodPut, http.MethodPost))
	s.volumeRoutes()
	m.Handle(Prefix+"/reconcile", only(s.reconcile, http.MethodPost))
	m.Handle(Prefix+"/suspend", only(s.suspend(true), http.MethodPost))
	m.Handle(Prefix+"/resume", only(s.suspend(false), http.MethodPost))
	s.uploadRoutes()
	if s.o.Disks != nil {
		m.Handle(DisksPrefix+"/", s.o.Disks)
	}
	m.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such path: %s", r.URL.Path))
	}))
}

// Handler serves the API over TCP: every route but the open ones needs a
// token or a client certificate.
func (s *Server) Handler() http.Handler {
	return s.limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if open(r.URL.Path) {
			s.mux.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "/" && r.URL.Query().Has("token") {
			s.login(w, r)
			return
		}
		who, err := s.authenticate(r)
		if err != nil {
			s.o.Log.Warn("API request refused", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "reason", err.Error())
			w.Header().Set("WWW-Authenticate", `Bearer realm="nodevirt"`)
			writeError(w, http.StatusUnauthorized, "unauthorized: "+err.Error())
			return
		}
		s.o.Log.Debug("API request", "who", who, "method", r.Method, "path", r.URL.Path)
		s.mux.ServeHTTP(w, r)
	}))
}

// LocalHandler serves the API over the unix socket: the socket's file
// permissions (root only) authenticate the caller.
func (s *Server) LocalHandler() http.Handler { return s.limit(s.mux) }

// limit serves h within the in-flight bound; health checks pass at once,
// so a busy API never fails its probes.
func (s *Server) limit(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// An upload streams for as long as the image takes: it must not
		// hold the in-flight bound the API's short requests share.
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && !isUploadPath(r.URL.Path) && !isDiskPath(r.URL.Path) {
			if err := s.rate.Wait(r.Context()); err != nil {
				return
			}
			select {
			case s.inflight <- struct{}{}:
				defer func() { <-s.inflight }()
			case <-r.Context().Done():
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// open: the health checks need no credentials (probes, load balancers),
// the webhook authenticates each call by its signature and an upload by
// its upload token.
func open(path string) bool {
	if isUploadPath(path) || isDiskPath(path) {
		return true
	}
	switch path {
	case "/healthz", "/readyz", "/hooks/git":
		return true
	}
	return false
}

var (
	errNoCredentials = errors.New("no credentials: send Authorization: Bearer <token> (nodevirt token create) or a client certificate of the agent's CA")
	errBadCredential = errors.New("the token is not valid")
)

// authenticate says who sent r: a verified client certificate, a bearer
// token, or the page's cookie. The reason of a refusal names no secret.
func (s *Server) authenticate(r *http.Request) (string, error) {
	// The TLS handshake verified a client certificate given against the
	// agent's current bundle (client-auth usage included).
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		leaf := r.TLS.PeerCertificates[0]
		if s.o.ClientCAs != nil {
			inter := x509.NewCertPool()
			for _, c := range r.TLS.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: s.o.ClientCAs(), Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				return "", fmt.Errorf("client certificate %q is a peer node's, good for disk moves only", leaf.Subject.CommonName)
			}
		}
		return "cert:" + leaf.Subject.CommonName, nil
	}
	secret := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", errors.New("the Authorization header is not a bearer token")
		}
		secret = strings.TrimSpace(tok)
	} else if c, err := r.Cookie(CookieName); err == nil {
		secret = c.Value
	}
	if secret == "" {
		return "", errNoCredentials
	}
	name, _, err := s.verify(secret)
	if err != nil {
		return "", err
	}
	return "token:" + name, nil
}

// verify checks a token; the error says expired or revoked, never the
// token itself.
func (s *Server) verify(secret string) (string, time.Time, error) {
	if s.o.Token == nil {
		return "", time.Time{}, errBadCredential
	}
	return s.o.Token(secret)
}

// login is the page opened with /?token=…: the token becomes an HttpOnly,
// Secure, same-site cookie and the browser is sent to / without it, so the
// token leaves the address bar and the history.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	name, exp, err := s.verify(r.URL.Query().Get("token"))
	if err != nil {
		s.o.Log.Warn("web page login refused", "remote", r.RemoteAddr, "reason", err.Error())
		writeError(w, http.StatusUnauthorized, "unauthorized: "+err.Error())
		return
	}
	s.o.Log.Info("web page login", "who", "token:"+name, "remote", r.RemoteAddr)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: r.URL.Query().Get("token"), Path: "/", Expires: exp,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// only lets the methods through and answers 405 with Allow to others (GET
// includes HEAD).
func only(h http.HandlerFunc, methods ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, m := range methods {
			if r.Method == m || (m == http.MethodGet && r.Method == http.MethodHead) {
				h(w, r)
				return
			}
		}
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(methods, ", ")))
	})
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz: ready once the agent reconciled once, as its sd_notify READY.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.o.Agent.Status().Reconcile.Count == 0 {
		writeError(w, http.StatusServiceUnavailable, "the first reconcile has not ended yet")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// status serves the node status, encoded once per version: with an ETag
// (If-None-Match gets 304) and gzipped for clients that accept it.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	// Pollers get a status at most statusMaxAge old; a client that says
	// no-cache (the CLI, after an action) gets the current one.
	e, err := s.encodedStatus(strings.Contains(r.Header.Get("Cache-Control"), "no-cache"))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	h := w.Header()
	h.Set("ETag", e.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && (match == e.etag || match == "*") {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	body := e.plain
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = e.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

func (s *Server) encodedStatus(fresh bool) (*encoded, error) {
	v := s.o.Agent.StatusVersion()
	e := s.statusEnc.Load()
	if e != nil && (e.version == v || (!fresh && s.now().Sub(e.at) < statusMaxAge)) {
		return e, nil
	}
	// One request encodes; the others wait for it instead of encoding the
	// same version again.
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	if e = s.statusEnc.Load(); e != nil && e.version == v {
		return e, nil
	}
	plain, err := report.Marshal(report.KindNodeStatus, s.o.Node, s.now(), s.o.Agent.Status())
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(plain)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(plain)
	e = &encoded{version: v, at: s.now(), plain: plain, gz: buf.Bytes(), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	s.statusEnc.Store(e)
	return e, nil
}

// acceptsGzip: the request's Accept-Encoding names gzip without q=0.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			return strings.ReplaceAll(params, " ", "") != "q=0"
		}
	}
	return false
}

func (s *Server) plan(w http.ResponseWriter, r *http.Request) {
	p, err := s.o.Agent.Plan(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.writeReport(w, report.KindPlan, p)
}

func (s *Server) drift(w http.ResponseWriter, r *http.Request) {
	p, err := s.o.Agent.Plan(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.writeReport(w, report.KindDriftReport, report.DriftOf(p))
}

func (s *Server) node(w http.ResponseWriter, r *http.Request) {
	d, err := s.o.Agent.Describe(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.writeReport(w, report.KindNodeDescription, d)
}

// EventList is /api/v1/events.
type EventList struct {
	Events []status.Event `json:"events"`
}

func (s *Server) events(w http.ResponseWriter, _ *http.Request) {
	s.writeReport(w, report.KindEventList, EventList{Events: s.o.Agent.Events()})
}

func (s *Server) certificates(w http.ResponseWriter, _ *http.Request) {
	if s.o.Certificates == nil {
		writeError(w, http.StatusNotFound, "this agent serves no certificates")
		return
	}
	writeJSON(w, http.StatusOK, s.o.Certificates())
}

// VMActions are the imperative commands on a VirtualMachine.
var VMActions = []string{"start", "stop", "restart", "pause", "unpause"}

func (s *Server) vmAction(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	ok := false
	for _, a := range VMActions {
		ok = ok || a == action
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown action %q: want one of %s", action, strings.Join(VMActions, ", ")))
		return
	}
	if _, err := readBody[struct{}](w, r); err != nil {
		return
	}
	res, err := s.o.Agent.VMAction(r.Context(), action, r.PathValue("namespace"), r.PathValue("name"))
	s.answer(w, r, res, err)
}

func (s *Server) reconcile(w http.ResponseWriter, r *http.Request) {
	if _, err := readBody[struct{}](w, r); err != nil {
		return
	}
	res, err := s.o.Agent.Reconcile(r.Context())
	s.answer(w, r, res, err)
}

// SuspendRequest is the body of /api/v1/suspend and /api/v1/resume.
type SuspendRequest struct {
	// Object is KIND/NAME or KIND/NAMESPACE/NAME; empty: the whole node.
	Object string `json:"object,omitempty"`
}

func (s *Server) suspend(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := readBody[SuspendRequest](w, r)
		if err != nil {
			return
		}
		res, err := s.o.Agent.Suspend(r.Context(), req.Object, on)
		s.answer(w, r, res, err)
	}
}

// answer writes an action's result, or its error: 404 for what does not
// exist, 409 for what the object's state refuses, 400 for bad input.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, res status.ActionResult, err error) {
	if err != nil {
		writeError(w, codeOf(err), err.Error())
		return
	}
	s.o.Log.Info("API action", "path", r.URL.Path, "changed", res.Changed, "object", res.Object, "message", res.Message)
	writeJSON(w, http.StatusOK, res)
}

// codeOf is the status code of an agent's error, by its mark.
func codeOf(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Kinds of error an Agent returns (NotFound, Conflict, Invalid mark
// them) so the API answers with the right status code.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid request")
	// ErrUnavailable: the object cannot take the request yet, or is
	// busy with another one (503); trying again later may succeed.
	ErrUnavailable = errors.New("unavailable")
)

// NotFound marks err as about something that does not exist (404).
func NotFound(err error) error { return coded{err, ErrNotFound} }

// Conflict marks err as refused by the object's state (409).
func Conflict(err error) error { return coded{err, ErrConflict} }

// Invalid marks err as a bad request (400).
func Invalid(err error) error { return coded{err, ErrInvalid} }

// Unavailable marks err as refused for now (503).
func Unavailable(err error) error { return coded{err, ErrUnavailable} }

// coded is an error with its kind; its text is the error's alone.
type coded struct{ err, kind error }

func (c coded) Error() string   { return c.err.Error() }
func (c coded) Unwrap() []error { return []error{c.err, c.kind} }

// readBody decodes an optional JSON body strictly; on error it has
// answered 400 (or 413) itself.
func readBody[T any](w http.ResponseWriter, r *http.Request) (T, error) {
	var v T
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", maxBody))
		return v, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return v, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		writeError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
		return v, err
	}
	if dec.More() {
		err := errors.New("malformed JSON body: more than one document")
		writeError(w, http.StatusBadRequest, err.Error())
		return v, err
	}
	return v, nil
}

func (s *Server) writeReport(w http.ResponseWriter, kind string, v any) {
	b, err := report.Marshal(kind, s.o.Node, s.now(), v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, Error{Error: msg, Status: code})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
