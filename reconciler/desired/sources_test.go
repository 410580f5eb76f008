package desired

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/internal/secrets"
	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

const sourcesVM = `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: web, namespace: apps}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          disks: [{name: token, disk: {}}, {name: app, disk: {}}]
      volumes:
      - {name: token, secret: {secretName: token}}
      - {name: app, configMap: {name: app}}
`

func writeKey(t *testing.T, dir, ns, name, key, value string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, ns, name), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ns, name, key), []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
}

func artifactOf(t *testing.T, st *State, volume string) domain.Artifact {
	t.Helper()
	vm := st.Lookup("apps_web")
	if vm == nil {
		t.Fatalf("no VM: %v", st.Diags)
	}
	for _, a := range vm.Artifacts {
		if a.Volume == volume {
			return a
		}
	}
	t.Fatalf("no artifact for %s", volume)
	return domain.Artifact{}
}

// The repository's copy wins over the secrets directory's (Flux applies
// what git holds); what only the directory holds is read from it, and a
// change there is seen without a new revision.
func TestBuild_sourcesFromRepositoryThenDirectory(t *testing.T) {
	dir := t.TempDir()
	writeKey(t, dir, "apps", "token", "token", "from-dir")
	writeKey(t, dir, "apps", "app", "option1", "dir-value")
	gitConfig := `apiVersion: v1
kind: ConfigMap
metadata: {name: app, namespace: apps}
data: {option1: git-value}
`
	set := manifests.Parse("vms.yaml", []byte(sourcesVM+"---\n"+gitConfig), manifests.Options{})
	opt := Options{Node: "n1", Context: domain.Context{Type: "kvm", Arch: "x86_64", DiskDir: "/d", VolumeDir: "/v"}, Secrets: secrets.Dir{Dir: dir}}
	st := Build(set, "r1", opt)
	if st.Diags.HasErrors() {
		t.Fatal(st.Diags.Err())
	}
	if got := string(artifactOf(t, st, "app").Files["option1"]); got != "git-value" {
		t.Errorf("configMap option1 = %q, want the repository's", got)
	}
	token := artifactOf(t, st, "token")
	if got := string(token.SecretFiles["token"]); got != "from-dir" {
		t.Errorf("secret token = %q, want the directory's", got)
	}
	if st.SourcesChanged(opt.Secrets) {
		t.Error("nothing changed, yet SourcesChanged")
	}
	writeKey(t, dir, "apps", "token", "token", "rotated")
	if !st.SourcesChanged(opt.Secrets) {
		t.Error("a rotated key in the secrets directory is not seen")
	}
	again := Build(set, "r1", opt)
	if artifactOf(t, again, "token").Digest == token.Digest {
		t.Error("the rotated Secret did not change the artifact's digest")
	}
	if again.Lookup("apps_web").SpecHash == st.Lookup("apps_web").SpecHash {
		t.Error("the rotated Secret did not change the VM's spec hash")
	}

	// Neither place: the VM is invalid, the error says where nodevirt looked.
	if err := os.RemoveAll(filepath.Join(dir, "apps", "token")); err != nil {
		t.Fatal(err)
	}
	gone := Build(set, "r1", opt)
	if _, ok := gone.Invalid["apps_web"]; !ok {
		t.Fatal("a VM whose Secret is missing is not invalid")
	}
	msg := gone.Diags.Err().Error()
	for _, want := range []string{"VirtualMachine apps/web", "spec.template.spec.volumes[0].secret", "Secret apps/token", "not in the repository", filepath.Join(dir, "apps", "token")} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
}
