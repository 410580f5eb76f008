// Package report holds nodevirt's machine-readable reports: the envelope
// every -o json|yaml report and every API answer starts with, and the node
// plan and drift report the CLI prints and a running agent serves, so a
// report read from the agent is the one the command would print.
package report

import (
	"fmt"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/nodevirt/nodevirt/reconciler/drift"
	"github.com/nodevirt/nodevirt/reconciler/host"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/reconciler/vm"
)

// APIVersion is the version of every report's kind.
const APIVersion = "nodevirt.io/v1alpha1"

// Kinds of report; docs/schema has one schema for each.
const (
	KindPlan               = "Plan"
	KindDriftReport        = "DriftReport"
	KindValidationReport   = "ValidationReport"
	KindNodeDescription    = "NodeDescription"
	KindStorageDescription = "StorageDescription"
	KindHostPlan           = "HostPlan"
	KindHostDriftReport    = "HostDriftReport"
	KindStoragePlan        = "StoragePlan"
	KindNodeStatus         = "NodeStatus"
	KindEventList          = "EventList"
)

// envelope is what every report starts with: its kind, for which node and
// when. The report's own fields follow at the top level, so readers of the
// fields keep working.
type envelope struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   Metadata       `json:"metadata"`
	Report     jsontext.Value `json:",embed"`
}

// Metadata says which node a report is about and when it was made.
type Metadata struct {
	Node string `json:"node"`
	// Timestamp is when the report was made, RFC 3339 in UTC.
	Timestamp string `json:"timestamp"`
}

// Marshal encodes v as a report of kind about node, made at, with the
// envelope. A field of v named like one of the envelope's is an error, not
// a silent overwrite.
func Marshal(kind, node string, at time.Time, v any) ([]byte, error) {
	body, err := MarshalData(v)
	if err != nil {
		return nil, err
	}
	if jsontext.Value(body).Kind() != '{' {
		return nil, fmt.Errorf("%s report: not a JSON object", kind)
	}
	b, err := jsonv2.Marshal(envelope{APIVersion: APIVersion, Kind: kind,
		Metadata: Metadata{Node: node, Timestamp: at.UTC().Format(time.RFC3339)}, Report: body})
	if err != nil {
		return nil, fmt.Errorf("%s report: %w", kind, err)
	}
	return b, nil
}

// MarshalData is encoding/json's encoding of v, except that empty lists and
// maps are [] and {}, not null: readers need not tell "none" from "unset".
func MarshalData(v any) ([]byte, error) {
	return jsonv2.Marshal(v, jsonv1.DefaultOptionsV1(), jsonv2.FormatNilSliceAsNull(false), jsonv2.FormatNilMapAsNull(false))
}

// Plan is `plan -o json|yaml`: the VM plan with the host and storage plans
// beside it.
type Plan struct {
	vm.Plan
	Host    host.Plan     `json:"host"`
	Storage *storage.Plan `json:"storage"`
	// Snapshots are the snapshot stage's steps (snapshots and restores).
	Snapshots []plan.Step `json:"snapshots,omitempty"`
}

// Drift is `drift -o json|yaml`: the VMs' report with the host's and the
// storage's beside it.
type Drift struct {
	drift.Report
	Host    drift.HostReport     `json:"host"`
	Storage []drift.StorageEntry `json:"storage"`
	// Snapshots are the snapshot stage's differences, in the storage
	// report's shape.
	Snapshots []drift.StorageEntry `json:"snapshots,omitempty"`
}

// DriftOf reports the differences of a node's plan.
func DriftOf(p Plan) Drift {
	return Drift{Report: drift.VMs(p.Plan), Host: drift.Host(p.Host), Storage: drift.Storage(p.Storage), Snapshots: drift.Steps(p.Snapshots)}
}

// Plans are p's plans as drift counts them.
func (p Plan) Plans() drift.Plans {
	return drift.Plans{VMs: &p.Plan, Host: &p.Host, Storage: p.Storage, Snapshots: p.Snapshots}
}
