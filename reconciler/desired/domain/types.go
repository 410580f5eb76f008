package domain

import (
	"path/filepath"
	"strings"

	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// Input is one defaulted, validated VirtualMachineInstance spec and the identity
// nodevirt gives its domain.
type Input struct {
	Namespace string
	Name      string
	// UUID is stable across redefinitions: spec.domain.firmware.uuid when given,
	// otherwise derived from namespace/name by the caller.
	UUID string
	// Spec has KubeVirt's defaults applied (manifests.Default) before conversion.
	Spec *kubevirtv1.VirtualMachineInstanceSpec
	// Object is "Kind namespace/name" for diagnostics; PathPrefix is where Spec
	// sits in the user's document, e.g. "spec.template.spec" for a VirtualMachine
	// and "spec" for a VirtualMachineInstance.
	Object     string
	PathPrefix string
	// Annotations are the VMI's annotations (a VM's
	// spec.template.metadata.annotations), for the KubeVirt annotations
	// that shape the domain (smbios.vm.kubevirt.io/*). AnnotationsPath is
	// where they sit in the user's document ("metadata.annotations" for a
	// VirtualMachineInstance, the default when empty).
	Annotations     map[string]string
	AnnotationsPath string
	// Networks are the NetworkAttachmentDefinitions behind spec.networks[].multus,
	// resolved by the caller, keyed by spec.networks[].name. A multus network
	// whose interface uses the bridge binding must have an entry.
	Networks map[string]NetworkAttachment
	// Resources are the node resources bound to this VM before conversion:
	// the converter only writes them into the domain, it never allocates.
	Resources Resources
	// Sources are the Secrets and ConfigMaps of the VM's namespace that its
	// volumes, cloud-init and accessCredentials name (SourcesNeeded), read
	// by the caller: conversion stays pure and a changed Secret changes the
	// result. A reference missing here is an error naming the field.
	Sources map[SourceRef]Source
	// Labels are the VMI's labels (a VM's spec.template.metadata.labels)
	// as downwardAPI volumes show them, beside Annotations.
	Labels map[string]string
}

// SourceRef names a Secret or ConfigMap of the VM's namespace.
type SourceRef struct {
	// Kind is "Secret" or "ConfigMap".
	Kind string
	Name string
}

func (r SourceRef) String() string { return r.Kind + " " + r.Name }

// Source is the content of one Secret or ConfigMap, or why it is missing.
type Source struct {
	// Data holds the keys (a ConfigMap's data and binaryData; a Secret's
	// data and stringData).
	Data map[string][]byte
	// Missing says why the source could not be read ("not in the
	// repository nor in /etc/nodevirt/secrets/ns/name"); Data is nil then.
	Missing string
}

// Resources are what the node gives one VM: decided (allocated, or read from
// the state) before conversion, so the domain is complete when converted and
// the hash covers them.
type Resources struct {
	// Pins are the exclusive host CPUs of a dedicatedCpuPlacement VM; nil
	// leaves the vCPUs floating (no pool, or none free: the VM waits).
	Pins *Pinning
	// HostDevices are the PCI devices allocated to spec.domain.devices
	// gpus and hostDevices, in request order.
	HostDevices []AssignedDevice
	// Claims maps a claim (or DataVolume) name of the VM's namespace to
	// where storage keeps its disk; a claim it lacks keeps the default
	// VolumeDir/<namespace>/<claim>/disk.img.
	Claims map[string]ClaimDisk
}

// Pinning is the set of exclusive host CPUs allocated to a VM: one per vCPU,
// in vCPU order, and the emulator thread's when isolated.
type Pinning struct {
	VCPUs    []uint `json:"vcpus"`
	Emulator *uint  `json:"emulator,omitempty"`
}

// CPUs are all host CPUs of the pinning, the emulator's last.
func (p Pinning) CPUs() []uint {
	out := append([]uint(nil), p.VCPUs...)
	if p.Emulator != nil {
		out = append(out, *p.Emulator)
	}
	return out
}

// AssignedDevice is a host PCI device allocated to one request of a VM.
type AssignedDevice struct {
	Name     string `json:"name"`
	Resource string `json:"resource"`
	GPU      bool   `json:"gpu,omitempty"`
	// Address is the PCI address, DDDD:BB:SS.F.
	Address string `json:"address"`
}

// ClaimDisk is where the storage manager keeps a claim's disk.
type ClaimDisk struct {
	// Path is "" while the claim is not bound: the disk keeps the default
	// place, which the VM waits for.
	Path string `json:"path"`
	// Block: a block device (<disk type='block'>), else a raw disk.img file.
	Block bool `json:"block,omitempty"`
	// VolumeMode is the claim's Filesystem or Block, known before it is
	// bound; "" when storage did not say.
	VolumeMode string `json:"volumeMode,omitempty"`
}

// NetworkAttachment is what nodevirt takes from a NetworkAttachmentDefinition
// whose CNI plugin is bridge or cnv-bridge: the guest is plugged into an
// existing host bridge.
type NetworkAttachment struct {
	// Object names the NetworkAttachmentDefinition ("NetworkAttachmentDefinition ns/name").
	Object string
	// Bridge is the host bridge (the plugin's "bridge"; CNI's default is cni0).
	Bridge string
	// VLAN is the plugin's "vlan" tag; 0 means untagged.
	VLAN uint
	// MTU is the plugin's "mtu"; 0 leaves the bridge's.
	MTU uint
}

// Context carries host facts and directory layout, gathered by the caller, so
// conversion stays a pure function.
type Context struct {
	// Type is the libvirt domain type: "kvm", or "qemu" (TCG) where /dev/kvm is missing.
	Type string
	// Arch is the guest architecture, "x86_64".
	Arch string
	// DiskDir holds per-VM artifacts: DiskDir/<namespace>/<name>/<volume>.<ext>.
	DiskDir string
	// VolumeDir holds claims: VolumeDir/<namespace>/<claimName>/disk.img.
	VolumeDir string
	// Root is the host root (--root) under which HostDirs and the host
	// files manifests name are resolved; "" is "/".
	Root string
	// HostDirs are the directories, as host paths under Root, where
	// hostDisk files and local containerDisk images may lie
	// (--allowed-host-dirs). Empty refuses every one of them.
	HostDirs []string
	// HostNUMA are the host's NUMA nodes with CPUs, by ID, for guest NUMA
	// (domain.cpu.numa.guestMappingPassthrough).
	HostNUMA []NUMANode
	// Virtiofsd is the host path of virtiofsd, which libvirt starts for a
	// virtiofs filesystem; "" means it is not installed.
	Virtiofsd string
	// NoDirectIO are host directories whose filesystem refuses O_DIRECT
	// (tmpfs): disks under them get cache writethrough instead of none.
	// The caller probes the directories disks live in (DiskDir, VolumeDir).
	NoDirectIO []string
	// ReportDifferences adds a warning (ErrDiffers) per VM for each way
	// its guest sees other hardware than under KubeVirt; validate sets it.
	ReportDifferences bool
	// SMBIOS is the node's system information for SMBIOS type 1; nil is
	// KubeVirt's default (DefaultSMBIOS).
	SMBIOS *SMBIOS
}

// ArtifactKind names what the runtime must prepare on the host before the
// domain is defined.
type ArtifactKind string

const (
	// EmptyDisk is a blank qcow2 image of Size bytes at Path.
	EmptyDisk ArtifactKind = "emptyDisk"
	// NoCloudISO is a cloud-init NoCloud seed image (ISO 9660, volume Label
	// "cidata") holding Files (user-data, meta-data, network-config) at Path.
	NoCloudISO ArtifactKind = "cloudInitNoCloud"
	// ContainerDisk is a qcow2 overlay at Path whose backing file is the disk
	// inside the container image Image.
	ContainerDisk ArtifactKind = "containerDisk"
	// Claim is a PersistentVolumeClaim or DataVolume disk that must already exist
	// at Path; the VM waits until it does.
	Claim ArtifactKind = "claim"
	// HostDisk is a raw file at Path; with Create it is made sparse with Size bytes.
	HostDisk ArtifactKind = "hostDisk"
	// ConfigDriveISO is a cloud-init ConfigDrive image (ISO 9660, volume
	// Label "config-2") at Path. Its Files have nested, slash-separated names
	// (openstack/latest/user_data, openstack/latest/meta_data.json,
	// openstack/latest/network_data.json): the runtime must create the
	// directories inside the image.
	ConfigDriveISO ArtifactKind = "cloudInitConfigDrive"
	// SharedDir is a directory at Path that a virtiofs filesystem shares
	// with the guest: the directory of Claim. It must exist; the VM waits
	// until it does.
	SharedDir ArtifactKind = "sharedDir"
	// KernelBoot is a directory at Path holding the kernel (file
	// KernelFile) and initrd (InitrdFile) extracted from the container
	// image Image, from its KernelPath and InitrdPath. It belongs to no
	// volume (Volume is empty).
	KernelBoot ArtifactKind = "kernelBoot"
	// ConfigISO is the ISO 9660 image KubeVirt attaches for a configMap,
	// secret, downwardAPI or sysprep volume: one file per key at the image's
	// root, volume Label as KubeVirt sets it.
	ConfigISO ArtifactKind = "configISO"
)

// Artifact is one host-side file a disk of the domain refers to.
type Artifact struct {
	Kind ArtifactKind `json:"kind"`
	// Volume is the spec.volumes[].name the artifact belongs to.
	Volume string `json:"volume"`
	Path   string `json:"path"`
	Size   int64  `json:"size,omitempty"`
	Label  string `json:"label,omitempty"`
	// Files are the seed image's files by name (NoCloudISO, ConfigDriveISO,
	// ConfigISO); ConfigDriveISO names are paths inside the image.
	Files map[string][]byte `json:"files,omitempty"`
	// SecretFiles are the image's files that carry a Secret's values. They
	// never leave the process: not in JSON (plans, state records, status),
	// only in the image. Digest stands for them wherever the artifact is
	// hashed or recorded, so a changed Secret changes the VM's spec hash.
	SecretFiles map[string][]byte `json:"-"`
	Digest      string            `json:"digest,omitempty"`
	// Image is the containerDisk image reference as written in the manifest.
	Image  string `json:"image,omitempty"`
	Create bool   `json:"create,omitempty"`
	// ImagePath is containerDisk.path: the disk file inside Image. Empty means
	// "the single file under /disk/", KubeVirt's rule. Added by the converter.
	ImagePath string `json:"imagePath,omitempty"`
	// PullPolicy is containerDisk.imagePullPolicy as defaulted (Always,
	// IfNotPresent, Never); the runtime decides from it whether to pull again.
	// Added by the converter.
	PullPolicy string `json:"pullPolicy,omitempty"`
	// Claim is the PersistentVolumeClaim or DataVolume name of a Claim
	// artifact; the storage manager says where its disk is.
	Claim string `json:"claim,omitempty"`
	// KernelPath and InitrdPath are the files inside Image a KernelBoot
	// artifact extracts; empty ones are not extracted.
	KernelPath string `json:"kernelPath,omitempty"`
	InitrdPath string `json:"initrdPath,omitempty"`
}

// Result is the converted domain plus what must exist on the host for it.
type Result struct {
	// Domain has no <metadata>: the caller adds nodevirt's ownership element
	// after hashing, so the hash covers only what the manifest decides.
	Domain    *libvirtxml.Domain
	Artifacts []Artifact
	// Diags are problems found during conversion (unsupported fields, values
	// that cannot be mapped), named with the user's field path.
	Diags diag.List
	// Hotplug are the disks a running domain takes or gives up live; they
	// are in Domain too.
	Hotplug []HotplugDisk
}

// DirectIO reports whether the filesystem holding path supports O_DIRECT:
// false when path lies in one of NoDirectIO.
func (c Context) DirectIO(path string) bool {
	for _, dir := range c.NoDirectIO {
		if rel, err := filepath.Rel(dir, path); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return false
		}
	}
	return true
}
