package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodevirt/nodevirt/internal/agent"
)

const secretVolumeVM = `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: web, namespace: default}
spec:
  runStrategy: Halted
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          disks: [{name: token, disk: {}}]
      volumes:
      - {name: token, secret: {secretName: token}}
`

// A Secret kept in --secrets-dir is part of the VM it is attached to: a
// new value there renders the VM anew on the next load, without a commit.
func TestLoad_secretsDirChangeRerenders(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	secrets := filepath.Join(dir, "secrets", "default", "token")
	for _, d := range []string{src, secrets} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, content string) {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(src, "web.yaml"), secretVolumeVM)
	write(filepath.Join(secrets, "token"), "one")
	cfg := openConfig(dir, src, testNode(t, filepath.Join(dir, "node.xml")), agent.Stages{VMs: true})
	cfg.SecretsDir = filepath.Join(dir, "secrets")
	ctx := context.Background()
	rt, err := agent.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	hash := func() string {
		t.Helper()
		n, err := rt.Agent.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		vm := n.VMs.Lookup("default_web")
		if vm == nil {
			t.Fatalf("no VM rendered: %v", n.VMs.Diags)
		}
		return vm.SpecHash
	}
	first := hash()
	if again := hash(); again != first {
		t.Fatalf("nothing changed, yet the hash did: %s, %s", first, again)
	}
	write(filepath.Join(secrets, "token"), "two")
	if changed := hash(); changed == first {
		t.Error("a new value in the secrets directory did not render the VM anew")
	}
}
