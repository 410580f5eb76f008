package hostfacts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"k8s.io/utils/cpuset"
)

// OnlineCPUs lists the host's online CPUs from
// <root>/sys/devices/system/cpu/online; on the real root without that file it
// falls back to 0..NumCPU-1.
func OnlineCPUs(root string) (cpuset.CPUSet, error) {
	path := filepath.Join(root, "sys", "devices", "system", "cpu", "online")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && filepath.Clean(root) == "/" {
		all := make([]int, runtime.NumCPU())
		for i := range all {
			all[i] = i
		}
		return cpuset.New(all...), nil
	}
	if err != nil {
		return cpuset.New(), fmt.Errorf("online CPUs: %w", err)
	}
	s, err := cpuset.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return cpuset.New(), fmt.Errorf("online CPUs in %s: %w", path, err)
	}
	return s, nil
}

// CPUManagerPool is the node's pool for dedicated CPUs, sorted: the online
// CPUs minus the ones reserved for the host (reserved is a kernel CPU list,
// the kubelet's reservedSystemCPUs).
func CPUManagerPool(root, reserved string) ([]uint, error) {
	online, err := OnlineCPUs(root)
	if err != nil {
		return nil, err
	}
	res, err := cpuset.Parse(strings.TrimSpace(reserved))
	if err != nil {
		return nil, fmt.Errorf("reserved CPUs %q: %w", reserved, err)
	}
	var pool []uint
	for _, c := range online.Difference(res).List() {
		pool = append(pool, uint(c))
	}
	return pool, nil
}
