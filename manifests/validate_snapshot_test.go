package manifests

import (
	"errors"
	"strings"
	"testing"

	snapshotv1beta1 "kubevirt.io/api/snapshot/v1beta1"
)

func TestValidateSnapshot_seedV1alpha1ReadAsV1beta1(t *testing.T) {
	// The seed's example (8.18.11.3), in v1alpha1.
	s := parse(t, `apiVersion: snapshot.kubevirt.io/v1alpha1
kind: VirtualMachineSnapshot
metadata:
  name: my-vmsnapshot
spec:
  source:
    apiGroup: kubevirt.io
    kind: VirtualMachine
    name: my-vm
---
apiVersion: snapshot.kubevirt.io/v1alpha1
kind: VirtualMachineRestore
metadata:
  name: my-vmrestore
spec:
  target:
    apiGroup: kubevirt.io
    kind: VirtualMachine
    name: my-vm
  virtualMachineSnapshotName: my-vmsnapshot
`)
	if s.Diags.HasErrors() || len(s.Objects) != 2 {
		t.Fatalf("diags %v, %d objects", s.Diags, len(s.Objects))
	}
	snap, ok := s.Objects[0].Value.(*snapshotv1beta1.VirtualMachineSnapshot)
	if !ok {
		t.Fatalf("snapshot decoded as %T, want v1beta1", s.Objects[0].Value)
	}
	if snap.Spec.Source.Name != "my-vm" || snap.Namespace != "" && s.Objects[0].Ref.Namespace != "default" {
		t.Errorf("source %+v, ref %v", snap.Spec.Source, s.Objects[0].Ref)
	}
	rst, ok := s.Objects[1].Value.(*snapshotv1beta1.VirtualMachineRestore)
	if !ok || rst.Spec.VirtualMachineSnapshotName != "my-vmsnapshot" {
		t.Fatalf("restore decoded as %#v", s.Objects[1].Value)
	}
}

func TestValidateSnapshot_rules(t *testing.T) {
	for _, tc := range []struct {
		name, doc, path string
		want            error
	}{
		{"source group", "kind: VirtualMachineSnapshot\nspec:\n  source: {kind: VirtualMachine, name: a}\n", "spec.source.apiGroup", ErrSnapshotSourceGroup},
		{"source kind", "kind: VirtualMachineSnapshot\nspec:\n  source: {apiGroup: kubevirt.io, kind: Pod, name: a}\n", "spec.source.kind", ErrSnapshotSourceKind},
		{"source name", "kind: VirtualMachineSnapshot\nspec:\n  source: {apiGroup: kubevirt.io, kind: VirtualMachine}\n", "spec.source.name", ErrSnapshotSourceName},
		{"deletion policy", "kind: VirtualMachineSnapshot\nspec:\n  source: {apiGroup: kubevirt.io, kind: VirtualMachine, name: a}\n  deletionPolicy: Keep\n", "spec.deletionPolicy", ErrSnapshotDeletion},
		{"restore target", "kind: VirtualMachineRestore\nspec:\n  target: {apiGroup: kubevirt.io, kind: VirtualMachineInstance, name: a}\n  virtualMachineSnapshotName: s\n", "spec.target.kind", ErrSnapshotSourceKind},
		{"restore snapshot", "kind: VirtualMachineRestore\nspec:\n  target: {apiGroup: kubevirt.io, kind: VirtualMachine, name: a}\n", "spec.virtualMachineSnapshotName", ErrRestoreSnapshotName},
		{"restore policy", "kind: VirtualMachineRestore\nspec:\n  target: {apiGroup: kubevirt.io, kind: VirtualMachine, name: a}\n  virtualMachineSnapshotName: s\n  volumeRestorePolicy: RandomizeNames\n", "spec.volumeRestorePolicy", ErrRestoreVolumePolicy},
		{"restore readiness", "kind: VirtualMachineRestore\nspec:\n  target: {apiGroup: kubevirt.io, kind: VirtualMachine, name: a}\n  virtualMachineSnapshotName: s\n  targetReadinessPolicy: Now\n", "spec.targetReadinessPolicy", ErrRestoreReadiness},
		{"content snapshot name", "kind: VirtualMachineSnapshotContent\nspec:\n  source: {}\n", "spec.virtualMachineSnapshotName", ErrContentSnapshotName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := parse(t, "apiVersion: snapshot.kubevirt.io/v1beta1\nmetadata:\n  name: x\n"+tc.doc)
			found := false
			for _, d := range s.Diags {
				if errors.Is(d, tc.want) {
					found = true
					if d.Path != tc.path || d.File != "test.yaml" || !strings.Contains(d.Object, "/x") {
						t.Errorf("diagnostic %q at path %q object %q, want path %q", d.Error(), d.Path, d.Object, tc.path)
					}
				}
			}
			if !found {
				t.Errorf("no %v in %v", tc.want, s.Diags)
			}
			if s.Objects[0].Valid {
				t.Error("object is valid, want invalid")
			}
		})
	}
}

func TestValidateSnapshot_unknownFieldOfOwnVersion(t *testing.T) {
	// v1alpha1 has no targetReadinessPolicy: it is checked against its own
	// version's fields, not v1beta1's.
	s := parse(t, `apiVersion: snapshot.kubevirt.io/v1alpha1
kind: VirtualMachineRestore
metadata: {name: r}
spec:
  target: {apiGroup: kubevirt.io, kind: VirtualMachine, name: a}
  virtualMachineSnapshotName: s
  targetReadinessPolicy: StopTarget
`)
	if !errors.Is(s.Diags[0], ErrUnknownField) || s.Diags[0].Path != "spec.targetReadinessPolicy" {
		t.Errorf("diags %v, want unknown field spec.targetReadinessPolicy", s.Diags)
	}
}

func TestValidateSnapshot_committedContentIsReported(t *testing.T) {
	s := parse(t, `apiVersion: snapshot.kubevirt.io/v1beta1
kind: VirtualMachineSnapshotContent
metadata: {name: c}
spec:
  virtualMachineSnapshotName: s
  source: {}
`)
	if s.Diags.HasErrors() || len(s.Diags) != 1 || !errors.Is(s.Diags[0], ErrContentNotUsed) {
		t.Errorf("diags %v, want one warning that the content is not used", s.Diags)
	}
}
