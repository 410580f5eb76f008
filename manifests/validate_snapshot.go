package manifests

import (
	corev1 "k8s.io/api/core/v1"
	snapshotv1beta1 "kubevirt.io/api/snapshot/v1beta1"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// vmRef checks a reference to a VirtualMachine (a snapshot's source, a
// restore's target): KubeVirt snapshots and restores nothing else.
func (v *validator) vmRef(p string, ref corev1.TypedLocalObjectReference) {
	if ref.APIGroup == nil || *ref.APIGroup != "kubevirt.io" {
		got := "none"
		if ref.APIGroup != nil {
			got = quote(*ref.APIGroup)
		}
		v.failf(p+".apiGroup", ErrSnapshotSourceGroup, "got %s", got)
	}
	if ref.Kind != "VirtualMachine" {
		v.failf(p+".kind", ErrSnapshotSourceKind, "got %q", ref.Kind)
	}
	if ref.Name == "" {
		v.fail(p+".name", ErrSnapshotSourceName)
	}
}

func validateSnapshot(o *Object, s *snapshotv1beta1.VirtualMachineSnapshot) diag.List {
	v := &validator{o: o}
	v.vmRef("spec.source", s.Spec.Source)
	if dp := s.Spec.DeletionPolicy; dp != nil {
		switch *dp {
		case snapshotv1beta1.VirtualMachineSnapshotContentDelete, snapshotv1beta1.VirtualMachineSnapshotContentRetain:
		default:
			v.failf("spec.deletionPolicy", ErrSnapshotDeletion, "got %q", *dp)
		}
	}
	if fd := s.Spec.FailureDeadline; fd != nil && fd.Duration < 0 {
		v.failf("spec.failureDeadline", ErrSnapshotDeadline, "got %s", fd.Duration)
	}
	return v.diags
}

func validateRestore(o *Object, r *snapshotv1beta1.VirtualMachineRestore) diag.List {
	v := &validator{o: o}
	v.vmRef("spec.target", r.Spec.Target)
	if r.Spec.VirtualMachineSnapshotName == "" {
		v.fail("spec.virtualMachineSnapshotName", ErrRestoreSnapshotName)
	}
	if tp := r.Spec.TargetReadinessPolicy; tp != nil {
		switch *tp {
		case snapshotv1beta1.VirtualMachineRestoreStopTarget, snapshotv1beta1.VirtualMachineRestoreWaitGracePeriodAndFail,
			snapshotv1beta1.VirtualMachineRestoreFailImmediate, snapshotv1beta1.VirtualMachineRestoreWaitEventually:
		default:
			v.failf("spec.targetReadinessPolicy", ErrRestoreReadiness, "got %q", *tp)
		}
	}
	if vp := r.Spec.VolumeRestorePolicy; vp != nil && *vp != snapshotv1beta1.VolumeRestorePolicyInPlace {
		v.failf("spec.volumeRestorePolicy", ErrRestoreVolumePolicy, "got %q", *vp)
	}
	if len(r.Spec.VolumeRestoreOverrides) > 0 {
		v.fail("spec.volumeRestoreOverrides", ErrRestoreOverrides)
	}
	if len(r.Spec.Patches) > 0 {
		v.fail("spec.patches", ErrRestorePatches)
	}
	return v.diags
}

// validateSnapshotContent checks a committed content. KubeVirt's controller
// writes these; the agent makes its own, so a committed one is only
// checked and reported.
func validateSnapshotContent(o *Object, c *snapshotv1beta1.VirtualMachineSnapshotContent) diag.List {
	v := &validator{o: o}
	if c.Spec.VirtualMachineSnapshotName == nil || *c.Spec.VirtualMachineSnapshotName == "" {
		v.fail("spec.virtualMachineSnapshotName", ErrContentSnapshotName)
	}
	for i, b := range c.Spec.VolumeBackups {
		if b.VolumeName == "" {
			v.fail(joinIndex("spec.volumeBackups", i)+".volumeName", ErrSnapshotVolumeMissing)
		}
	}
	v.diags = append(v.diags, o.Warnf("", "%w", ErrContentNotUsed))
	return v.diags
}
