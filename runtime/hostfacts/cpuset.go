package hostfacts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// ParseCPUSet reads the kernel's CPU list format ("0-3,8,10-11").
func ParseCPUSet(s string) ([]uint, error) {
	var out []uint
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("CPU list %q: %q is not a CPU number", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil || b < a {
				return nil, fmt.Errorf("CPU list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, uint(c))
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// OnlineCPUs lists the host's online CPUs from
// <root>/sys/devices/system/cpu/online; on the real root without that file it
// falls back to 0..NumCPU-1.
func OnlineCPUs(root string) ([]uint, error) {
	b, err := os.ReadFile(filepath.Join(root, "sys", "devices", "system", "cpu", "online"))
	if errors.Is(err, fs.ErrNotExist) && filepath.Clean(root) == "/" {
		out := make([]uint, runtime.NumCPU())
		for i := range out {
			out[i] = uint(i)
		}
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("online CPUs: %w", err)
	}
	return ParseCPUSet(string(b))
}

// CPUManagerPool is the node's pool for dedicated CPUs: the online CPUs
// minus the ones reserved for the host (the kubelet's reservedSystemCPUs).
func CPUManagerPool(root, reserved string) ([]uint, error) {
	online, err := OnlineCPUs(root)
	if err != nil {
		return nil, err
	}
	res, err := ParseCPUSet(reserved)
	if err != nil {
		return nil, fmt.Errorf("reserved CPUs: %w", err)
	}
	var pool []uint
	for _, c := range online {
		if !slices.Contains(res, c) {
			pool = append(pool, c)
		}
	}
	return pool, nil
}
