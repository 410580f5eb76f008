package nodeconfig

import (
	"bufio"
	"bytes"
	"sort"
	"strings"

	"github.com/nodevirt/nodevirt/manifests"
)

// Labels nodevirt reads.
const (
	// LabelRolePrefix marks a node's roles: node-role.kubernetes.io/<role>.
	LabelRolePrefix = "node-role.kubernetes.io/"
	// LabelMCRole selects the nodes a MachineConfig applies to.
	LabelMCRole = "machineconfiguration.openshift.io/role"
	// DefaultRole is every node's role when its Node manifest names none.
	DefaultRole = "worker"
	// AnnotationAllowPruneAll "true" on any object of the source confirms
	// removing the host configuration the prune guard holds; it is the
	// marker the VM and storage stages read too.
	AnnotationAllowPruneAll = "nodevirt.io/allow-prune-all"
)

// Node is the node being rendered for.
type Node struct {
	Name string `json:"name"`
	// Labels are the Node manifest's labels (nil without one).
	Labels map[string]string `json:"labels,omitempty"`
	// Roles come from node-role.kubernetes.io/<role> labels; worker when
	// there are none.
	Roles []string `json:"roles"`
	// CPUVendor is "intel", "amd" or "" (unknown); it picks the IOMMU
	// kernel argument nodevirt generates.
	CPUVendor string `json:"cpuVendor,omitempty"`
	// Object is the Node manifest ("Node <name>"), empty without one.
	Object string `json:"object,omitempty"`
}

// HasRole reports whether the node has role.
func (n Node) HasRole(role string) bool {
	for _, r := range n.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// NodeFor finds the Node manifest named name in set and derives the node's
// roles from its labels; without a manifest (or role labels) the node is a
// worker, as every node joins the worker pool in OpenShift.
func NodeFor(set *manifests.Set, name, cpuVendor string) Node {
	n := Node{Name: name, CPUVendor: cpuVendor}
	if set != nil {
		for _, o := range set.OfKind("Node") {
			if o.Ref.Name == name {
				n.Labels = o.Labels
				n.Object = o.Ref.String()
				break
			}
		}
	}
	n.Roles = RolesOf(n.Labels)
	return n
}

// RolesOf returns the roles named by node-role.kubernetes.io/<role> labels,
// sorted, or [worker] when there are none.
func RolesOf(labels map[string]string) []string {
	var roles []string
	for k := range labels {
		if r, ok := strings.CutPrefix(k, LabelRolePrefix); ok && r != "" {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		return []string{DefaultRole}
	}
	sort.Strings(roles)
	return roles
}

// CPUInfo is what /proc/cpuinfo says about the first CPU.
type CPUInfo struct {
	// Vendor is "intel", "amd" or the raw vendor_id when neither.
	Vendor   string
	VendorID string
	Model    string
	Flags    []string
}

// ParseCPUInfo reads the first processor block of /proc/cpuinfo.
func ParseCPUInfo(data []byte) CPUInfo {
	var c CPUInfo
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	seen := 0
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			seen++
			if seen > 1 {
				return c.finish()
			}
		case "vendor_id":
			c.VendorID = v
		case "model name":
			c.Model = v
		case "flags", "Features":
			c.Flags = strings.Fields(v)
		}
	}
	return c.finish()
}

func (c CPUInfo) finish() CPUInfo {
	switch c.VendorID {
	case "GenuineIntel":
		c.Vendor = "intel"
	case "AuthenticAMD", "HygonGenuine":
		c.Vendor = "amd"
	default:
		c.Vendor = strings.ToLower(c.VendorID)
	}
	return c
}
