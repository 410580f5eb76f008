package storage

import "errors"

// Validation rules of the storage kinds. Each diagnostic wraps one of these,
// so tests and callers tell rules apart with errors.Is.
var (
	ErrProvisionerRequired = errors.New("provisioner is required")
	ErrReclaimPolicy       = errors.New("reclaimPolicy must be Delete or Retain (Recycle is deprecated and not supported)")
	ErrBindingMode         = errors.New("volumeBindingMode must be Immediate or WaitForFirstConsumer")
	// Seed 8.18.2.4: the parameters of a StorageClass cannot be updated
	// once it exists; Kubernetes says "updates to parameters are forbidden".
	ErrClassImmutable = errors.New("updates to parameters are forbidden: a StorageClass cannot change once volumes were provisioned from it; create a class with a new name")
	ErrDefaultClasses = errors.New("more than one StorageClass is marked default; the first by name is used")
	ErrHostPathSingle = errors.New("only one HostPathProvisioner is allowed")

	ErrCapacityRequired   = errors.New("capacity.storage is required")
	ErrAccessModes        = errors.New("accessModes is required")
	ErrAccessMode         = errors.New("access mode must be ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod")
	ErrVolumeMode         = errors.New("volumeMode must be Filesystem or Block")
	ErrVolumeSource       = errors.New("nodevirt provides local and hostPath PersistentVolumes; exactly one of them must be set")
	ErrLocalNodeAffinity  = errors.New("a local volume requires nodeAffinity")
	ErrBlockLoop          = errors.New("a Block PersistentVolume's local.path must be a loop device /dev/loopN, which nodevirt creates and attaches")
	ErrPathAbsolute       = errors.New("path must be absolute")
	ErrStorageRequired    = errors.New("resources.requests.storage is required")
	ErrStorageSize        = errors.New("storage size must be greater than 0")
	ErrPVCAccessModes     = errors.New("accessModes is required when the PVC API is used (spec.pvc)")
	ErrDVPVCStorage       = errors.New("exactly one of spec.pvc and spec.storage must be set")
	ErrDVSource           = errors.New("exactly one of spec.source and spec.sourceRef must be set")
	ErrDVSourceKind       = errors.New("spec.source must have exactly one source type")
	ErrDVSourceRef        = errors.New("sourceRef (DataSource) is not supported by nodevirt; use spec.source")
	ErrDVSourceNotLocal   = errors.New("this source type is not supported by nodevirt: it has no client for it on the host")
	ErrDVURL              = errors.New("url must be an http:// or https:// URL")
	ErrDVRegistryURL      = errors.New("url must be docker://registry/repository:tag (oci-archive is not supported)")
	ErrDVRegistryStream   = errors.New("imageStream is an OpenShift cluster object; use url")
	ErrDVArchive          = errors.New("contentType archive is not supported by nodevirt; only kubevirt disk images")
	ErrDVCheckpoints      = errors.New("checkpoints (multi-stage imports from imageio or VDDK) are not supported")
	ErrDVChecksum         = errors.New("checksum must be algorithm:hex with md5, sha1, sha256 or sha512")
	ErrDVCloneSource      = errors.New("the clone source is not a claim in the repository")
	ErrDVProfile          = errors.New("the storage class's provisioner is not recognised and its StorageProfile has no claimPropertySets, so accessModes and volumeMode are unknown: the requested storage is not allocated (set them in the DataVolume or in spec.claimPropertySets of the StorageProfile)")
	ErrDVImmutable        = errors.New("the DataVolume's data cannot change after it was imported; give it a new name to import again")
	ErrOverhead           = errors.New("filesystem overhead must be a decimal between 0 and 1 (e.g. \"0.055\")")
	ErrSecretInGit        = errors.New("credentials in a Secret in git are readable by everyone who can read the repository; keep them in the agent's secrets directory or encrypt them with SOPS")
	ErrClaimMissing       = errors.New("no PersistentVolumeClaim or DataVolume of this name is in the repository; the VM waits for it")
	ErrLiveMigrateRWO     = errors.New("VMs using a storage class with the ReadWriteOnce access mode cannot be live migrated; do not set evictionStrategy LiveMigrate (seed 8.18.1)")
	ErrHostPathBlock      = errors.New("the hostpath provisioner provides Filesystem volumes only")
	ErrNoHostPath         = errors.New("a kubevirt.io/hostpath-provisioner class needs a HostPathProvisioner with spec.pathConfig.path or spec.storagePools")
	ErrHostPathPool       = errors.New("the class's storagePool is not one of the HostPathProvisioner's spec.storagePools")
	ErrClaimDuplicate     = errors.New("a DataVolume and a PersistentVolumeClaim (or a VM's dataVolumeTemplate) have the same name")
	ErrDataVolumeTemplate = errors.New("a dataVolumeTemplate needs metadata.name")
)
