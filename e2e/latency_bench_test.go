//go:build e2e

package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/runtime/hv"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
)

// The latency benchmarks time what a user waits for with a running agent:
// from a save (or a push) to the new domain running, seen through libvirt's
// own lifecycle event rather than a poll, so the measurement adds no delay
// of its own. Compare them with BenchmarkVirshDefineStart in the same run:
//
//	go test -tags e2e ./e2e -run '^$' -bench 'WatchedSaveToRunning|PushToRunningWebhook|VirshDefineStart' -benchtime 10x -count 5
//
// Each world keeps one halted VM beside the one an iteration adds, so taking
// that one away again is an ordinary prune (not every VM the agent owns,
// which the prune guard holds).

// latencyBase is the halted VM every latency world keeps.
const latencyBase = "base"

// domainEvents subscribes to qemu:///system's lifecycle events for the
// benchmark's life.
func domainEvents(b *testing.B) <-chan hv.Event {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := virt.Open(ctx, "qemu:///system")
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	ev, err := d.Events(ctx)
	if err != nil {
		cancel()
		d.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); d.Close() })
	return ev
}

// awaitEvent waits for a lifecycle event of kind on domain dom; events of
// other domains and kinds are skipped.
func awaitEvent(b *testing.B, ev <-chan hv.Event, dom string, kind hv.EventKind, logs func() string) {
	b.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case e, ok := <-ev:
			if !ok {
				b.Fatal("libvirt event stream closed")
			}
			if e.Domain == dom && e.Kind == kind {
				return
			}
		case <-deadline:
			b.Fatalf("no %s event for %s within 60s (state %s); agent log:\n%s", kind, dom, domState(dom), logs())
		}
	}
}

// toDefined accumulates, per op, the time from the save or push to
// libvirt's "defined" event: nodevirt's own latency, before QEMU starts
// (which takes most of an op under TCG, and varies most with the load).
// It is reported as ms-to-defined, beside ms-define of
// BenchmarkVirshDefineStart.
type toDefined struct {
	total time.Duration
	n     int
}

func (d *toDefined) add(since time.Time) { d.total += time.Since(since); d.n++ }

func (d *toDefined) report(b *testing.B) {
	if d.n > 0 {
		b.ReportMetric(float64(d.total)/float64(time.Millisecond)/float64(d.n), "ms-to-defined")
	}
}

// BenchmarkWatchedSaveToRunning: a `nodevirt run` agent watches a local
// directory (polls an hour apart); one op is an editor-style save of a new
// VM's manifest (a temporary file renamed over the target) until libvirt
// says the domain started. Removing the file and the prune are not timed.
func BenchmarkWatchedSaveToRunning(b *testing.B) {
	w := newWorld(b)
	dir := filepath.Join(filepath.Dir(w.state), "local")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	save := func(name, content string) {
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			b.Fatal(err)
		}
	}
	save(latencyBase+".yaml", vmYAML(w.ns, latencyBase, "64Mi", "Halted"))
	ev := domainEvents(b)
	a := w.start("--source", dir, "--state", w.state, "--root", w.hostRoot, "--libvirt", "qemu:///system",
		"--namespace", w.ns, "run", "--interval", "1h", "--drift-interval", "1h")
	awaitEvent(b, ev, w.dom(latencyBase), hv.EventDefined, a.logs)

	var defined toDefined
	defer defined.report(b)
	i := 0
	for b.Loop() {
		b.StopTimer()
		name := fmt.Sprintf("lat%03d", i)
		i++
		tmp := filepath.Join(dir, "."+name+".yaml.tmp")
		if err := os.WriteFile(tmp, []byte(benchVM(w.ns, name)), 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		saved := time.Now()
		if err := os.Rename(tmp, filepath.Join(dir, name+".yaml")); err != nil {
			b.Fatal(err)
		}
		awaitEvent(b, ev, w.dom(name), hv.EventDefined, a.logs)
		defined.add(saved)
		awaitEvent(b, ev, w.dom(name), hv.EventStarted, a.logs)
		b.StopTimer()
		if err := os.Remove(filepath.Join(dir, name+".yaml")); err != nil {
			b.Fatal(err)
		}
		awaitEvent(b, ev, w.dom(name), hv.EventUndefined, a.logs)
		b.StartTimer()
	}
}

// BenchmarkPushToRunningWebhook: a `nodevirt run` agent on a bare repository
// over file:// (polls an hour apart) with a webhook secret; one op is a push
// of a commit adding one VM, then the webhook POSTed over HTTPS as a
// post-receive hook or a forge would send it, until libvirt says the domain
// started. The commit itself (before the push) and the removal are not timed.
func BenchmarkPushToRunningWebhook(b *testing.B) {
	w := newWorld(b)
	w.commit("base", map[string]string{"vms/" + latencyBase + ".yaml": vmYAML(w.ns, latencyBase, "64Mi", "Halted")})
	secret := filepath.Join(filepath.Dir(w.state), "webhook.secret")
	if err := os.WriteFile(secret, []byte(serviceHookSecret+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	ev := domainEvents(b)
	a := w.startAgent("--interval", "1h", "--drift-interval", "1h", "--webhook-secret-file", secret)
	awaitEvent(b, ev, w.dom(latencyBase), hv.EventDefined, a.logs)
	hook := webhookSender(b, w)

	commit := func(msg string, files map[string]string) {
		for p, content := range files {
			full := filepath.Join(w.work, p)
			if content == "" {
				if err := os.Remove(full); err != nil {
					b.Fatal(err)
				}
				continue
			}
			if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		w.git(w.work, "add", "-A")
		w.git(w.work, "commit", "-q", "-m", msg)
	}
	push := func() {
		w.git(w.work, "push", "-q", w.bare, "main")
		hook()
	}

	var defined toDefined
	defer defined.report(b)
	i := 0
	for b.Loop() {
		b.StopTimer()
		name := fmt.Sprintf("lat%03d", i)
		i++
		commit("add "+name, map[string]string{"vms/" + name + ".yaml": benchVM(w.ns, name)})
		b.StartTimer()
		pushed := time.Now()
		push()
		awaitEvent(b, ev, w.dom(name), hv.EventDefined, a.logs)
		defined.add(pushed)
		awaitEvent(b, ev, w.dom(name), hv.EventStarted, a.logs)
		b.StopTimer()
		commit("remove "+name, map[string]string{"vms/" + name + ".yaml": ""})
		push()
		awaitEvent(b, ev, w.dom(name), hv.EventUndefined, a.logs)
		b.StartTimer()
	}
}

// webhookSender returns a function that POSTs a signed push notification to
// the agent's /hooks/git over HTTPS, as a git post-receive hook would, and
// fails unless the agent accepted it.
func webhookSender(b *testing.B, w *world) func() {
	b.Helper()
	url, client := w.agentHTTPS(b)
	b.Cleanup(client.CloseIdleConnections)
	body := `{"ref":"refs/heads/main"}`
	mac := hmac.New(sha256.New, []byte(serviceHookSecret))
	mac.Write([]byte(body))
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	return func() {
		req, err := http.NewRequest("POST", url+"/hooks/git", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("X-Signature", sig)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatalf("webhook: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("webhook answered %s, want 202 Accepted", resp.Status)
		}
	}
}
