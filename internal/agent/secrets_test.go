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

// A SOPS-encrypted Secret whose age key is not on the host yet makes its
// VM wait; once the key file is there, the next load decrypts it, without
// a new commit.
func TestLoad_ageKeyArrivesLater(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o700); err != nil {
		t.Fatal(err)
	}
	enc, err := os.ReadFile(filepath.Join("..", "secrets", "testdata", "secret.sops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join("..", "secrets", "testdata", "age.agekey"))
	if err != nil {
		t.Fatal(err)
	}
	vm := `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: guest, namespace: vms}
spec:
  runStrategy: Halted
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          disks: [{name: seed, disk: {bus: virtio}}]
      volumes:
      - {name: seed, cloudInitNoCloud: {secretRef: {name: guest-creds}}}
`
	for name, content := range map[string][]byte{"secret.yaml": enc, "vm.yaml": []byte(vm)} {
		if err := os.WriteFile(filepath.Join(src, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := openConfig(dir, src, testNode(t, filepath.Join(dir, "node.xml")), agent.Stages{VMs: true})
	cfg.AgeKeyFile = filepath.Join(dir, "age.agekey")
	ctx := context.Background()
	rt, err := agent.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	n, err := rt.Agent.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, waits := n.VMs.Invalid["vms_guest"]; !waits {
		t.Fatalf("the VM does not wait for its Secret: %v", n.VMs.Diags)
	}
	if err := os.WriteFile(cfg.AgeKeyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err = rt.Agent.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if n.VMs.Lookup("vms_guest") == nil {
		t.Fatalf("the key is there, the VM is not rendered: %v", n.VMs.Diags)
	}
}
