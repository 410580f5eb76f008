package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/internal/pki"
)

func hcoWithCertConfig(ca, caRenew, server, serverRenew string) string {
	return fmt.Sprintf(`apiVersion: hco.kubevirt.io/v1beta1
kind: HyperConverged
metadata: {name: kubevirt-hyperconverged, namespace: openshift-cnv}
spec:
  certConfig:
    ca: {duration: %s, renewBefore: %s}
    server: {duration: %s, renewBefore: %s}
`, ca, caRenew, server, serverRenew)
}

// certs status reads the certificates an agent made under --state, with
// the deadlines of the source's certConfig.
func TestCertsStatus(t *testing.T) {
	state, src := t.TempDir(), t.TempDir()
	write(t, src, "hco.yaml", hcoWithCertConfig("10h", "5h", "4h", "1h"))
	l := pki.Lifetimes{CA: pki.Lifetime{Duration: 10 * time.Hour, RenewBefore: 5 * time.Hour}, Server: pki.Lifetime{Duration: 4 * time.Hour, RenewBefore: time.Hour}}

	if _, errOut, code := run(t, "certs", "status", "--state", state, "--source", src); code != 1 || !strings.Contains(errOut, "no certificates in "+pkiDir(state)+" yet") {
		t.Fatalf("before any agent ran: exit %d, %s", code, errOut)
	}
	m, err := pki.New(pki.Options{Dir: pkiDir(state), Lifetimes: l, DNSNames: []string{"node1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := m.Status()

	out, errOut, code := run(t, "certs", "status", "--state", state, "--source", src)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	rows := []string{
		"CERT SUBJECT NOT BEFORE NOT AFTER NEXT ROTATION",
		strings.Join([]string{"ca", want.CA.Subject, at(want.CA.NotBefore), at(want.CA.NotAfter), at(want.CA.NotAfter.Add(-5 * time.Hour))}, " "),
		strings.Join([]string{"server", "nodevirt", at(want.Server.NotBefore), at(want.Server.NotAfter), at(want.Server.NotAfter.Add(-time.Hour))}, " "),
		"Lifetimes: CA 10h0m0s, renewed 5h0m0s before its end; server 4h0m0s, renewed 1h0m0s before its end.",
	}
	if len(lines) != len(rows) {
		t.Fatalf("table:\n%s", out)
	}
	for i, r := range rows {
		if got := strings.Join(strings.Fields(lines[i]), " "); got != r {
			t.Errorf("line %d: %q, want %q", i+1, got, r)
		}
	}

	out, errOut, code = run(t, "-o", "json", "certs", "status", "--state", state, "--source", src)
	var got pki.Status
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
		t.Fatalf("-o json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("-o json differs from the manager's status (-manager +json):\n%s", diff)
	}
}

// A source that cannot be read, or whose certConfig the agent would
// refuse, leaves HCO's defaults, and says so.
func TestCertsStatus_defaultLifetimes(t *testing.T) {
	state, bad := t.TempDir(), t.TempDir()
	write(t, bad, "hco.yaml", hcoWithCertConfig("1h", "2h", "30m", "10m"))
	if _, err := pki.New(pki.Options{Dir: pkiDir(state), Lifetimes: pki.DefaultLifetimes()}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ source, note string }{
		{bad, "spec.certConfig.ca.renewBefore"},
		{"/nonexistent/manifests", "/nonexistent/manifests"},
	} {
		out, errOut, code := run(t, "-o", "yaml", "certs", "status", "--state", state, "--source", c.source)
		if code != 0 || !strings.Contains(errOut, "note:") || !strings.Contains(errOut, c.note) || !strings.Contains(errOut, "default lifetimes") {
			t.Errorf("--source %s: exit %d, stderr %q, want a note naming %q", c.source, code, errOut, c.note)
		}
		if !strings.Contains(out, "duration: 48h0m0s") {
			t.Errorf("--source %s: not the default lifetimes:\n%s", c.source, out)
		}
	}
}
