// Package hostfacts gathers the facts about the host that the domain converter
// needs (hostname, KVM availability, architecture, CPU count, memory), read
// from a root directory so tests can point it at a fake tree. The converter
// takes Facts as plain input and never probes the host itself.
//
// This package must not import github.com/nodevirt/nodevirt/reconciler: the
// reconciler consumes Facts, so dependencies point one way only.
package hostfacts

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Facts describes the host.
type Facts struct {
	// Hostname is from <root>/etc/hostname; on the real root ("/") it falls
	// back to the kernel's hostname. Empty if unknown under a test root.
	Hostname string
	// KVM is true when <root>/dev/kvm exists; on the real root it must be a
	// character device. It says nothing about whether QEMU's user may open it.
	KVM bool
	// Arch is the machine architecture as libvirt names it ("x86_64",
	// "aarch64"), derived from the agent's own GOARCH.
	Arch string
	// CPUs is the number of online CPUs (processor entries in
	// <root>/proc/cpuinfo, or the runtime's count on the real root if that
	// cannot be read).
	CPUs int
	// MemoryBytes is MemTotal from <root>/proc/meminfo.
	MemoryBytes int64
	// CPUFlags are the first processor's "flags" in <root>/proc/cpuinfo (x86
	// feature names such as vmx or svm); nil when the file has no such line
	// (other architectures, or a test root without one).
	CPUFlags []string
}

// archNames maps GOARCH to the names libvirt and QEMU use.
var archNames = map[string]string{
	"amd64":    "x86_64",
	"arm64":    "aarch64",
	"386":      "i686",
	"arm":      "armv7l",
	"ppc64le":  "ppc64le",
	"ppc64":    "ppc64",
	"s390x":    "s390x",
	"riscv64":  "riscv64",
	"loong64":  "loongarch64",
	"mips64le": "mips64el",
}

// Gather reads the facts below root; "/" is the real host.
func Gather(root string) (Facts, error) {
	root = filepath.Clean(root)
	real := root == "/"
	var f Facts

	host, err := os.ReadFile(filepath.Join(root, "etc", "hostname"))
	switch {
	case err == nil:
		f.Hostname = strings.TrimSpace(string(host))
	case !errors.Is(err, fs.ErrNotExist):
		return Facts{}, fmt.Errorf("read hostname: %w", err)
	}
	if f.Hostname == "" && real {
		if f.Hostname, err = os.Hostname(); err != nil {
			return Facts{}, fmt.Errorf("read hostname: %w", err)
		}
	}

	if st, err := os.Stat(filepath.Join(root, "dev", "kvm")); err == nil {
		// A fake tree cannot hold device nodes without privileges, so a
		// regular file stands in for one there.
		isChar := st.Mode()&fs.ModeCharDevice != 0
		f.KVM = isChar || (!real && st.Mode().IsRegular())
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Facts{}, fmt.Errorf("check /dev/kvm: %w", err)
	}

	f.Arch = archNames[runtime.GOARCH]
	if f.Arch == "" {
		f.Arch = runtime.GOARCH
	}

	// A test root often holds only the config files a test writes: facts
	// whose files are absent there stay unknown (zero) instead of failing.
	cpuinfo := filepath.Join(root, "proc", "cpuinfo")
	if f.CPUs, f.CPUFlags, err = readCPUInfo(cpuinfo); err != nil {
		switch {
		case real:
			f.CPUs = runtime.NumCPU()
		case !missing(cpuinfo):
			return Facts{}, err
		}
	}

	meminfo := filepath.Join(root, "proc", "meminfo")
	if f.MemoryBytes, err = memTotal(meminfo); err != nil && (real || !missing(meminfo)) {
		return Facts{}, err
	}
	return f, nil
}

func missing(path string) bool {
	_, err := os.Stat(path)
	return errors.Is(err, fs.ErrNotExist)
}

// readCPUInfo counts "processor : N" entries, one per online CPU, and
// returns the first entry's flags.
func readCPUInfo(path string) (int, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, fmt.Errorf("count CPUs: %w", err)
	}
	n := 0
	var flags []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		switch key = strings.TrimSpace(key); {
		case !ok:
		case key == "processor":
			n++
		case key == "flags" && flags == nil:
			flags = strings.Fields(val)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if n == 0 {
		return 0, nil, fmt.Errorf("count CPUs: no processor entries in %s", path)
	}
	return n, flags, nil
}

// memTotal parses the "MemTotal: <n> kB" line.
func memTotal(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read memory size: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || key != "MemTotal" {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("read memory size: unexpected MemTotal line %q in %s", sc.Text(), path)
		}
		kib, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read memory size: %w", err)
		}
		return kib * 1024, nil
	}
	return 0, fmt.Errorf("read memory size: no MemTotal in %s", path)
}

// FreeHugepages returns the free huge pages per page size in KiB, read from
// <root>/sys/kernel/mm/hugepages/hugepages-<size>kB/free_hugepages. A host
// without the directory has no pools: an empty map, no error.
func FreeHugepages(root string) (map[int64]int64, error) {
	dir := filepath.Join(root, "sys", "kernel", "mm", "hugepages")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[int64]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read huge page pools: %w", err)
	}
	out := map[int64]int64{}
	for _, e := range entries {
		size, ok := strings.CutPrefix(e.Name(), "hugepages-")
		size, ok2 := strings.CutSuffix(size, "kB")
		if !ok || !ok2 {
			continue
		}
		kib, err := strconv.ParseInt(size, 10, 64)
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name(), "free_hugepages"))
		if err != nil {
			return nil, fmt.Errorf("read huge page pool %s: %w", e.Name(), err)
		}
		free, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("huge page pool %s: free_hugepages %q: %w", e.Name(), raw, err)
		}
		out[kib] = free
	}
	return out, nil
}
