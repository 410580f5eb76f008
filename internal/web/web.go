// Package web is the agent's status page: one server-rendered HTML page at
// "/" that shows the node's source, reconcile, VMs, storage, host
// configuration, capacity and recent events, and reloads itself. It needs no
// script and no external asset, so it works on an offline host and in any
// browser; every section and table has a stable element id for tests and
// users' scripts. Only while a DataVolume takes an upload does the page
// carry a script: the upload form, which sends the file with CDI's upload
// protocol to the agent that served the page.
package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nodevirt/nodevirt/internal/nodedesc"
	"github.com/nodevirt/nodevirt/internal/status"
)

// Data is what the page needs; the agent implements it.
type Data interface {
	Status() status.Node
	Events() []status.Event
	Describe(ctx context.Context) (nodedesc.Description, error)
}

// Options are the page's fixed settings.
type Options struct {
	// Node is the node's name as the header shows it.
	Node string
	// Version is the agent's version.
	Version string
	// RefreshSeconds is how often the page reloads itself: 0 is
	// DefaultRefreshSeconds, a negative value turns reloading off.
	RefreshSeconds int
	// CacheFor is how long a rendered page is served again: many open
	// pages then cost one render (18 ms for 1,000 VMs) a second, not one
	// each. 0 is DefaultCacheFor; negative renders every request.
	CacheFor time.Duration
}

// DefaultCacheFor is how long a page is reused when Options leaves it 0.
const DefaultCacheFor = time.Second

// DefaultRefreshSeconds is the reload interval when Options leaves it 0.
const DefaultRefreshSeconds = 5

//go:embed page.html
var files embed.FS

// uploadScript is the upload form's: the one script the page may run.
//
//go:embed upload.js
var uploadScript string

// contentSecurityPolicy allows nothing but the page's own inline style
// and the upload form's script, by its hash, which may talk to the agent
// alone: nothing a hostile name could smuggle in would run or load.
var contentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; script-src '" + scriptHash(uploadScript) +
	"'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// scriptHash is a script's CSP source: 'sha256-' and its digest in base64.
func scriptHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// describeTimeout bounds the node description: it asks libvirt, and a
// hung libvirt should cost the page its node section, not the whole page.
const describeTimeout = 3 * time.Second

type handler struct {
	data            Data
	opts            Options
	page            *template.Template
	describeTimeout time.Duration

	// mu guards the last page rendered and when; renders queue on it, so
	// a crowd of requests renders once.
	mu       sync.Mutex
	last     []byte
	rendered time.Time
}

// Handler serves the page for GET and HEAD of "/"; other paths are not
// found and other methods not allowed. The template is parsed here, once.
func Handler(d Data, opts Options) http.Handler {
	if opts.RefreshSeconds == 0 {
		opts.RefreshSeconds = DefaultRefreshSeconds
	}
	if opts.CacheFor == 0 {
		opts.CacheFor = DefaultCacheFor
	}
	page := template.Must(template.ParseFS(files, "page.html"))
	return &handler{data: d, opts: opts, page: page, describeTimeout: describeTimeout}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method "+r.Method+" not allowed: the status page is read-only (GET or HEAD)", http.StatusMethodNotAllowed)
		return
	}
	body, err := h.pageNow(r.Context())
	if err != nil {
		http.Error(w, "render the status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// pageNow is the page rendered within CacheFor, or rendered now.
func (h *handler) pageNow(ctx context.Context) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last != nil && time.Since(h.rendered) < h.opts.CacheFor {
		return h.last, nil
	}
	var buf bytes.Buffer
	if err := h.render(ctx, &buf); err != nil {
		return nil, err
	}
	h.last, h.rendered = buf.Bytes(), time.Now()
	return h.last, nil
}

func (h *handler) render(ctx context.Context, buf *bytes.Buffer) error {
	now := time.Now()
	dctx, cancel := context.WithTimeout(ctx, h.describeTimeout)
	desc, derr := h.data.Describe(dctx)
	cancel()
	if derr != nil {
		derr = fmt.Errorf("describe the node: %w", derr)
	}
	v := build(h.opts, h.data.Status(), h.data.Events(), desc, derr, now)
	if err := h.page.Execute(buf, v); err != nil {
		return fmt.Errorf("execute template: %w", err)
	}
	return nil
}
