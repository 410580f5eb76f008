package storage

import (
	"fmt"
	"slices"
)

// Features is one row of the seed's storage feature matrix (8.18.1.1, table
// 8.7): what OpenShift Virtualization offers on a kind of storage.
type Features struct {
	// Kind is the matrix row, as the seed names it.
	Kind                 string `json:"kind"`
	LiveMigration        string `json:"liveMigration"`
	HostAssistedClone    string `json:"hostAssistedClone"`
	StorageAssistedClone string `json:"storageAssistedClone"`
	Snapshot             string `json:"snapshot"`
}

// The matrix's footnotes.
const (
	note1 = "only with the ReadWriteMany access mode on the PVC [1]"
	note2 = "only if the storage provider supports the Kubernetes and CSI Snapshot APIs [2]"
)

// Rows of the matrix.
var (
	featuresRBD = Features{Kind: "OpenShift Container Storage: rbd block-mode volumes",
		LiveMigration: "yes", HostAssistedClone: "yes", StorageAssistedClone: "yes", Snapshot: "yes"}
	featuresHostPath = Features{Kind: "OpenShift Virtualization hostpath provisioner",
		LiveMigration: "no", HostAssistedClone: "yes", StorageAssistedClone: "no", Snapshot: "no"}
	featuresMultiNode = Features{Kind: "Other multi-node writable storage",
		LiveMigration: note1, HostAssistedClone: "yes", StorageAssistedClone: note2, Snapshot: note2}
	featuresSingleNode = Features{Kind: "Other single-node writable storage",
		LiveMigration: "no", HostAssistedClone: "yes", StorageAssistedClone: note2, Snapshot: note2}
)

// FeaturesOf picks a class's matrix row from its provisioner and, for other
// storage, whether its profile offers ReadWriteMany.
func FeaturesOf(provisioner string, profile []PropertySet) Features {
	switch provisioner {
	case ProvisionerRBD:
		return featuresRBD
	case ProvisionerHostPath, ProvisionerHostPathCSI:
		return featuresHostPath
	}
	for _, ps := range profile {
		if slices.Contains(ps.AccessModes, ReadWriteMany) {
			return featuresMultiNode
		}
	}
	return featuresSingleNode
}

// Operations of the matrix.
const (
	OpLiveMigration        = "live migration"
	OpHostAssistedClone    = "host-assisted clone"
	OpStorageAssistedClone = "storage-assisted clone"
	OpSnapshot             = "snapshot"
)

// Supports says whether the class allows op, and if not the seed's reason.
// Footnoted entries are allowed when their condition holds: [1] when
// accessModes has ReadWriteMany; [2] never here, as nodevirt has no CSI
// snapshot API.
func (c *Class) Supports(op string, accessModes []string) (bool, string) {
	f := c.Features
	var v string
	switch op {
	case OpLiveMigration:
		v = f.LiveMigration
	case OpHostAssistedClone:
		v = f.HostAssistedClone
	case OpStorageAssistedClone:
		v = f.StorageAssistedClone
	case OpSnapshot:
		v = f.Snapshot
	default:
		return false, fmt.Sprintf("unknown operation %q", op)
	}
	switch v {
	case "yes":
		return true, ""
	case note1:
		if slices.Contains(accessModes, ReadWriteMany) {
			return true, ""
		}
		return false, fmt.Sprintf("%s on %s needs a PVC with the ReadWriteMany access mode (seed 8.18.1, note 1)", op, f.Kind)
	case note2:
		return false, fmt.Sprintf("%s on %s needs a storage provider with the Kubernetes and CSI Snapshot APIs, which a nodevirt host does not have (seed 8.18.1, note 2)", op, f.Kind)
	}
	return false, fmt.Sprintf("%s is not supported by %s (seed 8.18.1 storage feature matrix)", op, f.Kind)
}

// knownProfile is what CDI knows of a provisioner when its StorageProfile
// has no claimPropertySets.
func knownProfile(provisioner string) []PropertySet {
	switch provisioner {
	case ProvisionerHostPath, ProvisionerHostPathCSI:
		return []PropertySet{{AccessModes: []string{ReadWriteOnce}, VolumeMode: Filesystem}}
	case ProvisionerRBD:
		return []PropertySet{{AccessModes: []string{ReadWriteMany}, VolumeMode: Block}, {AccessModes: []string{ReadWriteOnce}, VolumeMode: Filesystem}}
	case ProvisionerNone:
		// Local static volumes: nodevirt's are loop-backed Block volumes
		// or directories; a claim that omits the mode gets Filesystem.
		return []PropertySet{{AccessModes: []string{ReadWriteOnce}, VolumeMode: Filesystem}}
	}
	return nil
}
