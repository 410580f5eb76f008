package snapshot

import (
	"encoding/json"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
	snapshotv1beta1 "kubevirt.io/api/snapshot/v1beta1"
)

// Annotations on the objects the status shows.
const (
	// AnnotationHostOnly marks what only this host holds: contents the agent
	// made (git has no VirtualMachineSnapshotContent) and retained ones.
	AnnotationHostOnly = "nodevirt.io/host-only"
	// AnnotationMethod says how the volumes were copied: reflink or copy.
	AnnotationMethod = "nodevirt.io/snapshot-method"
	// AnnotationDir is the content directory on the host.
	AnnotationDir = "nodevirt.io/content-dir"
)

var typeSnapshot = metav1.TypeMeta{APIVersion: "snapshot.kubevirt.io/v1beta1", Kind: "VirtualMachineSnapshot"}

func mtime(t *time.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	v := metav1.NewTime(*t)
	return &v
}

func ptr[T any](v T) *T { return &v }

func cond(t snapshotv1beta1.ConditionType, s corev1.ConditionStatus, at *time.Time, reason, msg string) snapshotv1beta1.Condition {
	c := snapshotv1beta1.Condition{Type: t, Status: s, Reason: reason, Message: msg}
	if at != nil {
		c.LastTransitionTime = metav1.NewTime(*at)
	}
	return c
}

func splitKey(key string) (string, string) {
	ns, name, _ := strings.Cut(key, "/")
	return ns, name
}

// Status returns every snapshot and restore of st with a KubeVirt-shaped
// status, and the contents this host holds.
func (m *Manager) Status(st *State) ([]snapshotv1beta1.VirtualMachineSnapshot, []snapshotv1beta1.VirtualMachineSnapshotContent, []snapshotv1beta1.VirtualMachineRestore) {
	m.mu.Lock()
	defer m.mu.Unlock()
	snaps := []snapshotv1beta1.VirtualMachineSnapshot{}
	contents := []snapshotv1beta1.VirtualMachineSnapshotContent{}
	restores := []snapshotv1beta1.VirtualMachineRestore{}
	if st == nil {
		st = &State{}
	}
	for _, s := range st.Snapshots {
		rec := m.snaps[s.Key()]
		if rec != nil && rec.Retained {
			rec = nil
		}
		snaps = append(snaps, snapshotStatus(s, rec, st.VMs[s.Namespace+"/"+s.VM]))
	}
	for _, key := range sortedKeys(m.snaps) {
		if r := m.snaps[key]; r.Phase == phaseSucceeded {
			contents = append(contents, contentOf(r))
		}
	}
	for _, r := range st.Restores {
		restores = append(restores, restoreStatus(r, m.rests[r.Key()]))
	}
	return snaps, contents, restores
}

func snapshotStatus(s *Snapshot, rec *snapRecord, vm *VM) snapshotv1beta1.VirtualMachineSnapshot {
	out := snapshotv1beta1.VirtualMachineSnapshot{TypeMeta: typeSnapshot,
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace}, Spec: s.Spec}
	stt := &snapshotv1beta1.VirtualMachineSnapshotStatus{Phase: snapshotv1beta1.InProgress, ReadyToUse: ptr(false)}
	out.Status = stt
	if vm != nil && vm.UID != "" {
		stt.SourceUID = ptr(types.UID(vm.UID))
	}
	if vm != nil && vm.Elsewhere {
		stt.Phase = snapshotv1beta1.Unknown
		stt.Conditions = []snapshotv1beta1.Condition{cond(snapshotv1beta1.ConditionProgressing, corev1.ConditionFalse, nil, "Source not locked", "the VM runs on another node, which takes the snapshot")}
		return out
	}
	if rec == nil {
		stt.Conditions = []snapshotv1beta1.Condition{
			cond(snapshotv1beta1.ConditionProgressing, corev1.ConditionFalse, nil, "Source not locked", "not applied yet"),
			cond(snapshotv1beta1.ConditionReady, corev1.ConditionFalse, nil, "Not ready", ""),
		}
		return out
	}
	seen := rec.FirstSeen
	out.UID, out.CreationTimestamp = types.UID(rec.UID), metav1.NewTime(seen)
	if rec.VMUID != "" {
		stt.SourceUID = ptr(types.UID(rec.VMUID))
	}
	stt.CreationTime, stt.ReadyToUse = mtime(rec.CreationTime), ptr(rec.Ready)
	if rec.Error != "" {
		stt.Error = &snapshotv1beta1.Error{Time: mtime(rec.ErrorTime), Message: ptr(rec.Error)}
	}
	switch rec.Phase {
	case phaseSucceeded:
		stt.Phase = snapshotv1beta1.Succeeded
		stt.VirtualMachineSnapshotContentName = ptr(ContentName(rec.UID))
		ready := cond(snapshotv1beta1.ConditionReady, corev1.ConditionTrue, rec.CreationTime, "Ready", "")
		if !rec.Ready {
			ready = cond(snapshotv1beta1.ConditionReady, corev1.ConditionFalse, rec.ErrorTime, "Not ready", rec.Error)
		}
		stt.Conditions = []snapshotv1beta1.Condition{
			cond(snapshotv1beta1.ConditionProgressing, corev1.ConditionFalse, rec.CreationTime, "Operation complete", ""), ready}
		vols := &snapshotv1beta1.SnapshotVolumesLists{ExcludedVolumes: rec.Excluded}
		for _, v := range rec.Volumes {
			vols.IncludedVolumes = append(vols.IncludedVolumes, v.Name)
		}
		stt.SnapshotVolumes = vols
		if len(rec.Excluded) > 0 {
			stt.Indications = []snapshotv1beta1.Indication{snapshotv1beta1.VMSnapshotPartialSnapshotIndication}
			stt.SourceIndications = []snapshotv1beta1.SourceIndication{{Indication: snapshotv1beta1.VMSnapshotPartialSnapshotIndication,
				Message: "only DataVolume and PersistentVolumeClaim volumes are in the snapshot; not included: " + strings.Join(rec.Excluded, ", ")}}
		}
	case phaseFailed:
		stt.Phase = snapshotv1beta1.Failed
		stt.Conditions = []snapshotv1beta1.Condition{
			cond(snapshotv1beta1.ConditionProgressing, corev1.ConditionFalse, rec.ErrorTime, "Operation failed", ""),
			cond(snapshotv1beta1.ConditionReady, corev1.ConditionFalse, rec.ErrorTime, "Not ready", ""),
			cond(snapshotv1beta1.ConditionFailure, corev1.ConditionTrue, rec.ErrorTime, rec.Error, ""),
		}
	default:
		stt.Conditions = []snapshotv1beta1.Condition{
			cond(snapshotv1beta1.ConditionProgressing, corev1.ConditionFalse, &seen, "Source not locked", rec.Waiting),
			cond(snapshotv1beta1.ConditionReady, corev1.ConditionFalse, &seen, "Not ready", ""),
		}
	}
	return out
}

// contentOf is the VirtualMachineSnapshotContent of a taken snapshot, as
// KubeVirt's controller would write it (and as content.json holds it).
func contentOf(r *snapRecord) snapshotv1beta1.VirtualMachineSnapshotContent {
	ns, name := splitKey(r.Key)
	method := ""
	for _, v := range r.Volumes {
		if method == "" || v.Method == "copy" {
			method = v.Method
		}
	}
	c := snapshotv1beta1.VirtualMachineSnapshotContent{
		TypeMeta: metav1.TypeMeta{APIVersion: "snapshot.kubevirt.io/v1beta1", Kind: "VirtualMachineSnapshotContent"},
		ObjectMeta: metav1.ObjectMeta{Name: ContentName(r.UID), Namespace: ns, CreationTimestamp: metav1.NewTime(r.FirstSeen),
			Annotations: map[string]string{AnnotationHostOnly: "true", AnnotationDir: r.Dir}},
		Spec:   snapshotv1beta1.VirtualMachineSnapshotContentSpec{VirtualMachineSnapshotName: ptr(name)},
		Status: &snapshotv1beta1.VirtualMachineSnapshotContentStatus{CreationTime: mtime(r.CreationTime), ReadyToUse: ptr(r.Ready)},
	}
	if method != "" {
		c.Annotations[AnnotationMethod] = method
	}
	vm := &snapshotv1beta1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Name: r.VM, Namespace: ns, UID: types.UID(r.VMUID)}}
	if len(r.VMSpec) > 0 {
		var spec kubevirtv1.VirtualMachineSpec
		if json.Unmarshal(r.VMSpec, &spec) == nil {
			vm.Spec = spec
		}
	}
	c.Spec.Source.VirtualMachine = vm
	for _, v := range r.Volumes {
		_, claim := splitKey(v.Claim)
		vsn := volumeSnapshotName(r.UID, v.Name)
		c.Spec.VolumeBackups = append(c.Spec.VolumeBackups, snapshotv1beta1.VolumeBackup{VolumeName: v.Name,
			PersistentVolumeClaim: snapshotv1beta1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: claim, Namespace: ns}},
			VolumeSnapshotName:    ptr(vsn)})
		c.Status.VolumeSnapshotStatus = append(c.Status.VolumeSnapshotStatus, snapshotv1beta1.VolumeSnapshotStatus{
			VolumeSnapshotName: vsn, CreationTime: mtime(r.CreationTime), ReadyToUse: ptr(r.Ready)})
	}
	if r.Error != "" {
		c.Status.Error = &snapshotv1beta1.Error{Time: mtime(r.ErrorTime), Message: ptr(r.Error)}
	}
	return c
}

func restoreStatus(r *Restore, rec *restoreRecord) snapshotv1beta1.VirtualMachineRestore {
	out := snapshotv1beta1.VirtualMachineRestore{
		TypeMeta:   metav1.TypeMeta{APIVersion: "snapshot.kubevirt.io/v1beta1", Kind: "VirtualMachineRestore"},
		ObjectMeta: metav1.ObjectMeta{Name: r.Name, Namespace: r.Namespace}, Spec: r.Spec}
	stt := &snapshotv1beta1.VirtualMachineRestoreStatus{Complete: ptr(false)}
	out.Status = stt
	if rec == nil {
		stt.Conditions = []snapshotv1beta1.Condition{
			cond(snapshotv1beta1.ConditionProgressing, corev1.ConditionTrue, nil, "Initializing VirtualMachineRestore", "not applied yet"),
			cond(snapshotv1beta1.ConditionReady, corev1.ConditionFalse, nil, "Initializing VirtualMachineRestore", "")}
		return out
	}
	out.UID, out.CreationTimestamp = types.UID(rec.UID), metav1.NewTime(rec.FirstSeen)
	switch {
	case rec.Complete:
		stt.Complete, stt.RestoreTime = ptr(true), mtime(rec.RestoreTime)
		stt.Conditions = []snapshotv1beta1.Condition{
			cond(snapshotv1beta1.ConditionProgressing, corev1.ConditionFalse, rec.RestoreTime, "Operation complete", rec.Note),
			cond(snapshotv1beta1.ConditionReady, corev1.ConditionTrue, rec.RestoreTime, "Operation complete", "")}
		if rec.Hash != r.Hash {
			stt.Conditions[0].Message = "the spec changed after the restore completed; it is not run again"
		}
		for _, v := range rec.Restores {
			vr := snapshotv1beta1.VolumeRestore{VolumeName: v.Volume, PersistentVolumeClaimName: v.Claim, VolumeSnapshotName: v.Snapshot}
			if v.DataVolume != "" {
				vr.DataVolumeName = ptr(v.DataVolume)
			}
			stt.Restores = append(stt.Restores, vr)
		}
	case rec.Failed:
		stt.Conditions = []snapshotv1beta1.Condition{
			cond(snapshotv1beta1.ConditionProgressing, corev1.ConditionFalse, nil, "Operation failed", rec.Error),
			cond(snapshotv1beta1.ConditionReady, corev1.ConditionFalse, nil, "Operation failed", rec.Error)}
	default:
		msg := rec.Waiting
		if rec.Error != "" {
			msg = rec.Error
		}
		stt.Conditions = []snapshotv1beta1.Condition{
			cond(snapshotv1beta1.ConditionProgressing, corev1.ConditionTrue, &rec.FirstSeen, "Waiting for target to be ready", msg),
			cond(snapshotv1beta1.ConditionReady, corev1.ConditionFalse, &rec.FirstSeen, "Not ready", msg)}
	}
	return out
}
