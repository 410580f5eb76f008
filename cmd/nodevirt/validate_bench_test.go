package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"
)

// manyInvalid writes one file of n VirtualMachines, each with one unknown
// field, the shape of a generated repository gone wrong.
func manyInvalid(tb testing.TB, n int) string {
	tb.Helper()
	dir := tb.TempDir()
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: vm%d}\nspec:\n  runStrategy: Halted\n  template:\n    spec:\n      domain:\n        memory: {guest: 64Mi}\n        bogus: 1\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, "vms.yaml"), []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// BenchmarkValidate_manyErrors is `nodevirt validate` over a source whose
// every document is invalid: decoding, rendering and printing the report
// must stay linear in the number of errors.
func BenchmarkValidate_manyErrors(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir := manyInvalid(b, n)
			for b.Loop() {
				_, errOut, code := run(b, "validate", "--source", dir)
				if code != 1 || strings.Count(errOut, "unknown field") != n {
					b.Fatalf("exit %d, %d errors reported", code, strings.Count(errOut, "unknown field"))
				}
			}
		})
	}
}

// validVM is one valid VirtualMachine as a generated repository holds it:
// labels, CPU, memory, a disk and its volume. It draws no warning, so the
// report is only the summary line.
func validVM(b *strings.Builder, i int) {
	fmt.Fprintf(b, `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: vm%06d
  namespace: fleet
  labels: {app: bench, tier: "%d"}
spec:
  runStrategy: Halted
  template:
    spec:
      domain:
        cpu: {sockets: 2, maxSockets: 2}
        memory: {guest: 512Mi}
        devices:
          autoattachPodInterface: false
          disks:
          - name: scratch
            disk: {bus: virtio}
      volumes:
      - name: scratch
        emptyDisk: {capacity: 1Gi}
`, i, i%10)
}

// manyValid writes n valid VirtualMachines, perFile to a file, and returns
// the directory.
func manyValid(tb testing.TB, n, perFile int) string {
	tb.Helper()
	dir := tb.TempDir()
	var b strings.Builder
	flush := func(i int) {
		if b.Len() == 0 {
			return
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("vms-%06d.yaml", i)), []byte(b.String()), 0o644); err != nil {
			tb.Fatal(err)
		}
		b.Reset()
	}
	for i := range n {
		if b.Len() > 0 {
			b.WriteString("---\n")
		}
		validVM(&b, i)
		if (i+1)%perFile == 0 {
			flush(i)
		}
	}
	flush(n)
	return dir
}

// resetPeakRSS lets each sub-benchmark report its own peak: writing 5 to
// clear_refs resets VmHWM to the current RSS (Linux 4.0 and later).
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS reports the process's peak resident set (VmHWM) in MiB.
func peakRSS(b *testing.B) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib float64
			if _, err := fmt.Sscan(rest, &kib); err == nil {
				b.ReportMetric(kib/1024, "peak-RSS-MiB")
			}
		}
	}
}

// BenchmarkValidate is `nodevirt validate` in process over valid
// VirtualMachines: all in one file (up to what MaxFileBytes allows) and
// 1,000 to a file. ns/VM shows whether the cost stays linear in the
// number of VMs.
func BenchmarkValidate(b *testing.B) {
	for _, c := range []struct {
		name       string
		n, perFile int
	}{
		{"onefile/1000", 1000, 1000},
		{"onefile/10000", 10000, 10000},
		{"files/1000", 1000, 1000},
		{"files/10000", 10000, 1000},
		{"files/100000", 100000, 1000},
	} {
		b.Run(c.name, func(b *testing.B) {
			dir := manyValid(b, c.n, c.perFile)
			want := fmt.Sprintf("%d objects in %d files are valid", c.n, (c.n+c.perFile-1)/c.perFile)
			runtime.GC()
			resetPeakRSS()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				out, errOut, code := run(b, "validate", "--source", dir)
				if code != 0 || !strings.Contains(out, want) || errOut != "" {
					b.Fatalf("exit %d, want %q:\n%s%s", code, want, out, errOut)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*c.n), "ns/VM")
			peakRSS(b)
		})
	}
}

// issueVMs writes n VirtualMachines in one file, the shape the goal was set
// on: 2 cores, 512Mi, no devices. With warnings, each VM draws two
// differences from KubeVirt (no spare sockets to hot-plug into, the pod
// network as QEMU user networking), each printed with its source line;
// quiet, the VM asks for neither.
func issueVMs(tb testing.TB, n int, warnings bool) string {
	tb.Helper()
	cpu, devices := "{cores: 2, maxSockets: 1}", "{autoattachPodInterface: false}"
	if warnings {
		cpu, devices = "{cores: 2}", "{}"
	}
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: vm%05d, namespace: fleet, labels: {app: bench}}\nspec:\n  runStrategy: Always\n  template:\n    spec:\n      domain:\n        cpu: %s\n        memory: {guest: 512Mi}\n        devices: %s\n", i, cpu, devices)
	}
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vms.yaml"), []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// BenchmarkValidate_binary is the goal as a user meets it: the built
// binary, started afresh, validating 10,000 VMs in one file, its report
// written to a file. ns/op is the wall time; cpu-s, the process's user and
// system time; minor-faults, the pages the kernel handed it (a third of
// the time on a host whose transparent huge pages are madvise).
// NODEVIRT_BENCH_BINARY names a binary built beforehand, to compare.
func BenchmarkValidate_binary(b *testing.B) {
	bin := benchBinary(b)
	const n = 10000
	for _, c := range []struct {
		name     string
		warnings bool
	}{{"warnings/10000", true}, {"quiet/10000", false}} {
		b.Run(c.name, func(b *testing.B) {
			src, tmp := issueVMs(b, n, c.warnings), b.TempDir()
			report := filepath.Join(tmp, "report")
			var cpu time.Duration
			var faults, peak int64
			// A child's ru_maxrss starts from this process's own peak: it
			// shares this process's memory until its exec (os/exec uses
			// vfork), and the kernel carries that mm's high-water mark
			// over. After the in-process benchmarks that mark is GBs, so
			// it is brought down to what this process holds now.
			debug.FreeOSMemory()
			resetPeakRSS()
			for b.Loop() {
				errf, err := os.Create(report)
				if err != nil {
					b.Fatal(err)
				}
				cmd := exec.Command(bin, "--config", "", "--state", filepath.Join(tmp, "state"), "--root", filepath.Join(tmp, "root"),
					"--log-level", "error", "validate", "--source", src)
				cmd.Stderr = errf
				out, err := cmd.Output()
				errf.Close()
				if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d objects in 1 files are valid", n)) {
					b.Fatalf("validate: %v\n%s", err, out)
				}
				cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
					faults += ru.Minflt
					peak = max(peak, ru.Maxrss)
				}
			}
			b.StopTimer()
			text, err := os.ReadFile(report)
			if err != nil {
				b.Fatal(err)
			}
			want := 0
			if c.warnings {
				want = 2 * n
			}
			if got := strings.Count(string(text), ": warning: "); got != want {
				b.Fatalf("%d warnings reported, want %d", got, want)
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s")
			b.ReportMetric(float64(faults)/float64(b.N), "minor-faults")
			b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
		})
	}
}
