package manifests

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// The Go modules of the HyperConverged, HostPathProvisioner and MachineConfig
// CRDs are not dependencies of nodevirt (they pull in OpenShift's operator
// stacks), so these are subsets with the same JSON names, covering the fields
// the seeds and the SPEC use. Fields they lack are reported as warnings, since
// the real CRDs accept them.

// HyperConverged is hco.kubevirt.io/v1beta1 HyperConverged (OpenShift
// Virtualization's cluster-wide settings).
type HyperConverged struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              HyperConvergedSpec `json:"spec,omitempty"`
}

type HyperConvergedSpec struct {
	// CertConfig governs the agent's CA and serving certificates (SPEC VM-12).
	CertConfig           *HyperConvergedCertConfig `json:"certConfig,omitempty"`
	PermittedHostDevices *PermittedHostDevices     `json:"permittedHostDevices,omitempty"`
	// ScratchSpaceStorageClass is where CDI puts scratch space for imports.
	ScratchSpaceStorageClass *string                      `json:"scratchSpaceStorageClass,omitempty"`
	StorageImport            *StorageImportConfig         `json:"storageImport,omitempty"`
	ResourceRequirements     *OperandResourceRequirements `json:"resourceRequirements,omitempty"`
	FeatureGates             map[string]bool              `json:"featureGates,omitempty"`
}

// HyperConvergedCertConfig holds Go durations; unset ones take the HCO defaults
// (see WithDefaults).
type HyperConvergedCertConfig struct {
	CA     CertRotateConfig `json:"ca,omitempty"`
	Server CertRotateConfig `json:"server,omitempty"`
}

type CertRotateConfig struct {
	Duration    *metav1.Duration `json:"duration,omitempty"`
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`
}

type PermittedHostDevices struct {
	PciHostDevices  []PciHostDevice      `json:"pciHostDevices,omitempty"`
	MediatedDevices []MediatedHostDevice `json:"mediatedDevices,omitempty"`
}

type PciHostDevice struct {
	// PCIDeviceSelector is "vendorID:deviceID", e.g. "10DE:1DB6".
	PCIDeviceSelector        string `json:"pciDeviceSelector"`
	ResourceName             string `json:"resourceName"`
	ExternalResourceProvider bool   `json:"externalResourceProvider,omitempty"`
	Disabled                 bool   `json:"disabled,omitempty"`
}

type MediatedHostDevice struct {
	MDEVNameSelector         string `json:"mdevNameSelector"`
	ResourceName             string `json:"resourceName"`
	ExternalResourceProvider bool   `json:"externalResourceProvider,omitempty"`
	Disabled                 bool   `json:"disabled,omitempty"`
}

type StorageImportConfig struct {
	InsecureRegistries []string `json:"insecureRegistries,omitempty"`
}

type OperandResourceRequirements struct {
	// StorageWorkloads limits CDI import and upload work (SPEC S-12).
	StorageWorkloads *corev1.ResourceRequirements `json:"storageWorkloads,omitempty"`
}

// KubeVirt is kubevirt.io/v1 KubeVirt, the KubeVirt operator's cluster-wide
// configuration (HCO writes it from the HyperConverged object), of which
// nodevirt reads the SMBIOS values every guest sees. The full type is
// kubevirtv1.KubeVirt; this subset has its JSON names, so every other field
// is warned as not used.
type KubeVirt struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              KubeVirtSpec `json:"spec,omitempty"`
}

type KubeVirtSpec struct {
	Configuration KubeVirtConfiguration `json:"configuration,omitempty"`
}

type KubeVirtConfiguration struct {
	// SMBIOSConfig is the system information of SMBIOS type 1
	// (manufacturer, product, version, sku, family).
	SMBIOSConfig *kubevirtv1.SMBiosConfiguration `json:"smbios,omitempty"`
}

// HostPathProvisioner is hostpathprovisioner.kubevirt.io/v1beta1
// HostPathProvisioner (SPEC S-2).
type HostPathProvisioner struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              HostPathProvisionerSpec `json:"spec,omitempty"`
}

type HostPathProvisionerSpec struct {
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	PathConfig      *PathConfig       `json:"pathConfig,omitempty"`
	StoragePools    []StoragePool     `json:"storagePools,omitempty"`
	Workload        *NodePlacement    `json:"workload,omitempty"`
}

type PathConfig struct {
	// Path is the backing directory; never the file system root.
	Path string `json:"path,omitempty"`
	// UseNamingPrefix prefixes PV directories with the claim name.
	UseNamingPrefix bool `json:"useNamingPrefix,omitempty"`
}

type StoragePool struct {
	Name        string                            `json:"name"`
	Path        string                            `json:"path"`
	PVCTemplate *corev1.PersistentVolumeClaimSpec `json:"pvcTemplate,omitempty"`
}

type NodePlacement struct {
	NodeSelector map[string]string   `json:"nodeSelector,omitempty"`
	Affinity     *corev1.Affinity    `json:"affinity,omitempty"`
	Tolerations  []corev1.Toleration `json:"tolerations,omitempty"`
}

// MachineConfig is machineconfiguration.openshift.io/v1 MachineConfig (SPEC H-1).
type MachineConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              MachineConfigSpec `json:"spec,omitempty"`
}

type MachineConfigSpec struct {
	// Config is the Ignition config, kept raw for the Ignition translator.
	Config          json.RawMessage `json:"config,omitempty"`
	KernelArguments []string        `json:"kernelArguments,omitempty"`
	Extensions      []string        `json:"extensions,omitempty"`
	FIPS            bool            `json:"fips,omitempty"`
	KernelType      string          `json:"kernelType,omitempty"`
	OSImageURL      string          `json:"osImageURL,omitempty"`
}

// HyperConvergedV1 is hco.kubevirt.io/v1 HyperConverged. Version v1 groups
// the v1beta1 settings: permittedHostDevices under spec.virtualization,
// scratchSpaceStorageClass, storageImport and the storage workloads' resources
// under spec.storage, certConfig under spec.security. Documents written for
// v1 with the v1beta1 layout (the seed's PCI passthrough section does) are
// read too, with a warning naming the v1 place.
type HyperConvergedV1 struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              HyperConvergedV1Spec `json:"spec,omitempty"`
}

type HyperConvergedV1Spec struct {
	Virtualization *HyperConvergedV1Virtualization `json:"virtualization,omitempty"`
	Storage        *HyperConvergedV1Storage        `json:"storage,omitempty"`
	Security       *HyperConvergedV1Security       `json:"security,omitempty"`
	// FeatureGates is a list of gate objects in v1; nodevirt reads none of
	// them, so it is kept raw.
	FeatureGates json.RawMessage `json:"featureGates,omitempty"`

	// The v1beta1 layout, read when written under v1.
	CertConfig               *HyperConvergedCertConfig    `json:"certConfig,omitempty"`
	PermittedHostDevices     *PermittedHostDevices        `json:"permittedHostDevices,omitempty"`
	ScratchSpaceStorageClass *string                      `json:"scratchSpaceStorageClass,omitempty"`
	StorageImport            *StorageImportConfig         `json:"storageImport,omitempty"`
	ResourceRequirements     *OperandResourceRequirements `json:"resourceRequirements,omitempty"`
}

type HyperConvergedV1Virtualization struct {
	PermittedHostDevices *PermittedHostDevices `json:"permittedHostDevices,omitempty"`
}

type HyperConvergedV1Storage struct {
	ScratchSpaceStorageClass     *string                      `json:"scratchSpaceStorageClass,omitempty"`
	StorageImport                *StorageImportConfig         `json:"storageImport,omitempty"`
	WorkloadResourceRequirements *corev1.ResourceRequirements `json:"workloadResourceRequirements,omitempty"`
}

type HyperConvergedV1Security struct {
	CertConfig *HyperConvergedCertConfig `json:"certConfig,omitempty"`
}

// hyperConvergedFromV1 converts v1 to the v1beta1 layout nodevirt reads. A
// setting written in both places is read from its v1 place.
func hyperConvergedFromV1(o *Object, v any) (any, []conversionNote) {
	in := v.(*HyperConvergedV1)
	// Diagnostics of later stages name the v1beta1 paths; they point at
	// where the setting is written in v1.
	for _, m := range []struct{ v1, v1beta1 string }{
		{"spec.virtualization.permittedHostDevices", "spec.permittedHostDevices"},
		{"spec.storage.scratchSpaceStorageClass", "spec.scratchSpaceStorageClass"},
		{"spec.storage.storageImport", "spec.storageImport"},
		{"spec.storage.workloadResourceRequirements", "spec.resourceRequirements.storageWorkloads"},
		{"spec.security.certConfig", "spec.certConfig"},
	} {
		o.aliasPositions(m.v1, m.v1beta1)
	}
	out := &HyperConverged{TypeMeta: in.TypeMeta, ObjectMeta: in.ObjectMeta}
	s := in.Spec
	var notes []conversionNote
	flat := func(name, v1Path string, set bool) {
		if set {
			notes = append(notes, conversionNote{path: "spec." + name,
				err: fmt.Errorf("%w: hco.kubevirt.io/v1 keeps it in %s; read from here as in v1beta1", ErrMovedField, v1Path)})
		}
	}
	out.Spec.CertConfig = s.CertConfig
	flat("certConfig", "spec.security.certConfig", s.CertConfig != nil)
	if s.Security != nil && s.Security.CertConfig != nil {
		out.Spec.CertConfig = s.Security.CertConfig
	}
	out.Spec.PermittedHostDevices = s.PermittedHostDevices
	flat("permittedHostDevices", "spec.virtualization.permittedHostDevices", s.PermittedHostDevices != nil)
	if s.Virtualization != nil && s.Virtualization.PermittedHostDevices != nil {
		out.Spec.PermittedHostDevices = s.Virtualization.PermittedHostDevices
	}
	out.Spec.ScratchSpaceStorageClass = s.ScratchSpaceStorageClass
	flat("scratchSpaceStorageClass", "spec.storage.scratchSpaceStorageClass", s.ScratchSpaceStorageClass != nil)
	out.Spec.StorageImport = s.StorageImport
	flat("storageImport", "spec.storage.storageImport", s.StorageImport != nil)
	out.Spec.ResourceRequirements = s.ResourceRequirements
	flat("resourceRequirements", "spec.storage.workloadResourceRequirements", s.ResourceRequirements != nil)
	if st := s.Storage; st != nil {
		if st.ScratchSpaceStorageClass != nil {
			out.Spec.ScratchSpaceStorageClass = st.ScratchSpaceStorageClass
		}
		if st.StorageImport != nil {
			out.Spec.StorageImport = st.StorageImport
		}
		if st.WorkloadResourceRequirements != nil {
			out.Spec.ResourceRequirements = &OperandResourceRequirements{StorageWorkloads: st.WorkloadResourceRequirements}
		}
	}
	return out, notes
}

// HostPathProvisionerV1alpha1 is hostpathprovisioner.kubevirt.io/v1alpha1
// HostPathProvisioner: v1beta1 before storage pools. It is checked against
// its own fields and read as v1beta1.
type HostPathProvisionerV1alpha1 struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              HostPathProvisionerV1alpha1Spec `json:"spec,omitempty"`
}

type HostPathProvisionerV1alpha1Spec struct {
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	PathConfig      *PathConfig       `json:"pathConfig,omitempty"`
	Workload        *NodePlacement    `json:"workload,omitempty"`
}
