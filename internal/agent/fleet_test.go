package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/internal/fleet"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/disks"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
	"github.com/nodevirt/nodevirt/runtime/statedb"
	"github.com/nodevirt/nodevirt/source"
)

// A report that cannot reach the status branch is recorded in the status
// and told to the metrics hook; the next turn publishes it once the remote
// is there, and the agent then holds every node's report.
// reconciledAgent is node n1's agent after one reconcile of a repository
// holding the VM web, on libvirt's test driver.
func reconciledAgent(t *testing.T) (*agent.Agent, string) {
	t.Helper()
	dir := t.TempDir()
	bare, work, state := filepath.Join(dir, "repo.git"), filepath.Join(dir, "work"), filepath.Join(dir, "state")
	git(t, dir, "init", "-q", "--bare", "-b", "main", bare)
	git(t, dir, "init", "-q", "-b", "main", work)
	if err := os.WriteFile(filepath.Join(work, "web.yaml"), []byte(vmYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, work, "add", "-A")
	git(t, work, "commit", "-q", "-m", "web")
	git(t, work, "push", "-q", bare, "main")

	ctx := context.Background()
	h, err := virt.Open(ctx, "test:///default")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	d, err := disks.New(state, filepath.Join(state, "images"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := statedb.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	src, err := source.Open(source.Options{URL: "file://" + bare, WorkDir: filepath.Join(state, "source")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := agent.Config{Desired: desired.Options{Node: "n1", Context: domain.Context{Type: "kvm", Arch: "x86_64",
		DiskDir: filepath.Join(state, "disks"), VolumeDir: filepath.Join(state, "volumes")}}}
	a := agent.New(cfg, src, vm.New(vm.Config{SelfHeal: true, DiskDir: filepath.Join(state, "disks")}, h, d, db), h)
	a.IterateForTest(ctx, true)

	return a, dir
}

func TestFleet_publishFailsThenRecovers(t *testing.T) {
	a, dir := reconciledAgent(t)
	ctx := context.Background()
	// The status remote is missing at first.
	statusRemote := filepath.Join(dir, "status.git")
	var results []error
	f, err := a.Fleet(agent.FleetOptions{Node: "n1", Interval: 1, API: "https://n1:9443",
		Branch:    &fleet.Branch{Remote: statusRemote, Name: "nodevirt-status", Dir: filepath.Join(dir, "state", "status"), Attempts: 1},
		Published: func(err error) { results = append(results, err) }})
	if err != nil {
		t.Fatal(err)
	}
	f.Once(ctx)
	st := a.Status().StatusBranch
	if st == nil || st.Error == "" || st.LastPublish != nil || len(results) != 1 || results[0] == nil {
		t.Fatalf("after a failed publish: status %+v, results %v; want the error recorded and told", st, results)
	}
	if r, at := a.FleetReports(); r != nil || !at.IsZero() {
		t.Errorf("FleetReports before any read = %v, %v", r, at)
	}

	if _, err := gogit.PlainInit(statusRemote, true); err != nil {
		t.Fatal(err)
	}
	f.Once(ctx)
	st = a.Status().StatusBranch
	if st.Error != "" || st.LastPublish == nil || len(st.Commit) != 40 || st.Nodes != 1 || len(results) != 2 || results[1] != nil {
		t.Fatalf("after the remote appeared: status %+v, results %v; want a publish", st, results)
	}
	reports, at := a.FleetReports()
	r, ok := reports["n1"]
	if !ok || at.IsZero() {
		t.Fatalf("FleetReports = %v at %v, want n1's", reports, at)
	}
	if len(r.VMs) != 1 || r.VMs[0].Name != "web" || !r.VMs[0].Running || !strings.HasPrefix(r.Revisions.Applied, "main@sha1:") || r.API != "https://n1:9443" {
		t.Errorf("n1's report = %+v, want web running at the applied revision", r)
	}
	// What the branch holds is what any reader sees.
	read, _, err := fleet.Read(ctx, statusRemote, "nodevirt-status", nil, nil)
	if err != nil || !fleet.Equal(read["n1"], r) {
		t.Errorf("fleet.Read = %v, %v; want the report the agent holds", read, err)
	}
}

// Run pushes no more often than the interval however often it is kicked,
// and keeps pushing at the interval (the heartbeat) when nothing changes.
func TestFleet_runPublishesAtMostEveryInterval(t *testing.T) {
	a, dir := reconciledAgent(t)
	remote := filepath.Join(dir, "status.git")
	if _, err := gogit.PlainInit(remote, true); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	published := 0
	const interval = 400 * time.Millisecond
	f, err := a.Fleet(agent.FleetOptions{Node: "n1", Interval: interval,
		Branch: &fleet.Branch{Remote: remote, Name: "nodevirt-status", Dir: filepath.Join(dir, "state", "status")},
		Published: func(err error) {
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			published++
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	start := time.Now()
	for time.Since(start) < 5*interval {
		f.Kick()
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	took := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	if most := int(took/interval) + 1; published > most || published < 3 {
		t.Errorf("%d publishes in %s with an interval of %s, want 3 to %d", published, took, interval, most)
	}
	reports, _ := a.FleetReports()
	if _, ok := reports["n1"]; !ok {
		t.Errorf("FleetReports = %v, want n1's", reports)
	}
}

func TestFleet_badOptions(t *testing.T) {
	a := agent.New(agent.Config{}, nil, nil, nil)
	b := &fleet.Branch{Remote: "x", Name: "s", Dir: t.TempDir()}
	for name, tc := range map[string]struct {
		o    agent.FleetOptions
		want string
	}{
		"no branch":   {agent.FleetOptions{Node: "n1", Interval: 1}, "no branch"},
		"bad node":    {agent.FleetOptions{Node: "N 1", Branch: b, Interval: 1}, `node name "N 1"`},
		"no interval": {agent.FleetOptions{Node: "n1", Branch: b}, "interval 0s must be positive"},
	} {
		if _, err := a.Fleet(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
}

// An unchanged report is not committed again before the heartbeat, while
// the other nodes' reports are still read at every interval.
func TestFleet_unchangedReportWaitsForTheHeartbeat(t *testing.T) {
	a, dir := reconciledAgent(t)
	remote := filepath.Join(dir, "status.git")
	if _, err := gogit.PlainInit(remote, true); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	published := 0
	const interval = 100 * time.Millisecond
	f, err := a.Fleet(agent.FleetOptions{Node: "n1", Interval: interval, Heartbeat: time.Hour,
		Branch: &fleet.Branch{Remote: remote, Name: "nodevirt-status", Dir: filepath.Join(dir, "state", "status")},
		Published: func(error) {
			mu.Lock()
			published++
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	var first time.Time
	await(t, "a first report read back", 30*time.Second, func() bool {
		_, first = a.FleetReports()
		return !first.IsZero()
	})
	await(t, "the reports read again, twice", 30*time.Second, func() bool {
		_, at := a.FleetReports()
		return at.After(first.Add(interval))
	})
	mu.Lock()
	defer mu.Unlock()
	if published != 1 {
		t.Errorf("%d publishes of an unchanged report within the heartbeat, want 1", published)
	}
}

// await polls cond until it holds or timeout passes.
func await(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}
