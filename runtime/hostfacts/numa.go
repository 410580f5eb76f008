package hostfacts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// NUMANode is one host NUMA node and its online CPUs.
type NUMANode struct {
	ID   uint
	CPUs []uint
}

// NUMANodes lists the host's NUMA nodes by ID from
// <root>/sys/devices/system/node/node<N>/cpulist, the topology libvirt's
// capabilities report. A kernel without NUMA support has no such directory:
// then the host is one node 0 holding every online CPU. Nodes without CPUs
// (memory-only nodes) are left out: no vCPU can be pinned there.
func NUMANodes(root string) ([]NUMANode, error) {
	dir := filepath.Join(root, "sys", "devices", "system", "node")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		online, err := OnlineCPUs(root)
		if err != nil {
			return nil, err
		}
		return []NUMANode{{ID: 0, CPUs: uints(online)}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("NUMA nodes: %w", err)
	}
	var nodes []NUMANode
	for _, e := range ents {
		id, err := strconv.ParseUint(strings.TrimPrefix(e.Name(), "node"), 10, 32)
		if !strings.HasPrefix(e.Name(), "node") || err != nil {
			continue
		}
		path := filepath.Join(dir, e.Name(), "cpulist")
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("NUMA node %d: %w", id, err)
		}
		cpus, err := cpuset.Parse(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("NUMA node %d CPUs in %s: %w", id, path, err)
		}
		if cpus.Size() > 0 {
			nodes = append(nodes, NUMANode{ID: uint(id), CPUs: uints(cpus)})
		}
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	return nodes, nil
}

func uints(s cpuset.CPUSet) []uint {
	var out []uint
	for _, c := range s.List() {
		out = append(out, uint(c))
	}
	return out
}
