// Package fleet holds what the agents of one fleet tell each other through
// a status branch of the source's remote: each node's report, committed as
// nodes/<node>.json, and the branch I/O that writes one node's file
// fast-forward only and reads every node's.
package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/nodevirt/nodevirt/internal/status"
)

// The report's type, as in a Kubernetes object.
const (
	APIVersion = "nodevirt.io/v1alpha1"
	Kind       = "NodeReport"
)

// Report is one node's report on the status branch: nodes/<node>.json.
type Report struct {
	APIVersion string    `json:"apiVersion"` // "nodevirt.io/v1alpha1"
	Kind       string    `json:"kind"`       // "NodeReport"
	Node       string    `json:"node"`
	Time       time.Time `json:"time"` // when the agent wrote it
	Revisions  Revisions `json:"revisions"`
	Capacity   Capacity  `json:"capacity"`
	VMs        []VM      `json:"vms"`
	Volumes    []Volume  `json:"volumes"`
	Holds      []string  `json:"holds,omitempty"`
	Errors     []string  `json:"errors,omitempty"`
	// CA is the agent's CA certificate (PEM) for node-to-node TLS.
	CA string `json:"ca,omitempty"`
	// API is the agent's HTTPS address (https://host:port) when it
	// listens: where other nodes pull the disks moved away from it.
	API string `json:"api,omitempty"`
}

// Revisions are the source revisions the node last fetched, verified and
// applied ("<ref>@sha1:<hex>", as source.Snapshot names them).
type Revisions struct {
	Fetched  string `json:"fetched,omitempty"`
	Verified string `json:"verified,omitempty"`
	Applied  string `json:"applied,omitempty"`
}

// Capacity is what the node offers, in Kubernetes' terms: Resources and
// Allocatable are a Node's status.capacity and status.allocatable (cpu,
// memory, hugepages-2Mi, devices).
type Capacity struct {
	Arch        string            `json:"arch,omitempty"`
	OS          string            `json:"os,omitempty"`
	CPUVendor   string            `json:"cpuVendor,omitempty"`
	CPUModel    string            `json:"cpuModel,omitempty"`
	Resources   map[string]string `json:"resources,omitempty"`
	Allocatable map[string]string `json:"allocatable,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// VM is one VirtualMachine (or VirtualMachineInstance) the node runs.
type VM struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// State is KubeVirt's printableStatus: Running, Stopped, Paused,
	// Starting…
	State string `json:"state"`
	// Running says a domain of it is active on this node: the fact fencing
	// waits on before the VM may start elsewhere.
	Running    bool     `json:"running"`
	DomainUUID string   `json:"domainUUID,omitempty"`
	Drift      []string `json:"drift,omitempty"` // empty when in sync
	// Placement is the hash of the placement rules (node selector,
	// affinity, tolerations) the node placed the VM by: another node
	// keeps the VM here only while its rules are still these.
	Placement string `json:"placement,omitempty"`
}

// Volume is one DataVolume, PersistentVolumeClaim or PersistentVolume of
// the node.
type Volume struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Phase     string `json:"phase,omitempty"`
	Node      string `json:"node,omitempty"`
}

// Path is where node's report lives on the status branch.
func Path(node string) string { return "nodes/" + node + ".json" }

// ValidNode says why node cannot name a report file, nil when it can: a
// Kubernetes node name (a DNS subdomain) is also a safe file name.
func ValidNode(node string) error {
	if errs := validation.IsDNS1123Subdomain(node); len(errs) > 0 {
		return fmt.Errorf("node name %q: %s", node, strings.Join(errs, "; "))
	}
	return nil
}

// Equal reports whether a and b say the same, ignoring when they were
// written: an unchanged report need not be committed again.
func Equal(a, b Report) bool {
	a.Time, b.Time = time.Time{}, time.Time{}
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// Marshal encodes r as the file on the branch: indented, so a history of
// reports diffs line by line.
func Marshal(r Report) ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Decode reads one report strictly: unknown fields, a wrong kind or a
// node other than file's name are errors.
func Decode(data []byte, node string) (Report, error) {
	var r Report
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Report{}, err
	}
	if dec.More() {
		return Report{}, errors.New("more than one JSON value")
	}
	switch {
	case r.APIVersion != APIVersion || r.Kind != Kind:
		return Report{}, fmt.Errorf("apiVersion %q kind %q, want %s %s", r.APIVersion, r.Kind, APIVersion, Kind)
	case r.Node != node:
		return Report{}, fmt.Errorf("node %q does not match the file name (%s)", r.Node, node)
	case r.Time.IsZero():
		return Report{}, errors.New("time is missing")
	}
	return r, nil
}

// FromStatus builds node's report from the agent's status. Nothing secret
// goes in: the status holds no credentials but the source URL may, and
// reports carry revisions, not URLs; error texts are scrubbed of URL
// user-info.
func FromStatus(node string, st status.Node, capacity Capacity, now time.Time) Report {
	r := Report{
		APIVersion: APIVersion,
		Kind:       Kind,
		Node:       node,
		Time:       now.UTC().Truncate(time.Second),
		Revisions: Revisions{
			Fetched:  st.Source.Revision,
			Verified: st.Source.VerifiedRevision,
			Applied:  st.Source.LastAppliedRevision,
		},
		Capacity: capacity,
		VMs:      []VM{},
		Volumes:  []Volume{},
	}
	drift := map[string][]string{}
	for _, d := range st.Differences {
		line := d.Action
		if d.Reason != "" {
			line += ": " + d.Reason
		}
		drift[d.Object] = append(drift[d.Object], redact(line))
	}
	running := map[string]string{} // ns/name → VMI UID
	for _, vmi := range st.VirtualMachineInstances {
		if vmi.Status.Phase == "Running" {
			running[vmi.Namespace+"/"+vmi.Name] = string(vmi.UID)
		}
	}
	seen := map[string]bool{}
	for _, v := range st.VirtualMachines {
		key := v.Namespace + "/" + v.Name
		seen[key] = true
		uid, run := running[key]
		r.VMs = append(r.VMs, VM{Namespace: v.Namespace, Name: v.Name, State: string(v.Status.PrintableStatus),
			Running: run, DomainUUID: uid, Drift: drift["VirtualMachine "+key]})
	}
	// A bare VirtualMachineInstance has no VM: it is reported by itself.
	for _, vmi := range st.VirtualMachineInstances {
		key := vmi.Namespace + "/" + vmi.Name
		if seen[key] {
			continue
		}
		seen[key] = true
		uid, run := running[key]
		r.VMs = append(r.VMs, VM{Namespace: vmi.Namespace, Name: vmi.Name, State: string(vmi.Status.Phase),
			Running: run, DomainUUID: uid, Drift: drift["VirtualMachineInstance "+key]})
	}
	for _, dv := range st.DataVolumes {
		r.Volumes = append(r.Volumes, Volume{Namespace: dv.Namespace, Name: dv.Name, Kind: "DataVolume", Phase: string(dv.Status.Phase), Node: node})
	}
	for _, c := range st.PersistentVolumeClaims {
		r.Volumes = append(r.Volumes, Volume{Namespace: c.Namespace, Name: c.Name, Kind: "PersistentVolumeClaim", Phase: string(c.Status.Phase), Node: node})
	}
	for _, pv := range st.PersistentVolumes {
		r.Volumes = append(r.Volumes, Volume{Name: pv.Name, Kind: "PersistentVolume", Phase: string(pv.Status.Phase), Node: node})
	}
	for _, h := range st.Holds {
		r.Holds = append(r.Holds, redact(strings.TrimSpace(h.Action+" "+h.Object)))
	}
	if st.Source.FetchError != "" {
		r.Errors = append(r.Errors, redact("fetch: "+st.Source.FetchError))
	}
	for _, e := range st.Reconcile.Errors {
		r.Errors = append(r.Errors, redact(e))
	}
	slices.SortFunc(r.VMs, func(a, b VM) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	slices.SortFunc(r.Volumes, func(a, b Volume) int {
		return strings.Compare(a.Kind+" "+a.Namespace+"/"+a.Name, b.Kind+" "+b.Namespace+"/"+b.Name)
	})
	return r
}

var urlInText = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"']+`)

// redact removes the user-info of every URL in s: error texts may quote a
// remote with its credentials.
func redact(s string) string {
	return urlInText.ReplaceAllStringFunc(s, func(m string) string {
		u, err := url.Parse(m)
		if err != nil || u.User == nil {
			return m
		}
		u.User = nil
		return u.String()
	})
}
