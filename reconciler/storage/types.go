package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// Provisioners nodevirt knows.
const (
	// ProvisionerHostPath is the hostpath provisioner (legacy and CSI names).
	ProvisionerHostPath    = "kubevirt.io/hostpath-provisioner"
	ProvisionerHostPathCSI = "kubevirt.io.hostpath-provisioner"
	// ProvisionerNone marks classes of statically created PVs.
	ProvisionerNone = "kubernetes.io/no-provisioner"
	// ProvisionerRBD is OpenShift Data Foundation's Ceph RBD driver.
	ProvisionerRBD = "openshift-storage.rbd.csi.ceph.com"
)

// Volume modes, access modes, reclaim policies and binding modes as the
// manifests spell them.
const (
	Filesystem = "Filesystem"
	Block      = "Block"

	ReadWriteOnce = "ReadWriteOnce"
	ReadWriteMany = "ReadWriteMany"

	Delete = "Delete"
	Retain = "Retain"

	Immediate            = "Immediate"
	WaitForFirstConsumer = "WaitForFirstConsumer"
)

// DefaultFilesystemOverhead is CDI's default share of a Filesystem volume
// kept for file system metadata (seed 8.18.4).
const DefaultFilesystemOverhead = 0.055

// AnnotationDefaultClass marks the default StorageClass.
const AnnotationDefaultClass = "storageclass.kubernetes.io/is-default-class"

// AnnotationProvisionOnNode names the node an Immediate hostpath claim is
// provisioned on (the legacy hostpath provisioner's annotation).
const AnnotationProvisionOnNode = "kubevirt.io/provisionOnNode"

// State is the desired storage of one node.
type State struct {
	Classes map[string]*Class `json:"classes"`
	// DefaultClass is the class of claims that name none.
	DefaultClass string `json:"defaultClass,omitempty"`
	// HostPath is the hostpath provisioner; nil without a HostPathProvisioner.
	HostPath *HostPath `json:"hostPath,omitempty"`
	// Volumes are the static PersistentVolumes for this node, by name.
	Volumes map[string]*Volume `json:"volumes"`
	// Claims are the claims this node serves, by "namespace/name".
	Claims map[string]*Claim `json:"claims"`
	// Invalid holds record keys (see Key*) of objects whose manifests are
	// invalid: they keep their last good state and are never deleted.
	Invalid map[string]string `json:"invalid,omitempty"`
	// Elsewhere holds claims whose consumers run on other nodes: what this
	// node holds of them is kept, neither provisioned nor deleted.
	Elsewhere map[string]string `json:"elsewhere,omitempty"`
	// Away holds static PersistentVolumes whose node affinity selects
	// another node: the data this node holds of one is what that node
	// pulls when the volume moves, so it is kept, not forgotten. Left out
	// of the plan's JSON: every other node's volume would be listed.
	Away     map[string]AwayVolume `json:"-"`
	Settings Settings              `json:"settings"`
	// PruneSuspended: a file failed to parse, so nothing is deleted.
	PruneSuspended bool `json:"pruneSuspended,omitempty"`
	// AllowPruneAll confirms a revision that removes every claim with data.
	AllowPruneAll bool      `json:"allowPruneAll,omitempty"`
	Diags         diag.List `json:"-"`
}

// AwayVolume is a static PersistentVolume placed on another node.
type AwayVolume struct {
	Reason       string                     `json:"reason"`
	NodeAffinity *corev1.VolumeNodeAffinity `json:"nodeAffinity,omitempty"`
}

// Settings are the cluster-wide CDI settings (CDI spec.config and the
// HyperConverged's storage fields).
type Settings struct {
	// Overhead is the global filesystem overhead; ClassOverhead per class.
	Overhead      float64            `json:"overhead"`
	ClassOverhead map[string]float64 `json:"classOverhead,omitempty"`
	// ScratchClass is scratchSpaceStorageClass.
	ScratchClass       string   `json:"scratchClass,omitempty"`
	InsecureRegistries []string `json:"insecureRegistries,omitempty"`
	// Limits are storageWorkloads limits for import work.
	Limits Limits `json:"limits,omitzero"`
	// Preallocation is CDI's global spec.config.preallocation.
	Preallocation bool `json:"preallocation,omitempty"`
}

// Limits bound import work (SPEC S-12).
type Limits struct {
	CPUMillis   int64 `json:"cpuMillis,omitempty"`
	MemoryBytes int64 `json:"memoryBytes,omitempty"`
}

// Class is one StorageClass.
type Class struct {
	Name          string            `json:"name"`
	Object        string            `json:"object"`
	Provisioner   string            `json:"provisioner"`
	Parameters    map[string]string `json:"parameters,omitempty"`
	ReclaimPolicy string            `json:"reclaimPolicy"`
	BindingMode   string            `json:"volumeBindingMode"`
	Default       bool              `json:"default,omitempty"`
	// Profile is the StorageProfile's claimPropertySets, or what CDI knows
	// of the provisioner.
	Profile []PropertySet `json:"profile,omitempty"`
	// Features is the class's row of the seed's storage feature matrix.
	Features Features `json:"features"`
	file     string
	line     int
}

// PropertySet is one StorageProfile claimPropertySet.
type PropertySet struct {
	AccessModes []string `json:"accessModes"`
	VolumeMode  string   `json:"volumeMode"`
}

// Immutable is what may not change once a class was used.
func (c *Class) Immutable() ClassSpec {
	return ClassSpec{Provisioner: c.Provisioner, Parameters: c.Parameters, ReclaimPolicy: c.ReclaimPolicy, BindingMode: c.BindingMode}
}

// ClassSpec is the immutable part of a StorageClass.
type ClassSpec struct {
	Provisioner   string            `json:"provisioner"`
	Parameters    map[string]string `json:"parameters,omitempty"`
	ReclaimPolicy string            `json:"reclaimPolicy"`
	BindingMode   string            `json:"volumeBindingMode"`
}

// HostPath is the HostPathProvisioner's backing directory (and named pools).
type HostPath struct {
	Object          string            `json:"object"`
	Path            string            `json:"path,omitempty"`
	UseNamingPrefix bool              `json:"useNamingPrefix,omitempty"`
	Pools           map[string]string `json:"pools,omitempty"`
}

// Volume is one static PersistentVolume.
type Volume struct {
	Name          string   `json:"name"`
	Object        string   `json:"object"`
	Capacity      int64    `json:"capacity"`
	AccessModes   []string `json:"accessModes"`
	VolumeMode    string   `json:"volumeMode"`
	Class         string   `json:"storageClassName,omitempty"`
	ReclaimPolicy string   `json:"reclaimPolicy"`
	// Path is local.path or hostPath.path as written: a directory for a
	// Filesystem volume, /dev/loopN or an allowed device for a Block one.
	Path string `json:"path"`
	// PathField is where Path is written: spec.local.path or spec.hostPath.path.
	PathField string `json:"pathField,omitempty"`
	// Loop: a Block volume backed by a loop device nodevirt manages.
	Loop bool `json:"loop,omitempty"`
	// Device: a Block volume on a host block device the operator allowed
	// (--allowed-block-device), a loop device they attached among them;
	// nodevirt never creates, wipes or detaches it.
	Device bool              `json:"device,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// ClaimRef pre-binds the volume to "namespace/name".
	ClaimRef string `json:"claimRef,omitempty"`
}

// Source kinds of a DataVolume.
const (
	SourceHTTP     = "http"
	SourceRegistry = "registry"
	SourceBlank    = "blank"
	SourcePVC      = "pvc"
	SourceUpload   = "upload"
	// SourcePeer is a moved PersistentVolume's data, pulled from the node
	// that held it before (the request's URL names that node and its
	// SourcePath the volume): not a kind manifests can name.
	SourcePeer = "peer"
)

// Source is where a DataVolume's data comes from.
type Source struct {
	Kind string `json:"kind"`
	URL  string `json:"url,omitempty"`
	// SecretRef and CertConfigMap name objects in the claim's namespace:
	// from the repository when there (SecretData, CAData), else from the
	// agent's secrets directory at import time.
	SecretRef     string   `json:"secretRef,omitempty"`
	CertConfigMap string   `json:"certConfigMap,omitempty"`
	Headers       []string `json:"extraHeaders,omitempty"`
	SecretHeaders []string `json:"secretExtraHeaders,omitempty"`
	Checksum      string   `json:"checksum,omitempty"`
	// Insecure: the registry is in insecureRegistries.
	Insecure     bool   `json:"insecure,omitempty"`
	Architecture string `json:"architecture,omitempty"`
	// CloneOf is the source claim of a pvc source, "namespace/name".
	CloneOf string `json:"cloneOf,omitempty"`

	SecretData map[string][]byte `json:"-"`
	CAData     map[string]string `json:"-"`
}

// Claim is one PersistentVolumeClaim or DataVolume.
type Claim struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Kind is DataVolume or PersistentVolumeClaim; Object is "Kind ns/name".
	Kind   string `json:"kind"`
	Object string `json:"object"`
	// Owner is the VirtualMachine ("VirtualMachine ns/name") whose
	// dataVolumeTemplates hold this DataVolume; it is deleted with it.
	Owner string `json:"owner,omitempty"`
	// Class is the resolved StorageClass name ("" for none).
	Class       string   `json:"storageClassName,omitempty"`
	AccessModes []string `json:"accessModes"`
	VolumeMode  string   `json:"volumeMode"`
	// Request is the storage the manifest asks for; Capacity what the
	// claim gets (Request plus the filesystem overhead with the storage
	// API); DiskSize the size of disk.img in a Filesystem claim.
	Request  int64   `json:"request"`
	Capacity int64   `json:"capacity"`
	DiskSize int64   `json:"diskSize,omitempty"`
	Overhead float64 `json:"overhead,omitempty"`
	// API is "storage" or "pvc" for a DataVolume, "" for a plain claim.
	API        string            `json:"api,omitempty"`
	Selector   map[string]string `json:"selector,omitempty"`
	VolumeName string            `json:"volumeName,omitempty"`
	// Source is nil for a plain PersistentVolumeClaim (a blank disk.img).
	Source      *Source `json:"source,omitempty"`
	Preallocate bool    `json:"preallocation,omitempty"`
	// Consumers are the VMs on this node using the claim.
	Consumers []string `json:"consumers,omitempty"`
	// Immediate: bind now; otherwise only once a consumer runs here.
	Immediate    bool   `json:"immediate,omitempty"`
	ScratchClass string `json:"scratchClass,omitempty"`
	Limits       Limits `json:"limits,omitzero"`
	// Hash covers what decides the claim's data.
	Hash string `json:"hash"`
	File string `json:"-"`
	Line int    `json:"-"`
	// pinnedTo is the kubevirt.io/provisionOnNode annotation.
	pinnedTo string
}

// Key is "namespace/name".
func (c *Claim) Key() string { return c.Namespace + "/" + c.Name }

// IsDataVolume reports whether CDI would populate the claim.
func (c *Claim) IsDataVolume() bool { return c.Kind == "DataVolume" }

func (c *Claim) hash() string {
	v := struct {
		Source      *Source
		VolumeMode  string
		DiskSize    int64
		Class       string
		Preallocate bool
		Request     int64
	}{c.Source, c.VolumeMode, c.DiskSize, c.Class, c.Preallocate, c.Request}
	b, _ := json.Marshal(v)
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:12])
}
