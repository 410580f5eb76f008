package agent_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/disks"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
	"github.com/nodevirt/nodevirt/runtime/statedb"
	"github.com/nodevirt/nodevirt/source"
)

// A branch force-pushed back to an older commit is refused: the VMs of the
// last applied revision stay (a deleted one is even healed), the refusal
// is in the status and the events, and a restart with AllowRewind applies
// the older commit.
func TestAgent_refusedRevisionKeepsLastApplied(t *testing.T) {
	dir := t.TempDir()
	bare, work, state := filepath.Join(dir, "repo.git"), filepath.Join(dir, "work"), filepath.Join(dir, "state")
	git(t, dir, "init", "-q", "--bare", "-b", "main", bare)
	git(t, dir, "init", "-q", "-b", "main", work)
	commit := func(name, yaml string) string {
		t.Helper()
		if err := os.WriteFile(filepath.Join(work, name), []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		git(t, work, "add", "-A")
		git(t, work, "commit", "-q", "-m", name)
		git(t, work, "push", "-q", "-f", bare, "main")
		out, err := exec.Command("git", "-C", work, "rev-parse", "HEAD").Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	first := commit("web.yaml", vmYAML)
	second := commit("db.yaml", strings.Replace(vmYAML, "name: web", "name: db", 1))

	ctx := context.Background()
	h, err := virt.Open(ctx, "test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, n := range []string{"default_web", "default_db"} {
		h.Destroy(ctx, n)
		h.Undefine(ctx, n)
	}
	d, err := disks.New(state, filepath.Join(state, "images"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := statedb.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := agent.Config{Desired: desired.Options{Node: "n1", Context: domain.Context{Type: "kvm", Arch: "x86_64",
		DiskDir: filepath.Join(state, "disks"), VolumeDir: filepath.Join(state, "volumes")}}}
	newAgent := func(allowRewind bool) *agent.Agent {
		src, err := source.Open(source.Options{URL: "file://" + bare, WorkDir: filepath.Join(state, "source"), AllowRewind: allowRewind})
		if err != nil {
			t.Fatal(err)
		}
		return agent.New(cfg, src, vm.New(vm.Config{SelfHeal: true, DiskDir: filepath.Join(state, "disks")}, h, d, db), h)
	}
	domains := func() []string {
		t.Helper()
		ds, err := h.Domains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range ds {
			if d.Name == "default_web" || d.Name == "default_db" {
				out = append(out, d.Name)
			}
		}
		slices.Sort(out)
		return out
	}

	a := newAgent(false)
	if _, err := a.Once(ctx); err != nil {
		t.Fatalf("first apply: %v", err)
	}
	if got := domains(); !slices.Equal(got, []string{"default_db", "default_web"}) {
		t.Fatalf("domains after %s: %v", second, got)
	}

	git(t, work, "reset", "-q", "--hard", first)
	git(t, work, "push", "-q", "-f", bare, "main")
	if err := h.Destroy(ctx, "default_db"); err != nil {
		t.Fatal(err)
	}
	if err := h.Undefine(ctx, "default_db"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Once(ctx); err != nil {
		t.Fatalf("apply with a refused revision: %v", err)
	}
	if got := domains(); !slices.Equal(got, []string{"default_db", "default_web"}) {
		t.Fatalf("the refused rewind changed the host, or the last applied revision was not healed: %v", got)
	}
	st := a.Status()
	r := st.Source.Refused
	if r == nil || r.Reason != source.ReasonRewind || !strings.Contains(r.Revision, first) || !strings.Contains(r.Message, second) {
		t.Fatalf("status refusal = %+v, want a rewind to %s from %s", r, first, second)
	}
	if !strings.Contains(st.Source.Revision, second) {
		t.Fatalf("status revision %s, want the last applied %s", st.Source.Revision, second)
	}
	if !slices.ContainsFunc(a.Events(), func(e status.Event) bool { return e.Reason == "RevisionRefused" }) {
		t.Fatalf("no RevisionRefused event in %+v", a.Events())
	}

	a = newAgent(true)
	if _, err := a.Once(ctx); err != nil {
		t.Fatalf("apply with AllowRewind: %v", err)
	}
	if got := domains(); !slices.Equal(got, []string{"default_web"}) {
		t.Fatalf("domains after the allowed rewind: %v", got)
	}
	if st := a.Status(); st.Source.Refused != nil || !strings.Contains(st.Source.Revision, first) {
		t.Fatalf("status after the allowed rewind: %+v", st.Source)
	}
}
