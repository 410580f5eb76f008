package storage

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/runtime/volumes"
)

// A symlinked directory under --root must not send volumes outside it: the
// hostpath provisioner's /var/hpvolumes is a link (inside the temporary
// root) to a directory outside the root. Provisioning resolves the link
// inside the root, as host files do, so the claim's directory and disk are
// made under the root and nothing appears in the outside directory.
func TestManager_symlinkedDirUnderRootStaysInside(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "var", "hpvolumes")); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Root: root, StateDir: filepath.Join(t.TempDir(), "state"), SelfHeal: true, Now: time.Now}
	m, err := NewManager(cfg, newFakeImporter(newFakeFiles()), newFakeLoops(), volumes.Files{}, fakeSecrets{}, newFakeKV())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	pvc := `---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
`
	st := Build(manifests.Parse("storage.yaml", []byte(hostpathBase+pvc+vm("web", "pvc:data")), manifests.Options{}), Options{Node: "node01"})
	p, err := m.Plan(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range p.Actions {
		if a.Target != "" && !strings.HasPrefix(a.Target, root+string(filepath.Separator)) {
			t.Errorf("%s %s targets %s, outside the root %s", a.Action, a.Object, a.Target, root)
		}
	}
	rep := m.Apply(context.Background(), p, All)
	if err := rep.Err(); err != nil {
		t.Fatalf("apply: %v", err)
	}
	ents, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("provisioning wrote outside the root: %v", ents)
	}
	s, _ := m.Claim("default", "data")
	real, err := filepath.EvalSymlinks(s.Path)
	if err != nil {
		t.Fatalf("claim disk %s: %v", s.Path, err)
	}
	if !strings.HasPrefix(real, root+string(filepath.Separator)) {
		t.Fatalf("claim disk %s is really %s, outside the root", s.Path, real)
	}
}
