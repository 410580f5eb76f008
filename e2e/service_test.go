//go:build e2e

package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/web/webtest"
)

// serviceAgent is a running agent reached as its users reach it: the CLI
// through the socket, HTTPS with a token and the agent's CA.
type serviceAgent struct {
	*agent
	w      *world
	url    string // https://127.0.0.1:PORT
	token  string
	client *http.Client
}

const serviceHookSecret = "e2e-webhook-secret"

func (w *world) startService(t *testing.T) *serviceAgent {
	t.Helper()
	secret := filepath.Join(filepath.Dir(w.state), "webhook.secret")
	if err := os.WriteFile(secret, []byte(serviceHookSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Polls are an hour apart: what happens sooner was asked for.
	a := w.startAgent("--interval", "1h", "--drift-interval", "1h", "--webhook-secret-file", secret)
	s := &serviceAgent{agent: a, w: w}
	s.url, s.client = w.agentHTTPS(t)
	s.token = strings.TrimSpace(w.mustNodevirt("token", "create", "--name", "e2e", "--ttl", "1h"))
	return s
}

// agentHTTPS waits for the running agent to answer on its socket and
// returns the HTTPS address it listens on, as `version -o json` names it,
// with a client that trusts the agent's CA.
func (w *world) agentHTTPS(tb testing.TB) (string, *http.Client) {
	tb.Helper()
	sock := filepath.Join(w.state, api.SocketName)
	await(tb, "the agent's socket to answer /readyz", 60*time.Second, func() bool {
		c, err := api.Local(context.Background(), sock)
		if err != nil {
			return false
		}
		var ready map[string]string
		return c.Get(context.Background(), "/readyz", &ready) == nil
	})
	var v struct {
		Agent struct {
			Listen string `json:"listen"`
		} `json:"agent"`
	}
	if err := json.Unmarshal([]byte(w.mustNodevirt("version", "-o", "json")), &v); err != nil || !strings.HasPrefix(v.Agent.Listen, "https://") {
		tb.Fatalf("version -o json names no agent address: %+v %v", v, err)
	}
	pem, err := os.ReadFile(filepath.Join(w.state, "pki", "ca.crt"))
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		tb.Fatal("ca.crt holds no certificate")
	}
	return v.Agent.Listen, &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// get fetches path over HTTPS with the token and decodes it into out.
func (s *serviceAgent) get(t *testing.T, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, b)
		}
	}
	return resp.StatusCode
}

type vmPhases struct {
	VirtualMachines []struct {
		Metadata struct{ Name string }
		Status   struct {
			PrintableStatus     string `json:"printableStatus"`
			StateChangeRequests []struct {
				Action string `json:"action"`
			} `json:"stateChangeRequests"`
		}
	} `json:"virtualMachines"`
}

func (p vmPhases) phase(name string) string {
	for _, v := range p.VirtualMachines {
		if v.Metadata.Name == name {
			return v.Status.PrintableStatus
		}
	}
	return ""
}

// The agent as a service on real libvirt: its status over HTTPS and the
// socket, a stop that outlives the agent, a webhook that applies a push at
// once, plan and drift beside it, and its metrics.
func TestService_apiDrivesARunningAgent(t *testing.T) {
	require(t, Root, Libvirtd)
	w := newWorld(t)
	w.commit("web", map[string]string{"vms/web.yaml": benchVM(w.ns, "web")})
	s := w.startService(t)
	w.awaitState("web", "running", 90*time.Second)

	var st vmPhases
	await(t, "status to show web Running", 30*time.Second, func() bool {
		return s.get(t, "/api/v1/status", &st) == 200 && st.phase("web") == "Running"
	})
	if code := func() int {
		resp, err := s.client.Get(s.url + "/api/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}(); code != http.StatusUnauthorized {
		t.Fatalf("status without a token: %d", code)
	}

	// plan and drift beside the running agent (it holds the state).
	for _, cmd := range []string{"plan", "drift"} {
		out, errOut, err := w.nodevirt(cmd, "-o", "json")
		if err != nil || !strings.Contains(out, `"apiVersion": "nodevirt.io/v1alpha1"`) {
			t.Fatalf("%s beside the agent: %v\n%s\n%s", cmd, err, out, errOut)
		}
	}

	// stop on an Always VM: the domain goes off and stays off, across a
	// restart of the agent, until start.
	var res struct{ Changed bool }
	if err := json.Unmarshal([]byte(w.mustNodevirt("stop", "web", "-o", "json")), &res); err != nil || !res.Changed {
		t.Fatalf("stop: %+v %v", res, err)
	}
	w.awaitState("web", "shut off", 60*time.Second)
	if err := json.Unmarshal([]byte(w.mustNodevirt("stop", "web", "-o", "json")), &res); err != nil || res.Changed {
		t.Fatalf("second stop: %+v %v", res, err)
	}
	out := w.mustNodevirt("get", "vm", "web", "-o", "json")
	if !strings.Contains(out, `"Stop"`) {
		t.Fatalf("get vm does not show the stop request:\n%s", out)
	}
	s.stop()
	s = w.startService(t)
	await(t, "the restarted agent's status", 30*time.Second, func() bool {
		return s.get(t, "/api/v1/status", &st) == 200 && st.phase("web") == "Stopped"
	})
	if got := domState(w.dom("web")); got != "shut off" {
		t.Fatalf("the restarted agent started a stopped VM: %s", got)
	}
	if err := json.Unmarshal([]byte(w.mustNodevirt("start", "web", "-o", "json")), &res); err != nil || !res.Changed {
		t.Fatalf("start: %+v %v", res, err)
	}
	w.awaitState("web", "running", 60*time.Second)

	// A push is applied when the webhook says so, not at the hourly poll.
	w.commit("db", map[string]string{"vms/db.yaml": benchVM(w.ns, "db")})
	body := `{"ref":"refs/heads/main"}`
	mac := hmac.New(sha256.New, []byte(serviceHookSecret))
	mac.Write([]byte(body))
	bad, _ := http.NewRequest("POST", s.url+"/hooks/git", strings.NewReader(body))
	bad.Header.Set("X-Signature", "sha256="+strings.Repeat("ab", 32))
	if resp, err := s.client.Do(bad); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("webhook with a bad signature: %v %v", resp, err)
	}
	time.Sleep(2 * time.Second)
	if got := domState(w.dom("db")); got != "absent" {
		t.Fatalf("a refused webhook applied the push: db is %q", got)
	}
	req, _ := http.NewRequest("POST", s.url+"/hooks/git", strings.NewReader(body))
	req.Header.Set("X-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	sent := time.Now()
	resp, err := s.client.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %v %v", resp, err)
	}
	resp.Body.Close()
	await(t, "the pushed VM to be defined", 60*time.Second, func() bool { return domState(w.dom("db")) != "absent" })
	t.Logf("webhook to defined: %s (poll interval 1h)", time.Since(sent).Round(time.Millisecond))

	// Metrics name the VMs with their phase.
	mreq, _ := http.NewRequest("GET", s.url+"/metrics", nil)
	mreq.Header.Set("Authorization", "Bearer "+s.token)
	mresp, err := s.client.Do(mreq)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{`nodevirt_vm_info{name="web",namespace="` + w.ns + `",phase="Running"} 1`,
		`nodevirt_source_fetch_total{result="success"}`, `nodevirt_certificate_expiry_timestamp_seconds{cert="server"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The events say what was done (recorded when the reconcile ends).
	await(t, "events of the start, the webhook and the create", 30*time.Second, func() bool {
		var events api.EventList
		s.get(t, "/api/v1/events", &events)
		reasons := map[string]bool{}
		for _, e := range events.Events {
			reasons[e.Reason] = true
		}
		return reasons["Start"] && reasons["WebhookReceived"] && reasons["Create"]
	})
}

// The web page of a running agent, in a real browser: opened once with the
// address `nodevirt dashboard` prints (the token becomes a cookie), it shows
// the VMs with their states and follows a change by itself.
func TestService_webPageInABrowser(t *testing.T) {
	require(t, Root, Libvirtd)
	w := newWorld(t)
	w.commit("vms", map[string]string{"vms/web.yaml": benchVM(w.ns, "web"), "vms/db.yaml": benchVM(w.ns, "db")})
	s := w.startService(t)
	w.awaitState("web", "running", 90*time.Second)
	w.awaitState("db", "running", 90*time.Second)

	url := strings.TrimSpace(w.mustNodevirt("dashboard", "--ttl", "1h"))
	if !strings.HasPrefix(url, s.url+"/?token=") {
		t.Fatalf("dashboard printed %q, want %s/?token=…", url, s.url)
	}
	b := webtest.Start(t)
	if err := b.Open(url); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	row := func(name string) string { return "#vm-table tr[data-vm='" + w.ns + "/" + name + "'] td.state" }
	for _, name := range []string{"web", "db"} {
		if err := b.WaitText(row(name), "Running", 2*time.Minute); err != nil {
			t.Fatalf("the page does not show %s Running: %v", name, err)
		}
	}
	if shot, err := b.Screenshot("agent-page"); err != nil {
		t.Errorf("screenshot: %v", err)
	} else {
		t.Logf("screenshot: %s", shot)
	}
	// The page reloads itself: a stop shows without navigating.
	w.mustNodevirt("stop", "db")
	if err := b.WaitText(row("db"), "Stopped", 2*time.Minute); err != nil {
		t.Fatalf("the page does not follow the stop: %v", err)
	}
}
