package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nodevirt/nodevirt/internal/webhook"
)

const secret = "s3cret-webhook-key"

const (
	commit     = "7d5c3b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c"
	githubPush = `{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"` + commit + `","repository":{"full_name":"acme/node-config"}}`
	gitlabPush = `{"object_kind":"push","ref":"refs/heads/edge","after":"` + commit + `","project":{"path_with_namespace":"acme/node-config"}}`
)

func sign(key, body string) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// fixture is a receiver with its triggers and log recorded.
type fixture struct {
	h   http.Handler
	log bytes.Buffer

	mu     sync.Mutex
	events []webhook.Event
}

func newFixture(t *testing.T, key string) *fixture {
	t.Helper()
	f := &fixture{}
	lg := slog.New(slog.NewTextHandler(&f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.h = webhook.New([]byte(key), func(e webhook.Event) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.events = append(f.events, e)
	}, lg)
	return f
}

// triggered waits for the triggers the calls so far started (inside a
// synctest bubble) and returns them.
func (f *fixture) triggered() []webhook.Event {
	synctest.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]webhook.Event(nil), f.events...)
}

func (f *fixture) call(method string, hdr map[string]string, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/hooks/git", strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

// decode checks the answer is JSON and returns it as a map.
func decode(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", rec.Body, err)
	}
	return m
}

// wantError checks status and a JSON {"error": "..."} body.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status = %d, want %d (body %s)", rec.Code, status, rec.Body)
	}
	m := decode(t, rec)
	if msg, _ := m["error"].(string); msg == "" || len(m) != 1 {
		t.Errorf("body = %s, want only a non-empty \"error\"", rec.Body)
	}
}

func TestReceiver_acceptsEachProvider(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		body string
		want webhook.Event
	}{
		{
			name: "github push",
			hdr:  map[string]string{"X-Hub-Signature-256": sign(secret, githubPush), "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"},
			body: githubPush,
			want: webhook.Event{Provider: webhook.GitHub, Kind: "push", Delivery: "d-1", Ref: "refs/heads/main", Branch: "main", After: commit},
		},
		{
			// A create event's ref is a bare name, not a pushed ref.
			name: "github create",
			hdr:  map[string]string{"X-Hub-Signature-256": sign(secret, `{"ref":"v1.0","ref_type":"tag"}`), "X-GitHub-Event": "create"},
			body: `{"ref":"v1.0","ref_type":"tag"}`,
			want: webhook.Event{Provider: webhook.GitHub, Kind: "create"},
		},
		{
			name: "gitlab push",
			hdr:  map[string]string{"X-Gitlab-Token": secret, "X-Gitlab-Event": "Push Hook"},
			body: gitlabPush,
			want: webhook.Event{Provider: webhook.GitLab, Kind: "Push Hook", Ref: "refs/heads/edge", Branch: "edge", After: commit},
		},
		{
			name: "gitlab tag push",
			hdr:  map[string]string{"X-Gitlab-Token": secret, "X-Gitlab-Event": "Tag Push Hook"},
			body: `{"object_kind":"tag_push","ref":"refs/tags/v1.2.0","after":"` + commit + `"}`,
			want: webhook.Event{Provider: webhook.GitLab, Kind: "Tag Push Hook", Ref: "refs/tags/v1.2.0", After: commit},
		},
		{
			name: "generic with a push payload",
			hdr:  map[string]string{"X-Signature": sign(secret, githubPush)},
			body: githubPush,
			want: webhook.Event{Provider: webhook.Generic, Ref: "refs/heads/main", Branch: "main", After: commit},
		},
		{
			name: "generic with an empty body",
			hdr:  map[string]string{"X-Signature": sign(secret, "")},
			want: webhook.Event{Provider: webhook.Generic},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFixture(t, secret)
				rec := f.call(http.MethodPost, tc.hdr, tc.body)
				if rec.Code != http.StatusAccepted {
					t.Fatalf("status = %d, want 202 (body %s)", rec.Code, rec.Body)
				}
				if m := decode(t, rec); m["triggered"] != true {
					t.Errorf("body = %s, want triggered true", rec.Body)
				}
				got := f.triggered()
				if len(got) != 1 || got[0] != tc.want {
					t.Errorf("triggered %+v, want exactly %+v", got, tc.want)
				}
			})
		})
	}
}

func TestReceiver_refusesBadCredentials(t *testing.T) {
	wrong := sign("another-secret", githubPush)
	for _, tc := range []struct {
		name string
		hdr  map[string]string
	}{
		{"github signed with another secret", map[string]string{"X-Hub-Signature-256": wrong, "X-GitHub-Event": "push"}},
		{"github legacy sha1 prefix", map[string]string{"X-Hub-Signature-256": "sha1=" + strings.TrimPrefix(sign(secret, githubPush), "sha256="), "X-GitHub-Event": "push"}},
		{"github truncated signature", map[string]string{"X-Hub-Signature-256": sign(secret, githubPush)[:40], "X-GitHub-Event": "push"}},
		{"github event without signature", map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"}},
		{"gitlab wrong token", map[string]string{"X-Gitlab-Token": "not-" + secret, "X-Gitlab-Event": "Push Hook"}},
		{"gitlab token a prefix of the secret", map[string]string{"X-Gitlab-Token": secret[:len(secret)-1], "X-Gitlab-Event": "Push Hook"}},
		{"gitlab event without token", map[string]string{"X-Gitlab-Event": "Push Hook"}},
		{"generic signed with another secret", map[string]string{"X-Signature": wrong}},
		{"generic not hex", map[string]string{"X-Signature": "sha256=" + strings.Repeat("zz", 32)}},
		{"no headers at all", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFixture(t, secret)
				rec := f.call(http.MethodPost, tc.hdr, githubPush)
				wantError(t, rec, http.StatusUnauthorized)
				if got := f.triggered(); len(got) != 0 {
					t.Errorf("triggered %+v, want nothing", got)
				}
				logged := f.log.String()
				if !strings.Contains(logged, "refused") {
					t.Errorf("log %q does not record the refusal", logged)
				}
				for _, v := range tc.hdr {
					if len(v) > 8 && strings.Contains(logged, v) {
						t.Errorf("log %q holds the header value %q", logged, v)
					}
				}
				if strings.Contains(logged, secret) || strings.Contains(logged, secret[:len(secret)-1]) {
					t.Errorf("log %q holds the secret", logged)
				}
			})
		})
	}
}

// A captured valid request sent again with another body (or another
// delivery id, so it is not just a duplicate) is refused.
func TestReceiver_tamperedReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, secret)
		hdr := map[string]string{"X-Hub-Signature-256": sign(secret, githubPush), "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"}
		if rec := f.call(http.MethodPost, hdr, githubPush); rec.Code != http.StatusAccepted {
			t.Fatalf("original: status = %d, want 202 (body %s)", rec.Code, rec.Body)
		}
		tampered := strings.Replace(githubPush, commit, strings.Repeat("e", 40), 1)
		hdr["X-GitHub-Delivery"] = "d-2"
		wantError(t, f.call(http.MethodPost, hdr, tampered), http.StatusUnauthorized)
		sigOnly := map[string]string{"X-Hub-Signature-256": hdr["X-Hub-Signature-256"]}
		wantError(t, f.call(http.MethodPost, sigOnly, githubPush+" "), http.StatusUnauthorized)
		if got := f.triggered(); len(got) != 1 || got[0].After != commit {
			t.Errorf("triggered %+v, want only the original", got)
		}
	})
}

func TestReceiver_onlyPost(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		t.Run(method, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFixture(t, secret)
				rec := f.call(method, map[string]string{"X-Signature": sign(secret, githubPush)}, githubPush)
				wantError(t, rec, http.StatusMethodNotAllowed)
				if allow := rec.Header().Get("Allow"); allow != http.MethodPost {
					t.Errorf("Allow = %q, want POST", allow)
				}
				if got := f.triggered(); len(got) != 0 {
					t.Errorf("triggered %+v, want nothing", got)
				}
			})
		})
	}
}

// The cap holds on a real server and is not off by one: a body of exactly
// the cap is read, one byte more is refused.
func TestReceiver_bodyCap(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(webhook.New([]byte(secret), func(webhook.Event) {
		mu.Lock()
		calls++
		mu.Unlock()
	}, nil))
	defer srv.Close()

	pad := func(n int) string {
		prefix, suffix := `{"ref":"refs/heads/main","pad":"`, `"}`
		return prefix + strings.Repeat("x", n-len(prefix)-len(suffix)) + suffix
	}
	for _, tc := range []struct {
		size int
		want int
	}{
		{webhook.MaxBodyBytes, http.StatusAccepted},
		{webhook.MaxBodyBytes + 1, http.StatusRequestEntityTooLarge},
		{4 * webhook.MaxBodyBytes, http.StatusRequestEntityTooLarge},
	} {
		body := pad(tc.size)
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/hooks/git", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Signature", sign(secret, body))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%d bytes: %v", tc.size, err)
		}
		var m map[string]any
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != tc.want || err != nil {
			t.Errorf("%d bytes: status %d (body %v, %v), want %d", tc.size, resp.StatusCode, m, err, tc.want)
		}
		if tc.want != http.StatusAccepted && m["error"] == nil {
			t.Errorf("%d bytes: body %v has no error", tc.size, m)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := calls
		mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			if n != 1 {
				t.Errorf("triggered %d times, want once (the body within the cap)", n)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With no secret, an HMAC keyed with the empty string would verify: the
// receiver must refuse before it gets that far.
func TestReceiver_emptySecretRefusesEverything(t *testing.T) {
	for _, hdr := range []map[string]string{
		{"X-Hub-Signature-256": sign("", githubPush), "X-GitHub-Event": "push"},
		{"X-Signature": sign("", githubPush)},
		{"X-Gitlab-Token": "anything", "X-Gitlab-Event": "Push Hook"},
	} {
		synctest.Test(t, func(t *testing.T) {
			f := newFixture(t, "")
			rec := f.call(http.MethodPost, hdr, githubPush)
			wantError(t, rec, http.StatusForbidden)
			if got := f.triggered(); len(got) != 0 {
				t.Errorf("%v: triggered %+v, want nothing", hdr, got)
			}
		})
	}
}

func TestReceiver_githubPingTriggersNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, secret)
		ping := `{"zen":"Keep it logically awesome.","hook_id":1}`
		rec := f.call(http.MethodPost, map[string]string{"X-Hub-Signature-256": sign(secret, ping), "X-GitHub-Event": "ping", "X-GitHub-Delivery": "p-1"}, ping)
		if rec.Code != http.StatusOK {
			t.Errorf("status = %d, want 200 (body %s)", rec.Code, rec.Body)
		}
		if m := decode(t, rec); m["triggered"] != false {
			t.Errorf("body = %s, want triggered false", rec.Body)
		}
		if got := f.triggered(); len(got) != 0 {
			t.Errorf("triggered %+v, want nothing", got)
		}
		// A ping with a bad signature is still refused.
		rec = f.call(http.MethodPost, map[string]string{"X-Hub-Signature-256": sign("x", ping), "X-GitHub-Event": "ping"}, ping)
		wantError(t, rec, http.StatusUnauthorized)
	})
}

func TestReceiver_duplicateDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, secret)
		hdr := map[string]string{"X-Hub-Signature-256": sign(secret, githubPush), "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"}
		steps := []struct {
			delivery string
			wait     time.Duration
			status   int
			events   int
		}{
			{"d-1", 0, http.StatusAccepted, 1},
			{"d-1", time.Minute, http.StatusOK, 1},
			{"d-2", 0, http.StatusAccepted, 2},
			{"d-1", webhook.DuplicateWindow, http.StatusAccepted, 3}, // remembered for the window only
			{"d-1", 0, http.StatusOK, 3},
		}
		for i, s := range steps {
			time.Sleep(s.wait)
			hdr["X-GitHub-Delivery"] = s.delivery
			rec := f.call(http.MethodPost, hdr, githubPush)
			m := decode(t, rec)
			if rec.Code != s.status || m["triggered"] != (s.status == http.StatusAccepted) {
				t.Errorf("step %d (%s): status %d body %s, want %d", i, s.delivery, rec.Code, rec.Body, s.status)
			}
			if got := f.triggered(); len(got) != s.events {
				t.Errorf("step %d (%s): %d triggers, want %d", i, s.delivery, len(got), s.events)
			}
		}
	})
}

func TestReceiver_malformedPayload(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		hdr        func(body string) map[string]string
	}{
		{"github push not JSON", "ref=refs/heads/main", func(b string) map[string]string {
			return map[string]string{"X-Hub-Signature-256": sign(secret, b), "X-GitHub-Event": "push"}
		}},
		{"gitlab push truncated", gitlabPush[:20], func(string) map[string]string {
			return map[string]string{"X-Gitlab-Token": secret, "X-Gitlab-Event": "Push Hook"}
		}},
		{"generic JSON array", `["refs/heads/main"]`, func(b string) map[string]string {
			return map[string]string{"X-Signature": sign(secret, b)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFixture(t, secret)
				wantError(t, f.call(http.MethodPost, tc.hdr(tc.body), tc.body), http.StatusBadRequest)
				if got := f.triggered(); len(got) != 0 {
					t.Errorf("triggered %+v, want nothing", got)
				}
			})
		})
	}
}

// A trigger that blocks cannot stall the handler, and the calls that
// arrive meanwhile become one more trigger with the latest event.
func TestReceiver_triggerNeverBlocksAndBurstsCoalesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		var got []webhook.Event
		h := webhook.New([]byte(secret), func(e webhook.Event) {
			mu.Lock()
			got = append(got, e)
			mu.Unlock()
			<-release
		}, nil)
		done := make(chan []int)
		go func() {
			var codes []int
			for i := range 6 {
				body := `{"ref":"refs/heads/main","after":"` + strings.Repeat(string(rune('a'+i)), 40) + `"}`
				req := httptest.NewRequest(http.MethodPost, "/hooks/git", strings.NewReader(body))
				req.Header.Set("X-Signature", sign(secret, body))
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				codes = append(codes, rec.Code)
			}
			done <- codes
		}()
		synctest.Wait()
		select {
		case codes := <-done:
			for i, c := range codes {
				if c != http.StatusAccepted {
					t.Errorf("call %d: status %d, want 202", i, c)
				}
			}
		default:
			close(release)
			<-done
			t.Fatal("the handler waited for a running trigger")
		}
		mu.Lock()
		if len(got) != 1 {
			t.Errorf("while the first trigger runs: %d triggers, want 1", len(got))
		}
		mu.Unlock()
		close(release)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 2 {
			t.Fatalf("after the burst: %d triggers, want 2 (first and one for the rest)", len(got))
		}
		if want := strings.Repeat("f", 40); got[1].After != want {
			t.Errorf("coalesced trigger carries after %q, want the latest %q", got[1].After, want)
		}
	})
}

// The receiver keeps its own copy: a caller wiping its buffer after New
// neither disables the webhook nor changes the key.
func TestReceiver_keepsItsOwnSecret(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		key := []byte(secret)
		var n int
		h := webhook.New(key, func(webhook.Event) { n++ }, nil)
		clear(key)
		req := httptest.NewRequest(http.MethodPost, "/hooks/git", strings.NewReader(githubPush))
		req.Header.Set("X-Signature", sign(secret, githubPush))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		synctest.Wait()
		if rec.Code != http.StatusAccepted || n != 1 {
			t.Errorf("status %d, %d triggers; want 202 and 1", rec.Code, n)
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	f.Add(sign(secret, githubPush))
	f.Add("sha256=")
	f.Add("sha1=0123")
	f.Add("SHA256=" + strings.Repeat("ab", 32))
	f.Add("sha256=" + strings.Repeat("AB", 32))
	f.Add("sha256=" + strings.Repeat("g", 64))
	f.Fuzz(func(t *testing.T, header string) {
		mac, err := webhook.ParseSignature(header)
		if err != nil {
			if mac != nil {
				t.Errorf("%q: error %v with a MAC", header, err)
			}
			return
		}
		if len(mac) != sha256.Size {
			t.Errorf("%q: MAC of %d bytes, want %d", header, len(mac), sha256.Size)
		}
		if want := "sha256=" + hex.EncodeToString(mac); !strings.EqualFold(header, want) || !strings.HasPrefix(header, "sha256=") {
			t.Errorf("%q accepted as %q", header, want)
		}
	})
}
