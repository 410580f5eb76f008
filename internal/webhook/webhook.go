// Package webhook receives git push notifications (GitHub, GitLab, or any
// sender that signs its body with HMAC-SHA256) and turns each authentic one
// into a fetch trigger, so a push is applied at once instead of at the next
// poll. It authenticates and rate-shapes the call; what a trigger does is the
// caller's business.
//
// Authentication, by the first header present:
//
//   - X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body> (GitHub)
//   - X-Gitlab-Token: <the secret> (GitLab)
//   - X-Signature: sha256=<hex HMAC-SHA256 of the body> (any other sender)
//
// Replay: an HMAC signature binds the body, not the time, so a captured
// request can be sent again; this receiver does not try to stop that (the
// worst a replay can do is one more fetch of the same revision), and the
// GitLab token binds nothing at all. What it does stop is GitHub delivering
// (or an operator redelivering) the same X-GitHub-Delivery id twice within
// DuplicateWindow: the second call is answered 200 and triggers nothing.
package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Provider names who sent a call, by the header that authenticated it.
type Provider string

const (
	GitHub  Provider = "github"
	GitLab  Provider = "gitlab"
	Generic Provider = "generic"
)

// Headers the receiver reads.
const (
	HeaderGitHubSignature = "X-Hub-Signature-256"
	HeaderGitHubEvent     = "X-GitHub-Event"
	HeaderGitHubDelivery  = "X-GitHub-Delivery"
	HeaderGitLabToken     = "X-Gitlab-Token"
	HeaderGitLabEvent     = "X-Gitlab-Event"
	HeaderSignature       = "X-Signature"
)

const (
	// MaxBodyBytes caps a call's body: GitHub caps its payloads at 25 MB,
	// but a push of a configuration repository is a few KiB, and an
	// unauthenticated caller must not make the agent buffer more.
	MaxBodyBytes = 1 << 20
	// DuplicateWindow is how long a GitHub delivery id is remembered.
	DuplicateWindow = 10 * time.Minute
	// maxDeliveries bounds the remembered ids; only authentic calls add
	// one, so this guards against a chatty repository, not an attacker.
	maxDeliveries = 4096
)

// Event is one authentic call, as far as its payload says.
type Event struct {
	Provider Provider
	// Kind is the sender's event name (X-GitHub-Event, X-Gitlab-Event);
	// empty for the generic sender.
	Kind string
	// Delivery is GitHub's delivery id, when sent.
	Delivery string
	// Ref is the pushed ref (refs/heads/main), Branch its branch name
	// when it names one, After the commit the ref points to now; all
	// empty when the payload does not say.
	Ref, Branch, After string
}

// LogAttrs is the event as log attributes.
func (e Event) LogAttrs() []any {
	attrs := []any{"provider", string(e.Provider)}
	for _, kv := range [][2]string{{"event", e.Kind}, {"delivery", e.Delivery}, {"ref", e.Ref}, {"after", e.After}} {
		if kv[1] != "" {
			attrs = append(attrs, kv[0], kv[1])
		}
	}
	return attrs
}

// Receiver is the http.Handler for POST /hooks/git.
type Receiver struct {
	secret  []byte
	log     *slog.Logger
	trigger *coalescer

	mu   sync.Mutex
	seen map[string]time.Time // delivery id → when it triggered
}

// New returns a receiver that authenticates calls with secret and calls
// trigger for each authentic one. trigger runs on its own goroutine, never
// in the handler, and one call at a time: calls arriving while it runs are
// folded into one more call with the latest event, so a burst of pushes
// costs at most one extra fetch. An empty secret refuses every call: the
// operator has to configure one. log may be nil.
func New(secret []byte, trigger func(Event), log *slog.Logger) *Receiver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Receiver{
		secret:  bytes.Clone(secret),
		log:     log,
		trigger: &coalescer{fn: trigger},
		seen:    map[string]time.Time{},
	}
}

// result is the body of every answer to an authentic call; every other
// answer's body is {"error": "..."}.
type result struct {
	Triggered bool   `json:"triggered"`
	Reason    string `json:"reason,omitempty"`
}

// ServeHTTP answers 202 {"triggered": true} for an authentic call, 200
// {"triggered": false} for a GitHub ping or a repeated delivery, and a JSON
// {"error": ...} with 405, 413, 400, 401 or 403 (no secret configured)
// otherwise; only a 202 triggers.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed, use POST")
		return
	}
	if len(rc.secret) == 0 {
		rc.log.Warn("git webhook refused: no webhook secret configured", "remote", r.RemoteAddr)
		writeError(w, http.StatusForbidden, "webhook is disabled: no secret configured")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}

	ev, err := rc.authenticate(r.Header, body)
	if err != nil {
		// The reason names the header, never its value: a GitLab token
		// is a secret itself (a sender misconfigured with another
		// repository's secret would hand that one to every log reader).
		rc.log.Warn("git webhook refused", "remote", r.RemoteAddr, "reason", err.Error())
		writeError(w, http.StatusUnauthorized, err.Error())
		return
	}
	if ev.Provider == GitHub && ev.Kind == "ping" {
		rc.log.Info("git webhook ping", ev.LogAttrs()...)
		writeJSON(w, http.StatusOK, result{Reason: "ping"})
		return
	}
	if err := ev.readPayload(body); err != nil {
		rc.log.Warn("git webhook refused", append(ev.LogAttrs(), "remote", r.RemoteAddr, "reason", err.Error())...)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if ev.Delivery != "" && !rc.firstDelivery(ev.Delivery, time.Now()) {
		rc.log.Info("git webhook delivery seen before, not triggering again", ev.LogAttrs()...)
		writeJSON(w, http.StatusOK, result{Reason: "duplicate delivery"})
		return
	}
	rc.log.Debug("git webhook accepted", ev.LogAttrs()...)
	rc.trigger.fire(ev)
	writeJSON(w, http.StatusAccepted, result{Triggered: true})
}

// authenticate checks the first authentication header present against the
// secret and says who sent the call.
func (rc *Receiver) authenticate(h http.Header, body []byte) (Event, error) {
	switch {
	case h.Get(HeaderGitHubSignature) != "":
		if err := rc.checkSignature(h.Get(HeaderGitHubSignature), body); err != nil {
			return Event{}, fmt.Errorf("%s: %w", HeaderGitHubSignature, err)
		}
		return Event{Provider: GitHub, Kind: h.Get(HeaderGitHubEvent), Delivery: h.Get(HeaderGitHubDelivery)}, nil
	case h.Get(HeaderGitLabToken) != "":
		// Compare digests so the comparison takes the same time for
		// every token, whatever its length.
		got, want := sha256.Sum256([]byte(h.Get(HeaderGitLabToken))), sha256.Sum256(rc.secret)
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return Event{}, fmt.Errorf("%s does not match the webhook secret", HeaderGitLabToken)
		}
		return Event{Provider: GitLab, Kind: h.Get(HeaderGitLabEvent)}, nil
	case h.Get(HeaderSignature) != "":
		if err := rc.checkSignature(h.Get(HeaderSignature), body); err != nil {
			return Event{}, fmt.Errorf("%s: %w", HeaderSignature, err)
		}
		return Event{Provider: Generic}, nil
	}
	return Event{}, fmt.Errorf("no signature: send %s, %s or %s", HeaderGitHubSignature, HeaderGitLabToken, HeaderSignature)
}

func (rc *Receiver) checkSignature(header string, body []byte) error {
	got, err := ParseSignature(header)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, rc.secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return errors.New("signature does not match the body")
	}
	return nil
}

// ParseSignature reads "sha256=<64 hex digits>" into the 32-byte MAC.
func ParseSignature(header string) ([]byte, error) {
	hexMAC, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return nil, errors.New(`signature must start with "sha256="`)
	}
	if len(hexMAC) != 2*sha256.Size {
		return nil, fmt.Errorf("signature must be %d hex digits after \"sha256=\"", 2*sha256.Size)
	}
	mac, err := hex.DecodeString(hexMAC)
	if err != nil {
		return nil, errors.New("signature is not hex")
	}
	return mac, nil
}

// readPayload takes ref and after-commit from a push payload (GitHub's and
// GitLab's share both names). Both senders always send JSON, so anything
// else is refused; the generic sender may send an empty body.
func (e *Event) readPayload(body []byte) error {
	if e.Provider == Generic && len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	var p struct {
		Ref   any `json:"ref"`
		After any `json:"after"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return fmt.Errorf("body is not a JSON object: %w", err)
	}
	// Other events use the same names for other things (a GitHub
	// "create" event's ref is a bare name); only strings that look
	// like a push's are taken.
	if ref, ok := p.Ref.(string); ok && strings.HasPrefix(ref, "refs/") {
		e.Ref = ref
		if branch, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
			e.Branch = branch
		}
	}
	if after, ok := p.After.(string); ok {
		e.After = after
	}
	return nil
}

// firstDelivery records id and says whether it is new within the window.
func (rc *Receiver) firstDelivery(id string, now time.Time) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	// Forget what the window has passed first, so what is left is all
	// within it.
	for k, at := range rc.seen {
		if now.Sub(at) >= DuplicateWindow {
			delete(rc.seen, k)
		}
	}
	if _, ok := rc.seen[id]; ok {
		return false
	}
	if len(rc.seen) >= maxDeliveries {
		// Forget the oldest rather than refuse to remember: a
		// forgotten id costs at most one extra fetch.
		var oldest string
		for k, at := range rc.seen {
			if oldest == "" || at.Before(rc.seen[oldest]) {
				oldest = k
			}
		}
		delete(rc.seen, oldest)
	}
	rc.seen[id] = now
	return true
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// coalescer runs fn on its own goroutine, one call at a time, folding the
// events that arrive while it runs into one more call with the latest.
// It holds no goroutine while idle, so it needs no Close.
type coalescer struct {
	fn      func(Event)
	mu      sync.Mutex
	running bool
	pending *Event
}

func (c *coalescer) fire(e Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		c.pending = &e
		return
	}
	c.running = true
	go c.run(e)
}

func (c *coalescer) run(e Event) {
	for {
		c.fn(e)
		c.mu.Lock()
		if c.pending == nil {
			c.running = false
			c.mu.Unlock()
			return
		}
		e, c.pending = *c.pending, nil
		c.mu.Unlock()
	}
}
