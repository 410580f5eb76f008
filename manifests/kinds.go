package manifests

import (
	"reflect"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	instancetypev1beta1 "kubevirt.io/api/instancetype/v1beta1"
	snapshotv1alpha1 "kubevirt.io/api/snapshot/v1alpha1"
	snapshotv1beta1 "kubevirt.io/api/snapshot/v1beta1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
)

// kindInfo says how to decode one apiVersion/kind.
type kindInfo struct {
	typ reflect.Type
	// cluster: the kind has no namespace.
	cluster bool
	// partial: the struct is this package's own subset of a CRD whose Go module
	// is not available; fields it lacks are warnings, not errors.
	partial bool
	// as is the type the checked document is read into when it differs
	// from typ: an older served version with the same JSON names
	// (snapshot.kubevirt.io/v1alpha1 read as v1beta1).
	as reflect.Type
}

// valueType is the Go type an object of this kind is decoded into.
func (k kindInfo) valueType() reflect.Type {
	if k.as != nil {
		return k.as
	}
	return k.typ
}

type gvk struct{ apiVersion, kind string }

// lookupKind returns the decoding rules for an apiVersion and kind. A function
// rather than a package map so nothing global can be changed at run time.
func lookupKind(apiVersion, kind string) (kindInfo, bool) {
	switch (gvk{apiVersion, kind}) {
	case gvk{"kubevirt.io/v1", "VirtualMachine"}:
		return kindInfo{typ: reflect.TypeFor[kubevirtv1.VirtualMachine]()}, true
	case gvk{"kubevirt.io/v1", "VirtualMachineInstance"}:
		return kindInfo{typ: reflect.TypeFor[kubevirtv1.VirtualMachineInstance]()}, true

	case gvk{"instancetype.kubevirt.io/v1beta1", "VirtualMachineInstancetype"}:
		return kindInfo{typ: reflect.TypeFor[instancetypev1beta1.VirtualMachineInstancetype]()}, true
	case gvk{"instancetype.kubevirt.io/v1beta1", "VirtualMachineClusterInstancetype"}:
		return kindInfo{typ: reflect.TypeFor[instancetypev1beta1.VirtualMachineClusterInstancetype](), cluster: true}, true
	case gvk{"instancetype.kubevirt.io/v1beta1", "VirtualMachinePreference"}:
		return kindInfo{typ: reflect.TypeFor[instancetypev1beta1.VirtualMachinePreference]()}, true
	case gvk{"instancetype.kubevirt.io/v1beta1", "VirtualMachineClusterPreference"}:
		return kindInfo{typ: reflect.TypeFor[instancetypev1beta1.VirtualMachineClusterPreference](), cluster: true}, true

	case gvk{"snapshot.kubevirt.io/v1beta1", "VirtualMachineSnapshot"}:
		return kindInfo{typ: reflect.TypeFor[snapshotv1beta1.VirtualMachineSnapshot]()}, true
	case gvk{"snapshot.kubevirt.io/v1beta1", "VirtualMachineSnapshotContent"}:
		return kindInfo{typ: reflect.TypeFor[snapshotv1beta1.VirtualMachineSnapshotContent]()}, true
	case gvk{"snapshot.kubevirt.io/v1beta1", "VirtualMachineRestore"}:
		return kindInfo{typ: reflect.TypeFor[snapshotv1beta1.VirtualMachineRestore]()}, true
	// v1alpha1 is still served (the seed's examples use it): checked
	// against its own fields, read as v1beta1, whose JSON names are the same.
	case gvk{"snapshot.kubevirt.io/v1alpha1", "VirtualMachineSnapshot"}:
		return kindInfo{typ: reflect.TypeFor[snapshotv1alpha1.VirtualMachineSnapshot](), as: reflect.TypeFor[snapshotv1beta1.VirtualMachineSnapshot]()}, true
	case gvk{"snapshot.kubevirt.io/v1alpha1", "VirtualMachineSnapshotContent"}:
		return kindInfo{typ: reflect.TypeFor[snapshotv1alpha1.VirtualMachineSnapshotContent](), as: reflect.TypeFor[snapshotv1beta1.VirtualMachineSnapshotContent]()}, true
	case gvk{"snapshot.kubevirt.io/v1alpha1", "VirtualMachineRestore"}:
		return kindInfo{typ: reflect.TypeFor[snapshotv1alpha1.VirtualMachineRestore](), as: reflect.TypeFor[snapshotv1beta1.VirtualMachineRestore]()}, true

	case gvk{"cdi.kubevirt.io/v1beta1", "DataVolume"}:
		return kindInfo{typ: reflect.TypeFor[cdiv1beta1.DataVolume]()}, true
	case gvk{"cdi.kubevirt.io/v1beta1", "StorageProfile"}:
		return kindInfo{typ: reflect.TypeFor[cdiv1beta1.StorageProfile](), cluster: true}, true
	case gvk{"cdi.kubevirt.io/v1beta1", "CDI"}:
		return kindInfo{typ: reflect.TypeFor[cdiv1beta1.CDI](), cluster: true}, true

	case gvk{"v1", "PersistentVolume"}:
		return kindInfo{typ: reflect.TypeFor[corev1.PersistentVolume](), cluster: true}, true
	case gvk{"v1", "PersistentVolumeClaim"}:
		return kindInfo{typ: reflect.TypeFor[corev1.PersistentVolumeClaim]()}, true
	case gvk{"v1", "Node"}:
		return kindInfo{typ: reflect.TypeFor[corev1.Node](), cluster: true}, true
	case gvk{"v1", "Secret"}:
		return kindInfo{typ: reflect.TypeFor[corev1.Secret]()}, true
	case gvk{"v1", "ConfigMap"}:
		return kindInfo{typ: reflect.TypeFor[corev1.ConfigMap]()}, true
	case gvk{"v1", "Namespace"}:
		return kindInfo{typ: reflect.TypeFor[corev1.Namespace](), cluster: true}, true

	case gvk{"storage.k8s.io/v1", "StorageClass"}:
		return kindInfo{typ: reflect.TypeFor[storagev1.StorageClass](), cluster: true}, true
	case gvk{"k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition"}:
		return kindInfo{typ: reflect.TypeFor[nadv1.NetworkAttachmentDefinition]()}, true

	case gvk{"kubevirt.io/v1", "KubeVirt"}:
		return kindInfo{typ: reflect.TypeFor[KubeVirt](), partial: true}, true
	case gvk{"hco.kubevirt.io/v1beta1", "HyperConverged"}:
		return kindInfo{typ: reflect.TypeFor[HyperConverged](), partial: true}, true
	case gvk{"hostpathprovisioner.kubevirt.io/v1beta1", "HostPathProvisioner"}:
		return kindInfo{typ: reflect.TypeFor[HostPathProvisioner](), partial: true}, true
	case gvk{"machineconfiguration.openshift.io/v1", "MachineConfig"}:
		return kindInfo{typ: reflect.TypeFor[MachineConfig](), cluster: true, partial: true}, true
	}
	return kindInfo{}, false
}
