package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/internal/api"
)

// BenchmarkAgentRSS_1000 runs the built nodevirt binary as an agent
// (`nodevirt run`) on libvirt's test driver with a local directory of 1,000
// VMs, and measures the agent process's memory from /proc/PID/status while it
// reconciles the unchanged node 1,000 times. One op is those 1,000
// reconciles. Reported: VmRSS at reconcile 10, 100 and 1,000 and VmHWM (the
// peak) at 1,000; no growth means rss@1000 within a few MiB of rss@100.
//
//   - api: reconciles asked for through the API (POST /api/v1/reconcile on the
//     unix socket), one at a time: the path of a webhook or a poll with
//     nothing new, which serves the domain documents libvirt's events did
//     not invalidate.
//   - drift: back-to-back drift checks (--drift-interval 1ms), each reading
//     every domain's document anew.
//
// inproc runs the test driver inside the agent process (test:///NODE.xml),
// whose RSS therefore includes libvirt's own copy of the 1,000 domains.
// daemon serves the same driver from libvirtd (test+unix:///NODE.xml), the
// shape of production, where the domains live in the daemon as they do on
// qemu:///system; it is skipped when no libvirtd answers.
//
// NODEVIRT_BENCH_BINARY names a binary built beforehand (another commit's,
// to compare); unset, the benchmark builds this tree's.
// NODEVIRT_BENCH_RECONCILES sets the number of reconciles (default 1000):
// behind the daemon each listing is a round trip per domain, so a full run is long.
func BenchmarkAgentRSS_1000(b *testing.B) {
	bin := benchBinary(b)
	n := 1000
	if v := os.Getenv("NODEVIRT_BENCH_RECONCILES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("NODEVIRT_BENCH_RECONCILES=%q: want a positive number of reconciles", v)
		}
	}
	var marks []int
	for _, m := range []int{10, 100, 1000} {
		if m < n {
			marks = append(marks, m)
		}
	}
	marks = append(marks, n)
	for _, mode := range []string{"api", "drift"} {
		b.Run("inproc/"+mode, func(b *testing.B) {
			for range b.N {
				agentRSS(b, bin, "test://", mode, 1000, marks)
			}
		})
	}
	b.Run("daemon/api", func(b *testing.B) {
		if out, err := exec.Command("virsh", "-c", "test+unix:///default", "version").CombinedOutput(); err != nil {
			b.Skipf("no libvirtd serving the test driver: %v\n%s", err, out)
		}
		for range b.N {
			agentRSS(b, bin, "test+unix://", "api", 1000, marks)
		}
	})
}

// agentRSS runs one agent on driver (a URI scheme and "//", the node file's
// path is appended) and reports its memory at each of marks reconciles.
func agentRSS(b *testing.B, bin, driver, mode string, vms int, marks []int) {
	b.StopTimer()
	dir := b.TempDir()
	node := filepath.Join(dir, "node.xml")
	if err := os.WriteFile(node, []byte(`<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads></cpu>
  <memory>16777216</memory>
</node>`), 0o644); err != nil {
		b.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	writeFleet(b, src, vms)
	state := filepath.Join(dir, "state")
	drift := "1h"
	if mode == "drift" {
		drift = "1ms"
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config", "", "--source", src, "--state", state, "--root", filepath.Join(dir, "root"),
		"--libvirt", driver+node, "--domain-type", "kvm", "--node", "node1", "--log-level", "warn",
		"run", "--listen", "", "--interval", "1h", "--drift-interval", drift)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", filepath.Join(state, api.SocketName))
	}}}
	// The first iteration defines the 1,000 domains; count from there.
	base := awaitCount(b, hc, 1, 5*time.Minute, &logs)
	if n := domainsInSync(b, hc); n != vms {
		b.Fatalf("after the first iteration %d of %d VMs are in sync\n%s", n, vms, logs.String())
	}
	cpu0 := procCPU(b, cmd.Process.Pid)
	b.StartTimer()
	done := 0
	for _, mark := range marks {
		for done < mark {
			if mode == "api" {
				post(b, hc, "/api/v1/reconcile")
				done = awaitCount(b, hc, base+done+1, time.Minute, &logs) - base
			} else {
				time.Sleep(50 * time.Millisecond)
				done = awaitCount(b, hc, base+1, time.Minute, &logs) - base
			}
		}
		mem := procMemory(b, cmd.Process.Pid)
		b.ReportMetric(mem["VmRSS"], fmt.Sprintf("rss@%d-MiB", mark))
		if mark == marks[len(marks)-1] {
			b.ReportMetric(mem["VmHWM"], "peak-RSS-MiB")
			// Anonymous memory (Go's heap and stacks, C's malloc) against
			// pages of mapped files: the executable's text, the shared
			// libraries, bbolt's database; those are page cache, shared and
			// reclaimable, yet counted in VmRSS.
			b.ReportMetric(mem["RssAnon"], "rss-anon-MiB")
			b.ReportMetric(mem["RssFile"], "rss-file-MiB")
			// The agent's CPU time over the reconciles: what the GC costs
			// shows here, not in the wall time the polling dominates.
			b.ReportMetric(procCPU(b, cmd.Process.Pid)-cpu0, "agent-cpu-s")
			// The Go runtime's share of the process; the rest is C: libvirt,
			// and here its test driver holding the 1,000 domains in process.
			if v, err := gauge(hc, "go_memstats_sys_bytes"); err == nil {
				b.ReportMetric(v/(1<<20), "go-sys-MiB")
			}
			if v, err := gauge(hc, "go_memstats_heap_inuse_bytes"); err == nil {
				b.ReportMetric(v/(1<<20), "heap-inuse-MiB")
			}
		}
	}
	b.StopTimer()
	defer b.StartTimer()
	if n := domainsInSync(b, hc); n != vms {
		b.Fatalf("after %d reconciles %d of %d VMs are in sync\n%s", done, n, vms, logs.String())
	}
}

// writeFleet writes n VirtualMachines, 10 per file.
func writeFleet(b *testing.B, dir string, n int) {
	b.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	var docs []string
	for i := 0; i < n; i++ {
		docs = append(docs, fmt.Sprintf(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: vm%04d, namespace: fleet}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        cpu: {cores: 1}
        memory: {guest: 64Mi}
        devices: {}
`, i))
		if len(docs) == 10 || i == n-1 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("vms-%04d.yaml", i)), []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
				b.Fatal(err)
			}
			docs = docs[:0]
		}
	}
}

// awaitCount waits until the agent has finished at least want reconciles and
// returns how many it has.
func awaitCount(b *testing.B, hc *http.Client, want int, limit time.Duration, logs *bytes.Buffer) int {
	b.Helper()
	deadline := time.Now().Add(limit)
	for {
		if n, err := reconciles(hc); err == nil && n >= want {
			return n
		}
		if time.Now().After(deadline) {
			b.Fatalf("agent did not finish %d reconciles within %s\n%s", want, limit, logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gauge reads one unlabelled metric.
func gauge(hc *http.Client, name string) (float64, error) {
	resp, err := hc.Get("http://nodevirt/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no metric %s", name)
}

// reconciles reads how many iterations the agent finished.
func reconciles(hc *http.Client) (int, error) {
	resp, err := hc.Get("http://nodevirt/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		// stage="total" is one whole iteration; the other stages are parts.
		if strings.HasPrefix(line, `nodevirt_reconcile_duration_seconds_count{stage="total"}`) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return 0, err
			}
			n += int(v)
		}
	}
	return n, sc.Err()
}

func post(b *testing.B, hc *http.Client, path string) {
	b.Helper()
	resp, err := hc.Post("http://nodevirt"+path, "application/json", strings.NewReader("{}"))
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b.Fatalf("POST %s: %s: %s", path, resp.Status, body)
	}
}

// domainsInSync counts the VMs the agent's status reports as running.
func domainsInSync(b *testing.B, hc *http.Client) int {
	b.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://nodevirt/api/v1/status", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return bytes.Count(body, []byte(`"printableStatus":"Running"`))
}

// procMemory returns the memory figures of pid's /proc status (VmRSS,
// VmHWM, RssAnon, RssFile, …) in MiB.
func procMemory(b *testing.B, pid int) map[string]float64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		kib, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		out[strings.TrimSuffix(f[0], ":")] = kib / 1024
	}
	for _, k := range []string{"VmRSS", "VmHWM", "RssAnon", "RssFile"} {
		if _, ok := out[k]; !ok {
			b.Fatalf("/proc/%d/status has no %s", pid, k)
		}
	}
	return out
}

// procCPU returns the user and system CPU time pid has used, in seconds.
func procCPU(b *testing.B, pid int) float64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name may hold spaces; the fields after it are numbered
	// from the state, the third field of proc(5): utime and stime are the
	// 14th and 15th.
	_, rest, ok := strings.Cut(string(raw), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		b.Fatalf("/proc/%d/stat: unexpected format %q", pid, raw)
	}
	var ticks float64
	for _, v := range f[11:13] {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	// USER_HZ is 100 on Linux for every architecture Go supports here.
	return ticks / 100
}

// benchBinary is the nodevirt binary a benchmark starts: the one
// NODEVIRT_BENCH_BINARY names (another commit's, to compare), else this
// tree's, built for the benchmark.
func benchBinary(b *testing.B) string {
	b.Helper()
	if bin := os.Getenv("NODEVIRT_BENCH_BINARY"); bin != "" {
		return bin
	}
	bin := filepath.Join(b.TempDir(), "nodevirt")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
