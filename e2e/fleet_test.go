//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fleetWorld is one bare repository that several agents follow, each an
// own node with its own state and host root, on libvirt's test driver (an
// in-memory hypervisor per process): neither root nor libvirtd is needed.
type fleetWorld struct {
	*world
	base   string
	agents map[string]*agent
}

// statusBranch is the branch the fleet tests' agents report to.
const statusBranch = "nodevirt-status"

func newFleetWorld(t *testing.T) *fleetWorld {
	t.Helper()
	require(t, Git)
	base := t.TempDir()
	w := &world{t: t, ns: "fleet-" + randHex(3), bare: filepath.Join(base, "repo.git"), work: filepath.Join(base, "work")}
	w.git(base, "init", "-q", "--bare", "-b", "main", w.bare)
	w.git(base, "init", "-q", "-b", "main", w.work)
	return &fleetWorld{world: w, base: base, agents: map[string]*agent{}}
}

// nodeFlags are the global flags of node's agent and CLI.
func (f *fleetWorld) nodeFlags(node string) []string {
	dir := filepath.Join(f.base, "nodes", node)
	return []string{"--source", "file://" + f.bare, "--node", node, "--state", filepath.Join(dir, "state"),
		"--root", filepath.Join(dir, "root"), "--libvirt", "test:///default", "--namespace", f.ns}
}

// startAgents starts `nodevirt run` for each node, reporting to the status
// branch every second; run flags in extra apply to all of them.
func (f *fleetWorld) startAgents(nodes []string, extra ...string) {
	f.t.Helper()
	for _, n := range nodes {
		for _, d := range []string{"state", "root"} {
			if err := os.MkdirAll(filepath.Join(f.base, "nodes", n, d), 0o755); err != nil {
				f.t.Fatal(err)
			}
		}
		args := append(f.nodeFlags(n), "run", "--interval", "1s", "--listen", "",
			"--status-branch", statusBranch, "--status-interval", "1s")
		f.agents[n] = f.start(append(args, extra...)...)
	}
}

// fleetStatus is `nodevirt fleet status -o json` as the CLI prints it.
type fleetStatus struct {
	Revision string `json:"revision"`
	VMs      []struct {
		Namespace, Name, Node, State string
		Running                      bool
		Drift                        []string
	} `json:"vms"`
	Nodes []struct {
		Node       string
		AgeSeconds int64
		Applied    string
		Fetched    string
		VMs        int
		Errors     []string
	} `json:"nodes"`
}

// fleetStatus runs `nodevirt fleet status` from outside every node: only
// the remote is needed.
func (f *fleetWorld) fleetStatus(format string) (string, error) {
	cmd := exec.Command(nodevirtBin, "--source", "file://"+f.bare, "--state", filepath.Join(f.base, "cli"),
		"fleet", "status", "--status-branch", statusBranch, "-o", format)
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("fleet status: %w: %s", err, stderrOf(err))
	}
	return string(out), nil
}

// awaitFleet waits until fleet status satisfies cond and returns it.
func (f *fleetWorld) awaitFleet(what string, timeout time.Duration, cond func(fleetStatus) bool) fleetStatus {
	f.t.Helper()
	var last fleetStatus
	var lastErr error
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, err := f.fleetStatus("json")
		lastErr = err
		if err == nil {
			var fs fleetStatus
			if lastErr = json.Unmarshal([]byte(out), &fs); lastErr == nil {
				last = fs
				if cond(fs) {
					return fs
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	f.t.Fatalf("timed out after %s waiting for %s; last fleet status %+v, error %v", timeout, what, last, lastErr)
	return last
}

// pinnedVM is a VM the source places on node by its hostname label.
func pinnedVM(ns, name, node string) string {
	return strings.Replace(vmYAML(ns, name, "64Mi", "Always"), "      terminationGracePeriodSeconds: 0\n",
		"      terminationGracePeriodSeconds: 0\n      nodeSelector:\n        kubernetes.io/hostname: "+node+"\n", 1)
}

// Three agents on one repository each commit their own report to the
// status branch; `fleet status`, run with nothing but the remote, shows
// the three nodes and the VM each runs; the branch is linear and every
// commit changes only its author's file.
func TestFleet_threeAgentsReport(t *testing.T) {
	f := newFleetWorld(t)
	nodes := []string{"n1", "n2", "n3"}
	files := map[string]string{}
	for i, n := range nodes {
		files[fmt.Sprintf("vms/vm%d.yaml", i+1)] = pinnedVM(f.ns, fmt.Sprintf("vm%d", i+1), n)
	}
	head := f.commit("three VMs, one per node", files)
	// The fleet signs its reports with one SSH key; git itself checks them
	// below.
	key := filepath.Join(f.base, "fleet-key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	allowed := filepath.Join(f.base, "allowed_signers")
	if err := os.WriteFile(allowed, []byte("*@nodevirt.invalid "+string(pub)), 0o644); err != nil {
		t.Fatal(err)
	}
	f.startAgents(nodes, "--status-signing-key", key)

	fs := f.awaitFleet("three nodes reporting their running VM at "+head[:12], 90*time.Second, func(fs fleetStatus) bool {
		if len(fs.Nodes) != 3 {
			return false
		}
		for _, n := range fs.Nodes {
			if !strings.HasSuffix(n.Applied, head) || n.VMs != 1 {
				return false
			}
		}
		running := 0
		for _, v := range fs.VMs {
			if v.Running && v.State == "Running" {
				running++
			}
		}
		return running == 3
	})
	for i, n := range nodes {
		v := fs.VMs[i]
		if v.Name != fmt.Sprintf("vm%d", i+1) || v.Node != n || v.Namespace != f.ns || len(v.Drift) != 0 {
			t.Errorf("VM row %d = %+v, want vm%d running on %s in sync", i, v, i+1, n)
		}
		if fs.Nodes[i].Node != n || len(fs.Nodes[i].Errors) != 0 || fs.Nodes[i].AgeSeconds > 30 {
			t.Errorf("node row %d = %+v, want %s fresh and without errors", i, fs.Nodes[i], n)
		}
	}

	table, err := f.fleetStatus("table")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if !strings.Contains(table, n+" ") {
			t.Errorf("table lacks node %s:\n%s", n, table)
		}
	}

	// Each agent's own status says where its report went, and how many
	// nodes it read there.
	published := regexp.MustCompile(`Status branch:\s+` + statusBranch + `: published \S+ \(commit [0-9a-f]{12}\), 3 nodes reporting\n`)
	for _, n := range nodes {
		await(t, n+"'s status to show the branch with three nodes", 15*time.Second, func() bool {
			out, err := exec.Command(nodevirtBin, append(f.nodeFlags(n), "status")...).Output()
			return err == nil && published.Match(out)
		})
	}

	// The branch: linear, each commit by one node changing only its file.
	log := f.git(f.bare, "log", "--format=%H %P|%an", statusBranch)
	commits := strings.Split(log, "\n")
	if len(commits) < 3 {
		t.Fatalf("%d commits on %s, want at least one per node:\n%s", len(commits), statusBranch, log)
	}
	for _, c := range commits {
		hashes, author, _ := strings.Cut(c, "|")
		fields := strings.Fields(hashes)
		if len(fields) > 2 {
			t.Errorf("merge commit on the status branch: %s", c)
		}
		node, ok := strings.CutPrefix(author, "nodevirt ")
		if !ok {
			t.Errorf("commit %s by %q, want nodevirt <node>", fields[0], author)
			continue
		}
		verify := exec.Command("git", "-c", "gpg.format=ssh", "-c", "gpg.ssh.allowedSignersFile="+allowed, "verify-commit", fields[0])
		verify.Dir = f.bare
		if out, err := verify.CombinedOutput(); err != nil {
			t.Errorf("git verify-commit %s (by %s): %v\n%s", fields[0], node, err, out)
		}
		changed := f.git(f.bare, "diff-tree", "--no-commit-id", "--name-only", "-r", "--root", fields[0])
		for _, p := range strings.Split(changed, "\n") {
			if p != "nodes/"+node+".json" && p != "README.md" {
				t.Errorf("commit %s by %s changed %s", fields[0], node, p)
			}
		}
	}
	// The source branch is untouched by the reports.
	if got := f.git(f.bare, "rev-parse", "main"); got != head {
		t.Errorf("main moved to %s, want %s", got, head)
	}
}
