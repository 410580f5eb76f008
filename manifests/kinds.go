package manifests

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	instancetypev1beta1 "kubevirt.io/api/instancetype/v1beta1"
	snapshotv1alpha1 "kubevirt.io/api/snapshot/v1alpha1"
	snapshotv1beta1 "kubevirt.io/api/snapshot/v1beta1"
	cdiv1alpha1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1alpha1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
)

// kindInfo says how to decode one apiVersion/kind.
type kindInfo struct {
	apiVersion, kind string
	typ              reflect.Type
	// cluster: the kind has no namespace.
	cluster bool
	// partial: the struct is this package's own subset of a CRD whose Go module
	// is not available; fields it lacks are warnings, not errors.
	partial bool
	// as is the type the checked document is read into when it differs
	// from typ: an older served version with the same JSON names
	// (snapshot.kubevirt.io/v1alpha1 read as v1beta1).
	as reflect.Type
	// to is the apiVersion the value is converted to when it differs from
	// apiVersion: the one the rest of nodevirt reads.
	to string
	// convert turns a decoded value of a version whose fields moved into
	// the version nodevirt reads; nil when as (or typ) is already it.
	convert func(o *Object, v any) (any, []conversionNote)
}

// conversionNote is what a conversion tells the user about a field it read
// from a place other than its version's own (a warning at path).
type conversionNote struct {
	path string
	err  error
}

// valueType is the Go type an object of this kind is decoded into.
func (k kindInfo) valueType() reflect.Type {
	if k.as != nil {
		return k.as
	}
	return k.typ
}

// Versions nodevirt reads for the kinds it supports, and the conversions
// between them. Every version the upstream projects still serve is here:
//   - kubevirt.io serves v1 and the deprecated v1alpha3, with one schema
//     (kubevirt.io/api core/v1 ApiSupportedVersions);
//   - instancetype.kubevirt.io serves only v1beta1 since v1alpha1 and
//     v1alpha2 were removed;
//   - snapshot.kubevirt.io serves v1alpha1 and v1beta1, same JSON names;
//   - cdi.kubevirt.io serves v1beta1, and v1alpha1 only for the CDI kind
//     (whose v1alpha1 spec is the v1beta1 one);
//   - hco.kubevirt.io serves v1beta1 and v1, whose spec groups the same
//     settings under virtualization, storage and security;
//   - hostpathprovisioner.kubevirt.io serves v1alpha1 and v1beta1; v1alpha1
//     is v1beta1 without storagePools.
const (
	apiKubeVirt     = "kubevirt.io/v1"
	apiInstancetype = "instancetype.kubevirt.io/v1beta1"
	apiSnapshot     = "snapshot.kubevirt.io/v1beta1"
	apiCDI          = "cdi.kubevirt.io/v1beta1"
	apiHCO          = "hco.kubevirt.io/v1beta1"
	apiHPP          = "hostpathprovisioner.kubevirt.io/v1beta1"
)

// kinds is the table of served apiVersion/kind pairs. A function rather than
// a package variable so nothing global can be changed at run time.
func kinds() []kindInfo {
	return []kindInfo{
		{apiVersion: apiKubeVirt, kind: "VirtualMachine", typ: reflect.TypeFor[kubevirtv1.VirtualMachine]()},
		{apiVersion: apiKubeVirt, kind: "VirtualMachineInstance", typ: reflect.TypeFor[kubevirtv1.VirtualMachineInstance]()},
		{apiVersion: "kubevirt.io/v1alpha3", kind: "VirtualMachine", typ: reflect.TypeFor[kubevirtv1.VirtualMachine](), to: apiKubeVirt},
		{apiVersion: "kubevirt.io/v1alpha3", kind: "VirtualMachineInstance", typ: reflect.TypeFor[kubevirtv1.VirtualMachineInstance](), to: apiKubeVirt},

		{apiVersion: apiInstancetype, kind: "VirtualMachineInstancetype", typ: reflect.TypeFor[instancetypev1beta1.VirtualMachineInstancetype]()},
		{apiVersion: apiInstancetype, kind: "VirtualMachineClusterInstancetype", typ: reflect.TypeFor[instancetypev1beta1.VirtualMachineClusterInstancetype](), cluster: true},
		{apiVersion: apiInstancetype, kind: "VirtualMachinePreference", typ: reflect.TypeFor[instancetypev1beta1.VirtualMachinePreference]()},
		{apiVersion: apiInstancetype, kind: "VirtualMachineClusterPreference", typ: reflect.TypeFor[instancetypev1beta1.VirtualMachineClusterPreference](), cluster: true},

		{apiVersion: apiSnapshot, kind: "VirtualMachineSnapshot", typ: reflect.TypeFor[snapshotv1beta1.VirtualMachineSnapshot]()},
		{apiVersion: apiSnapshot, kind: "VirtualMachineSnapshotContent", typ: reflect.TypeFor[snapshotv1beta1.VirtualMachineSnapshotContent]()},
		{apiVersion: apiSnapshot, kind: "VirtualMachineRestore", typ: reflect.TypeFor[snapshotv1beta1.VirtualMachineRestore]()},
		// Checked against its own fields, read as v1beta1.
		{apiVersion: "snapshot.kubevirt.io/v1alpha1", kind: "VirtualMachineSnapshot", typ: reflect.TypeFor[snapshotv1alpha1.VirtualMachineSnapshot](), as: reflect.TypeFor[snapshotv1beta1.VirtualMachineSnapshot](), to: apiSnapshot},
		{apiVersion: "snapshot.kubevirt.io/v1alpha1", kind: "VirtualMachineSnapshotContent", typ: reflect.TypeFor[snapshotv1alpha1.VirtualMachineSnapshotContent](), as: reflect.TypeFor[snapshotv1beta1.VirtualMachineSnapshotContent](), to: apiSnapshot},
		{apiVersion: "snapshot.kubevirt.io/v1alpha1", kind: "VirtualMachineRestore", typ: reflect.TypeFor[snapshotv1alpha1.VirtualMachineRestore](), as: reflect.TypeFor[snapshotv1beta1.VirtualMachineRestore](), to: apiSnapshot},

		{apiVersion: apiCDI, kind: "DataVolume", typ: reflect.TypeFor[cdiv1beta1.DataVolume]()},
		{apiVersion: apiCDI, kind: "StorageProfile", typ: reflect.TypeFor[cdiv1beta1.StorageProfile](), cluster: true},
		{apiVersion: apiCDI, kind: "CDI", typ: reflect.TypeFor[cdiv1beta1.CDI](), cluster: true},
		{apiVersion: "cdi.kubevirt.io/v1alpha1", kind: "CDI", typ: reflect.TypeFor[cdiv1alpha1.CDI](), as: reflect.TypeFor[cdiv1beta1.CDI](), cluster: true, to: apiCDI},

		{apiVersion: "v1", kind: "PersistentVolume", typ: reflect.TypeFor[corev1.PersistentVolume](), cluster: true},
		{apiVersion: "v1", kind: "PersistentVolumeClaim", typ: reflect.TypeFor[corev1.PersistentVolumeClaim]()},
		{apiVersion: "v1", kind: "Node", typ: reflect.TypeFor[corev1.Node](), cluster: true},
		{apiVersion: "v1", kind: "Secret", typ: reflect.TypeFor[corev1.Secret]()},
		{apiVersion: "v1", kind: "ConfigMap", typ: reflect.TypeFor[corev1.ConfigMap]()},
		{apiVersion: "v1", kind: "Namespace", typ: reflect.TypeFor[corev1.Namespace](), cluster: true},

		{apiVersion: "storage.k8s.io/v1", kind: "StorageClass", typ: reflect.TypeFor[storagev1.StorageClass](), cluster: true},
		{apiVersion: "k8s.cni.cncf.io/v1", kind: "NetworkAttachmentDefinition", typ: reflect.TypeFor[nadv1.NetworkAttachmentDefinition]()},

		// Read for its cluster-wide SMBIOS values; its other fields are warned.
		{apiVersion: apiKubeVirt, kind: "KubeVirt", typ: reflect.TypeFor[KubeVirt](), partial: true},
		{apiVersion: apiHCO, kind: "HyperConverged", typ: reflect.TypeFor[HyperConverged](), partial: true},
		{apiVersion: "hco.kubevirt.io/v1", kind: "HyperConverged", typ: reflect.TypeFor[HyperConvergedV1](), partial: true, to: apiHCO, convert: hyperConvergedFromV1},
		{apiVersion: apiHPP, kind: "HostPathProvisioner", typ: reflect.TypeFor[HostPathProvisioner](), partial: true},
		{apiVersion: "hostpathprovisioner.kubevirt.io/v1alpha1", kind: "HostPathProvisioner", typ: reflect.TypeFor[HostPathProvisionerV1alpha1](), as: reflect.TypeFor[HostPathProvisioner](), partial: true, to: apiHPP},
		{apiVersion: "machineconfiguration.openshift.io/v1", kind: "MachineConfig", typ: reflect.TypeFor[MachineConfig](), cluster: true, partial: true},
	}
}

// removedVersions are the apiVersions upstream once served for a kind
// nodevirt reads, and no longer does: a manifest written for them would be
// refused by the cluster too, so it is refused naming the version to use.
func removedVersions() []struct{ apiVersion, kind, use string } {
	return []struct{ apiVersion, kind, use string }{
		{"kubevirt.io/v1alpha1", "VirtualMachine", apiKubeVirt},
		{"kubevirt.io/v1alpha1", "VirtualMachineInstance", apiKubeVirt},
		{"kubevirt.io/v1alpha2", "VirtualMachine", apiKubeVirt},
		{"kubevirt.io/v1alpha2", "VirtualMachineInstance", apiKubeVirt},
		{"instancetype.kubevirt.io/v1alpha1", "VirtualMachineInstancetype", apiInstancetype},
		{"instancetype.kubevirt.io/v1alpha1", "VirtualMachineClusterInstancetype", apiInstancetype},
		{"instancetype.kubevirt.io/v1alpha1", "VirtualMachinePreference", apiInstancetype},
		{"instancetype.kubevirt.io/v1alpha1", "VirtualMachineClusterPreference", apiInstancetype},
		{"instancetype.kubevirt.io/v1alpha2", "VirtualMachineInstancetype", apiInstancetype},
		{"instancetype.kubevirt.io/v1alpha2", "VirtualMachineClusterInstancetype", apiInstancetype},
		{"instancetype.kubevirt.io/v1alpha2", "VirtualMachinePreference", apiInstancetype},
		{"instancetype.kubevirt.io/v1alpha2", "VirtualMachineClusterPreference", apiInstancetype},
		{"cdi.kubevirt.io/v1alpha1", "DataVolume", apiCDI},
		{"hco.kubevirt.io/v1alpha1", "HyperConverged", "hco.kubevirt.io/v1"},
		{"storage.k8s.io/v1beta1", "StorageClass", "storage.k8s.io/v1"},
	}
}

// kindTable is kinds() built once, as lookupKind runs for every document.
// Only lookupKind reads it, and it hands out copies of its entries.
var kindTable = sync.OnceValue(kinds)

// lookupKind returns the decoding rules for an apiVersion and kind.
func lookupKind(apiVersion, kind string) (kindInfo, bool) {
	for _, k := range kindTable() {
		if k.apiVersion == apiVersion && k.kind == kind {
			return k, true
		}
	}
	return kindInfo{}, false
}

// NotServedError refuses an apiVersion upstream no longer serves for a kind
// nodevirt reads.
type NotServedError struct {
	APIVersion, Kind string
	// Use is the apiVersion to write instead.
	Use string
}

func (e *NotServedError) Error() string {
	return fmt.Sprintf("apiVersion %s is not served for kind %s; use %s", e.APIVersion, e.Kind, e.Use)
}

// Is makes errors.Is(err, ErrNotServed) hold.
func (e *NotServedError) Is(target error) bool { return target == ErrNotServed }

// UnsupportedKindError refuses a kind the upstream projects serve but
// nodevirt does not run, naming why.
type UnsupportedKindError struct {
	APIVersion, Kind, Why string
}

func (e *UnsupportedKindError) Error() string {
	return fmt.Sprintf("kind %s (%s) is not supported by nodevirt: %s", e.Kind, e.APIVersion, e.Why)
}

// Is makes errors.Is(err, ErrUnsupportedKind) hold.
func (e *UnsupportedKindError) Is(target error) bool { return target == ErrUnsupportedKind }

// unsupportedKinds are kinds of the KubeVirt, CDI and OpenShift
// Virtualization APIs that nodevirt knows and refuses by name. They name no
// VM nodevirt could have defined, so unlike an unknown kind they do not
// suspend pruning.
func unsupportedKinds() []struct {
	group, kind string
	cluster     bool
	why         string
} {
	const (
		cluster     = "it configures a cluster component; nodevirt is configured by its flags and the HyperConverged object"
		replicas    = "it makes VMs from a template in a cluster; declare each VirtualMachine instead"
		clusterOnly = "it needs the cluster's controllers"
	)
	return []struct {
		group, kind string
		cluster     bool
		why         string
	}{
		{"kubevirt.io", "VirtualMachineInstanceReplicaSet", false, replicas},
		{"kubevirt.io", "VirtualMachineInstanceMigration", false, "live migration needs a second host"},
		{"kubevirt.io", "VirtualMachineInstancePreset", false, "presets are deprecated in KubeVirt; use an instancetype or preference"},
		{"pool.kubevirt.io", "VirtualMachinePool", false, replicas},
		{"clone.kubevirt.io", "VirtualMachineClone", false, clusterOnly},
		{"export.kubevirt.io", "VirtualMachineExport", false, clusterOnly},
		{"migrations.kubevirt.io", "MigrationPolicy", true, "live migration needs a second host"},
		{"backup.kubevirt.io", "VirtualMachineBackup", false, "incremental backups are not supported; use a VirtualMachineSnapshot"},
		{"backup.kubevirt.io", "VirtualMachineBackupTracker", false, "incremental backups are not supported; use a VirtualMachineSnapshot"},
		{"cdi.kubevirt.io", "CDIConfig", true, "CDI derives it from the CDI object; set spec.config of the CDI (or the HyperConverged) object"},
		{"upload.cdi.kubevirt.io", "UploadTokenRequest", false, "it is a request to CDI's upload proxy, not an object; upload with nodevirt image-upload"},
		{"cdi.kubevirt.io", "DataSource", false, "a DataVolume's sourceRef is not supported; use spec.source"},
		{"cdi.kubevirt.io", "DataImportCron", false, "scheduled imports are not supported; import with a DataVolume"},
		{"cdi.kubevirt.io", "ObjectTransfer", true, clusterOnly},
		{"cdi.kubevirt.io", "VolumeImportSource", false, "volume populators are not supported; use a DataVolume"},
		{"cdi.kubevirt.io", "VolumeUploadSource", false, "volume populators are not supported; use a DataVolume"},
		{"cdi.kubevirt.io", "VolumeCloneSource", false, "volume populators are not supported; use a DataVolume"},
		{"ssp.kubevirt.io", "SSP", false, cluster},
		{"networkaddonsoperator.network.kubevirt.io", "NetworkAddonsConfig", true, cluster},
	}
}

// unservedKind says why apiVersion/kind is not in the table: a version
// upstream removed (NotServedError), a kind upstream serves that nodevirt
// refuses (UnsupportedKindError), a kind nodevirt reads under other versions
// only (ErrUnknownKind naming them), or a kind it does not know. For the
// first two, info holds the kind's scope.
func unservedKind(apiVersion, kind string) (kindInfo, error) {
	for _, r := range removedVersions() {
		if r.apiVersion == apiVersion && r.kind == kind {
			info, _ := lookupKind(r.use, kind)
			return info, &NotServedError{APIVersion: apiVersion, Kind: kind, Use: r.use}
		}
	}
	group, _, _ := strings.Cut(apiVersion, "/")
	for _, u := range unsupportedKinds() {
		if u.group == group && u.kind == kind && strings.Contains(apiVersion, "/") {
			return kindInfo{apiVersion: apiVersion, kind: kind, cluster: u.cluster}, &UnsupportedKindError{APIVersion: apiVersion, Kind: kind, Why: u.why}
		}
	}
	var served []string
	for _, k := range kinds() {
		if k.kind == kind {
			served = append(served, k.apiVersion)
		}
	}
	if len(served) > 0 {
		return kindInfo{}, fmt.Errorf("%w: apiVersion %q does not serve kind %s; %s is read from apiVersion %s",
			ErrUnknownKind, apiVersion, kind, kind, strings.Join(served, " or "))
	}
	return kindInfo{}, fmt.Errorf("%w %q in apiVersion %q", ErrUnknownKind, kind, apiVersion)
}
