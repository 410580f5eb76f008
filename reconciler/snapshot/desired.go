// Package snapshot takes offline snapshots of VMs and restores them, as
// KubeVirt's VirtualMachineSnapshot and VirtualMachineRestore ask: while the
// VM's domain is stopped, every DataVolume and PVC volume, and a persistent
// TPM's state, is copied into a content directory under the state directory
// (a reflink where the file system has it), and a restore copies the content
// back into the VM's own volumes and TPM. It plans and applies in the shared plan vocabulary, between
// storage setup and the VMs, so no VM starts while its data is copied.
package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	kubevirtv1 "kubevirt.io/api/core/v1"
	snapshotv1beta1 "kubevirt.io/api/snapshot/v1beta1"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/storage"
)

// State is what the source asks of snapshots on this node.
type State struct {
	Snapshots []*Snapshot `json:"snapshots"`
	Restores  []*Restore  `json:"restores"`
	// Contents are VirtualMachineSnapshotContents committed to the source,
	// "namespace/name": checked and shown, never used (the agent makes its
	// own when it takes a snapshot).
	Contents []string `json:"contents,omitempty"`
	// Invalid holds "namespace/name" of snapshots and restores whose
	// manifests are invalid: what they made stays.
	Invalid map[string]bool `json:"invalid,omitempty"`
	// VMs are the VirtualMachines snapshots and restores name, by
	// "namespace/name"; nil for one that is not in the source.
	VMs map[string]*VM `json:"vms"`
	// PruneSuspended and AllowPruneAll are the storage state's: a file that
	// failed to parse holds every delete; the annotation or flag confirms
	// removing every snapshot at once.
	PruneSuspended bool `json:"pruneSuspended,omitempty"`
	AllowPruneAll  bool `json:"allowPruneAll,omitempty"`
}

// Snapshot is one VirtualMachineSnapshot of the source.
type Snapshot struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Object    string `json:"object"`
	// VM is the source VM's name.
	VM          string                                     `json:"vm"`
	Retain      bool                                       `json:"retain,omitempty"`
	FailureDead time.Duration                              `json:"failureDeadline"`
	Hash        string                                     `json:"hash"`
	Spec        snapshotv1beta1.VirtualMachineSnapshotSpec `json:"spec"`
}

// VM is what snapshots and restores need of one VirtualMachine.
type VM struct {
	// Domain is its domain when the VM is placed on this node.
	Domain string `json:"domain,omitempty"`
	UID    string `json:"uid,omitempty"`
	// Elsewhere: the VM runs on another node, which snapshots it.
	Elsewhere bool `json:"elsewhere,omitempty"`
	// Volumes are the VM's DataVolume and PVC volumes; Excluded the names
	// of the others (KubeVirt snapshots only claims).
	Volumes  []Volume `json:"volumes"`
	Excluded []string `json:"excluded,omitempty"`
	// Refused is the seed's reason a volume's storage class cannot snapshot.
	Refused string          `json:"refused,omitempty"`
	Spec    json.RawMessage `json:"spec,omitempty"`
	// PersistentTPM: the VM's TPM state outlives its runs, so snapshots
	// carry it (a non-persistent TPM starts empty anyway).
	PersistentTPM bool `json:"persistentTPM,omitempty"`
}

// Volume is one claim-backed volume of a VM.
type Volume struct {
	Name string `json:"name"`
	// Claim is "namespace/name"; DataVolume says which kind it is.
	Claim      string `json:"claim"`
	DataVolume bool   `json:"dataVolume,omitempty"`
}

// Key is "namespace/name".
func (s *Snapshot) Key() string { return s.Namespace + "/" + s.Name }

// Restore is one VirtualMachineRestore of the source.
type Restore struct {
	Namespace string                                    `json:"namespace"`
	Name      string                                    `json:"name"`
	Object    string                                    `json:"object"`
	Target    string                                    `json:"target"`
	Snapshot  string                                    `json:"snapshot"`
	Hash      string                                    `json:"hash"`
	Spec      snapshotv1beta1.VirtualMachineRestoreSpec `json:"spec"`
}

// Key is "namespace/name".
func (r *Restore) Key() string { return r.Namespace + "/" + r.Name }

// Desired reads the snapshots and restores of set. vms is the node's
// rendered VMs (which VMs run here, under which domain), st its storage
// (which class each claim has).
func Desired(set *manifests.Set, vms *desired.State, st *storage.State) *State {
	out := &State{Invalid: map[string]bool{}, VMs: map[string]*VM{}}
	if st != nil {
		out.PruneSuspended, out.AllowPruneAll = st.PruneSuspended, st.AllowPruneAll
	}
	if set == nil {
		return out
	}
	out.PruneSuspended = out.PruneSuspended || set.Incomplete
	vmObjs := map[string]*kubevirtv1.VirtualMachine{}
	for _, o := range set.Objects {
		if v, ok := o.Value.(*kubevirtv1.VirtualMachine); ok && o.Ref.Kind == "VirtualMachine" {
			vmObjs[o.Ref.Namespace+"/"+o.Ref.Name] = v
		}
	}
	placed := map[string]*desired.VM{}
	if vms != nil {
		for _, v := range vms.VMs {
			placed[v.Namespace+"/"+v.Name] = v
		}
	}
	for _, o := range set.Objects {
		key := o.Ref.Namespace + "/" + o.Ref.Name
		switch v := o.Value.(type) {
		case *snapshotv1beta1.VirtualMachineSnapshot:
			if !o.Valid {
				out.Invalid[key] = true
				continue
			}
			s := &Snapshot{Namespace: o.Ref.Namespace, Name: o.Ref.Name, Object: o.Ref.String(), VM: v.Spec.Source.Name,
				Hash: hashOf(v.Spec), Spec: v.Spec, FailureDead: snapshotv1beta1.DefaultFailureDeadline}
			if fd := v.Spec.FailureDeadline; fd != nil {
				s.FailureDead = fd.Duration
			}
			s.Retain = v.Spec.DeletionPolicy != nil && *v.Spec.DeletionPolicy == snapshotv1beta1.VirtualMachineSnapshotContentRetain
			out.Snapshots = append(out.Snapshots, s)
			out.VMs[o.Ref.Namespace+"/"+s.VM] = vmOf(o.Ref.Namespace, vmObjs[o.Ref.Namespace+"/"+s.VM], placed[o.Ref.Namespace+"/"+s.VM], st)
		case *snapshotv1beta1.VirtualMachineRestore:
			if !o.Valid {
				out.Invalid[key] = true
				continue
			}
			tk := o.Ref.Namespace + "/" + v.Spec.Target.Name
			out.VMs[tk] = vmOf(o.Ref.Namespace, vmObjs[tk], placed[tk], st)
			out.Restores = append(out.Restores, &Restore{Namespace: o.Ref.Namespace, Name: o.Ref.Name, Object: o.Ref.String(),
				Target: v.Spec.Target.Name, Snapshot: v.Spec.VirtualMachineSnapshotName, Hash: hashOf(v.Spec), Spec: v.Spec})
		case *snapshotv1beta1.VirtualMachineSnapshotContent:
			out.Contents = append(out.Contents, key)
		default:
			if o.Value == nil && !o.Valid && (o.Ref.Kind == "VirtualMachineSnapshot" || o.Ref.Kind == "VirtualMachineRestore") {
				out.Invalid[key] = true
			}
		}
	}
	sort.Slice(out.Snapshots, func(i, j int) bool { return out.Snapshots[i].Key() < out.Snapshots[j].Key() })
	sort.Slice(out.Restores, func(i, j int) bool { return out.Restores[i].Key() < out.Restores[j].Key() })
	sort.Strings(out.Contents)
	return out
}

// vmOf is what snapshots need of vm (nil: not in the source); d is its
// rendering when it is placed on this node.
func vmOf(ns string, vm *kubevirtv1.VirtualMachine, d *desired.VM, st *storage.State) *VM {
	if vm == nil {
		return nil
	}
	out := &VM{Elsewhere: d == nil}
	if d != nil {
		out.Domain, out.UID = d.DomainName, d.UUID
	}
	out.Spec, _ = json.Marshal(vm.Spec)
	if vm.Spec.Template == nil {
		return out
	}
	if t := vm.Spec.Template.Spec.Domain.Devices.TPM; t != nil && (t.Enabled == nil || *t.Enabled) && t.Persistent != nil && *t.Persistent {
		out.PersistentTPM = true
	}
	for _, vol := range vm.Spec.Template.Spec.Volumes {
		var claim string
		dv := false
		switch {
		case vol.DataVolume != nil:
			claim, dv = vol.DataVolume.Name, true
		case vol.PersistentVolumeClaim != nil:
			claim = vol.PersistentVolumeClaim.ClaimName
		default:
			out.Excluded = append(out.Excluded, vol.Name)
			continue
		}
		key := ns + "/" + claim
		out.Volumes = append(out.Volumes, Volume{Name: vol.Name, Claim: key, DataVolume: dv})
		if out.Refused == "" {
			out.Refused = refusal(st, key)
		}
	}
	return out
}

// refusal is the seed's reason the class of claim key cannot snapshot, or
// "". The feature matrix says no for the hostpath provisioner; its
// conditional rows ("only if the storage provider supports snapshots") hold
// on a nodevirt host, whose agent copies the volumes it provisions itself.
func refusal(st *storage.State, key string) string {
	if st == nil {
		return ""
	}
	c := st.Claims[key]
	if c == nil {
		return ""
	}
	cls := st.Classes[c.Class]
	if cls == nil {
		return ""
	}
	if ok, why := cls.Supports(storage.OpSnapshot, c.AccessModes); !ok && cls.Features.Snapshot == "no" {
		return fmt.Sprintf("volume claim %s, storage class %s: %s", key, cls.Name, why)
	}
	return ""
}

func hashOf(v any) string {
	b, _ := json.Marshal(v)
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:12])
}
