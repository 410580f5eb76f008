// Package status is the running agent's view of its node as the API serves
// it and the CLI and web page show it: the source and the last reconcile,
// holds and drift, and every object with the status KubeVirt, CDI and
// Kubernetes would give it (VirtualMachine printableStatus, DataVolume phase
// and progress, claim and volume phases), plus the agent's recent events.
package status

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	snapshotv1beta1 "kubevirt.io/api/snapshot/v1beta1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
)

// Node is the node's status as of the agent's last reconcile.
type Node struct {
	Source    Source    `json:"source"`
	Reconcile Reconcile `json:"reconcile"`
	// Suspension is what is not reconciled: the whole node or single objects.
	Suspension Suspension `json:"suspension"`
	Host       Host       `json:"host"`
	// Differences are the steps by which the node is not what the source
	// asks (as `drift` counts them); Drifted counts the objects changed out
	// of band; Holds are the removals the prune guard stopped, waiting for
	// confirmation.
	Differences []Step `json:"differences"`
	Drifted     int    `json:"drifted"`
	Holds       []Step `json:"holds"`

	VirtualMachines         []kubevirtv1.VirtualMachine         `json:"virtualMachines"`
	VirtualMachineInstances []kubevirtv1.VirtualMachineInstance `json:"virtualMachineInstances"`
	DataVolumes             []cdiv1.DataVolume                  `json:"dataVolumes"`
	PersistentVolumeClaims  []corev1.PersistentVolumeClaim      `json:"persistentVolumeClaims"`
	PersistentVolumes       []corev1.PersistentVolume           `json:"persistentVolumes"`
	// VirtualMachineSnapshots and VirtualMachineRestores are the source's,
	// with the status the agent gives them; VirtualMachineSnapshotContents
	// are what the agent made (only this host holds them: git has none).
	VirtualMachineSnapshots        []snapshotv1beta1.VirtualMachineSnapshot        `json:"virtualMachineSnapshots"`
	VirtualMachineSnapshotContents []snapshotv1beta1.VirtualMachineSnapshotContent `json:"virtualMachineSnapshotContents"`
	VirtualMachineRestores         []snapshotv1beta1.VirtualMachineRestore         `json:"virtualMachineRestores"`

	// StatusBranch is how this node's report last went to the fleet's
	// status branch; nil when none is configured.
	StatusBranch *StatusBranch `json:"statusBranch,omitempty"`
}

// StatusBranch is the node's last publish of its report.
type StatusBranch struct {
	Branch string `json:"branch"`
	// LastPublish is when the report last reached the branch, Commit the
	// branch's commit then.
	LastPublish *time.Time `json:"lastPublish,omitempty"`
	Commit      string     `json:"commit,omitempty"`
	// Error is why the last publish failed ("" when it did not); it is
	// retried at the next interval.
	Error string `json:"error,omitempty"`
	// Nodes counts the reports on the branch at the last read.
	Nodes int `json:"nodes"`
}

// Source is where the manifests come from and what was last fetched.
type Source struct {
	URL string `json:"url"`
	// Revision is the revision the node is rendered from.
	Revision string `json:"revision,omitempty"`
	// VerifiedRevision is the last fetched revision whose signature passed
	// verification; empty when signatures are not checked.
	VerifiedRevision string     `json:"verifiedRevision,omitempty"`
	LastFetch        *time.Time `json:"lastFetch,omitempty"`
	// FetchError is why the last fetch failed ("" when it did not).
	FetchError string `json:"fetchError,omitempty"`
	// LastAppliedRevision and LastAttemptedRevision are Flux's: the last
	// revision applied without error, and the last one tried.
	LastAppliedRevision   string `json:"lastAppliedRevision,omitempty"`
	LastAttemptedRevision string `json:"lastAttemptedRevision,omitempty"`
	// Refused is the last revision the source refused (unsigned, signed
	// by an untrusted key, or a rewind of the branch) while Revision stays
	// in force; nil once a fetched revision is accepted.
	Refused *Refusal `json:"refused,omitempty"`
}

// Refusal is a fetched revision that was not applied, and why.
type Refusal struct {
	Revision string `json:"revision"`
	Author   string `json:"author,omitempty"`
	// Reason is one word: unsigned, untrusted or rewind.
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// Reconcile is the last reconcile: when, how long, what it did.
type Reconcile struct {
	Last     *time.Time `json:"last,omitempty"`
	Duration string     `json:"duration,omitempty"`
	Revision string     `json:"revision,omitempty"`
	// Actions counts the steps done; Errors says what failed.
	Actions int      `json:"actions"`
	Errors  []string `json:"errors"`
	// Count is how many reconciles the agent ran since it started.
	Count int64 `json:"count"`
}

// Suspension says what the agent does not reconcile: everything (Global)
// or the objects listed, by the API or the annotation
// nodevirt.io/reconcile: disabled.
type Suspension struct {
	Global  bool     `json:"global"`
	Objects []string `json:"objects"`
}

// Host is the host configuration's state.
type Host struct {
	// RebootRequired: staged kernel arguments or boot-time module options
	// take effect only after a reboot; Reason says which.
	RebootRequired bool   `json:"rebootRequired"`
	Reason         string `json:"reason,omitempty"`
	// Pending counts the host steps not in effect yet.
	Pending int    `json:"pending"`
	Steps   []Step `json:"steps"`
}

// Step is one planned step as status shows it.
type Step struct {
	Stage  string `json:"stage"`
	Action string `json:"action"`
	Object string `json:"object"`
	Target string `json:"target,omitempty"`
	Reason string `json:"reason,omitempty"`
	Drift  bool   `json:"drift,omitempty"`
}

// Event is one thing the agent did or saw, in the shape of a Kubernetes
// Event: Normal or Warning, a reason word, the object, a message.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	Reason  string    `json:"reason"`
	Object  string    `json:"object,omitempty"`
	Message string    `json:"message"`
	// Count is how often it happened; Time is the last time.
	Count int `json:"count"`
}

// Event types.
const (
	Normal  = "Normal"
	Warning = "Warning"
)

// ActionResult is what an imperative command did: Changed says whether
// anything changed, so automation (an Ansible command task) can report it.
type ActionResult struct {
	Changed bool   `json:"changed"`
	Action  string `json:"action"`
	Object  string `json:"object,omitempty"`
	Message string `json:"message,omitempty"`
	// Patch is the change of the object's manifest to commit for the
	// action to last (addvolume --persist), as YAML.
	Patch string `json:"patch,omitempty"`
}
