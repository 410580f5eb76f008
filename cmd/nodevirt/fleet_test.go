package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/go-git/go-git/v5"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"

	"github.com/nodevirt/nodevirt/internal/fleet"
)

// publishReports makes a bare repository whose status branch holds one
// report per node.
func publishReports(t *testing.T, reports ...fleet.Report) string {
	t.Helper()
	remote := t.TempDir()
	if _, err := git.PlainInit(remote, true); err != nil {
		t.Fatal(err)
	}
	for _, r := range reports {
		b := &fleet.Branch{Remote: remote, Name: "nodevirt-status", Dir: t.TempDir()}
		if _, err := b.Publish(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	return remote
}

func nodeReport(node string, age time.Duration, vms ...fleet.VM) fleet.Report {
	return fleet.Report{APIVersion: fleet.APIVersion, Kind: fleet.Kind, Node: node, Time: time.Now().Add(-age).UTC().Truncate(time.Second),
		Revisions: fleet.Revisions{Applied: "main@sha1:0123456789abcdef0123456789abcdef01234567", Fetched: "main@sha1:89abcdef0123456789abcdef0123456789abcdef"},
		VMs:       vms, Volumes: []fleet.Volume{}}
}

func TestFleetStatus_tableAndJSON(t *testing.T) {
	remote := publishReports(t,
		nodeReport("n1", 2*time.Minute, fleet.VM{Namespace: "default", Name: "web", State: "Running", Running: true}),
		nodeReport("n2", 0,
			fleet.VM{Namespace: "default", Name: "db", State: "Stopped", Drift: []string{"Start: runStrategy Always"}},
			fleet.VM{Namespace: "prod", Name: "api", State: "Running", Running: true}),
	)
	out, errOut, code := run(t, "fleet", "status", "--source", remote, "--status-branch", "nodevirt-status")
	if code != 0 {
		t.Fatalf("fleet status exit %d: %s", code, errOut)
	}
	for _, re := range []string{
		`(?m)^NAMESPACE\s+NAME\s+NODE\s+STATE\s+DRIFT$`,
		`(?m)^default\s+db\s+n2\s+Stopped\s+Start: runStrategy Always$`,
		`(?m)^default\s+web\s+n1\s+Running\s+-$`,
		`(?m)^prod\s+api\s+n2\s+Running\s+-$`,
		`(?m)^NODE\s+REPORTED\s+APPLIED\s+FETCHED\s+VMS\s+ERRORS$`,
		`(?m)^n1\s+2m\d*s? ago\s+main@sha1:0123456789ab\s+main@sha1:89abcdef0123\s+1\s+-$`,
		`(?m)^n2\s+\d+s ago\s+main@sha1:0123456789ab\s+main@sha1:89abcdef0123\s+2\s+-$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("table lacks %s:\n%s", re, out)
		}
	}

	out, errOut, code = run(t, "fleet", "status", "--source", remote, "--status-branch", "nodevirt-status", "-o", "json")
	if code != 0 {
		t.Fatalf("fleet status -o json exit %d: %s", code, errOut)
	}
	var fs fleetStatus
	if err := json.Unmarshal([]byte(out), &fs); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(fs.Nodes) != 2 || fs.Nodes[0].Node != "n1" || fs.Nodes[0].VMs != 1 || fs.Nodes[0].AgeSeconds < 120 || fs.Nodes[1].VMs != 2 {
		t.Errorf("nodes = %+v", fs.Nodes)
	}
	if len(fs.VMs) != 3 || fs.VMs[0].Name != "db" || fs.VMs[0].Node != "n2" || fs.VMs[0].Running || !fs.VMs[2].Running || len(fs.Revision) != 40 {
		t.Errorf("vms = %+v at %q", fs.VMs, fs.Revision)
	}
}

func TestFleetStatus_badInput(t *testing.T) {
	remote := publishReports(t, nodeReport("n1", 0))
	empty := t.TempDir()
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no branch flag":   {[]string{"fleet", "status", "--source", remote}, "--status-branch is required"},
		"bad branch name":  {[]string{"fleet", "status", "--source", remote, "--status-branch", "a..b"}, `status branch name "a..b"`},
		"no such branch":   {[]string{"fleet", "status", "--source", remote, "--status-branch", "other"}, "status branch not found: other"},
		"not a repository": {[]string{"fleet", "status", "--source", empty, "--status-branch", "nodevirt-status"}, "of " + empty + ": repository not found"},
		"bad output":       {[]string{"fleet", "status", "--source", remote, "--status-branch", "nodevirt-status", "-o", "xml"}, `--output "xml"`},
		"creds over http":  {[]string{"fleet", "status", "--source", "http://u:p@git.example/r.git", "--status-branch", "s"}, "never sent over plain http"},
		"ssh without keys": {[]string{"fleet", "status", "--source", "ssh://git@git.example/r.git", "--status-branch", "s"}, "--ssh-key-file and --known-hosts-file"},
	} {
		_, errOut, code := run(t, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want an error with %q", name, code, errOut, tc.want)
		}
	}
}

func TestRun_statusSigningKey(t *testing.T) {
	dir := t.TempDir()
	e, err := openpgp.NewEntity("nodevirt n1", "", "n1@nodevirt.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	armored := func(private bool) string {
		var b bytes.Buffer
		typ := openpgp.PublicKeyType
		if private {
			typ = openpgp.PrivateKeyType
		}
		w, err := armor.Encode(&b, typ, nil)
		if err != nil {
			t.Fatal(err)
		}
		if private {
			err = e.SerializePrivate(w, nil)
		} else {
			err = e.Serialize(w)
		}
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		return b.String()
	}
	good := filepath.Join(dir, "good.asc")
	if err := os.WriteFile(good, []byte(armored(true)), 0o600); err != nil {
		t.Fatal(err)
	}
	// Each key read signs: its signature verifies with the public half.
	msg := []byte("tree 0000\n")
	k, err := readSigningKey(good)
	if err != nil {
		t.Fatalf("OpenPGP key: %v", err)
	}
	sig, err := k.Sign(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openpgp.CheckArmoredDetachedSignature(openpgp.EntityList{e}, bytes.NewReader(msg), bytes.NewReader(sig), nil); err != nil {
		t.Errorf("OpenPGP signature does not verify: %v", err)
	}
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pemBlock, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sshPath := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(sshPath, pem.EncodeToMemory(pemBlock), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err = readSigningKey(sshPath)
	if err != nil {
		t.Fatalf("SSH key: %v", err)
	}
	if sig, err = k.Sign(bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	parsed, err := sshsig.Unarmor(sig)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := sshsig.Verify(bytes.NewReader(msg), parsed, pub, sshsig.HashSHA512, "git"); err != nil {
		t.Errorf("SSH signature does not verify in git's namespace: %v", err)
	}
	locked, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	lockedPath := filepath.Join(dir, "locked")
	if err := os.WriteFile(lockedPath, pem.EncodeToMemory(locked), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readSigningKey(lockedPath); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("SSH key with a passphrase: %v, want it refused", err)
	}

	for name, tc := range map[string]struct{ content, want string }{
		"not a key":       {"hello", "neither an OpenSSH private key nor an armored OpenPGP key"},
		"public key only": {armored(false), "holds no private key"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := readSigningKey(p); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: readSigningKey = %v, want an error naming %s with %q", name, err, p, tc.want)
		}
	}
	if _, err := readSigningKey(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "--status-signing-key") {
		t.Errorf("missing file: %v", err)
	}
}

// run refuses status-branch flags that cannot work before it opens
// anything.
func TestRun_statusBranchFlagsChecked(t *testing.T) {
	remote := publishReports(t)
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"the source's branch":  {[]string{"--source", remote, "run", "--status-branch", "main"}, `--status-branch "main" is the branch the source follows`},
		"its --branch":         {[]string{"--source", remote, "--branch", "prod", "run", "--status-branch", "prod"}, `--status-branch "prod" is the branch`},
		"node not a file name": {[]string{"--source", remote, "--node", "a/b", "run", "--status-branch", "s"}, `--node with --status-branch: node name "a/b"`},
		"zero interval":        {[]string{"--source", remote, "run", "--status-branch", "s", "--status-interval", "0s"}, "--status-interval 0s"},
		"key without branch":   {[]string{"--source", remote, "run", "--status-signing-key", "k.asc"}, "--status-signing-key needs --status-branch"},
		"missing key":          {[]string{"--source", remote, "run", "--status-branch", "s", "--status-signing-key", filepath.Join(t.TempDir(), "k.asc")}, "--status-signing-key"},
	} {
		_, errOut, code := run(t, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want an error with %q", name, code, errOut, tc.want)
		}
	}
}
