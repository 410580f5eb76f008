package nodeconfig

import (
	"fmt"
	"io/fs"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// Source says where an entry of the host configuration was written.
type Source struct {
	// Object is "MachineConfig 100-worker-iommu", "Butane host/vfio.bu" or
	// "HyperConverged openshift-cnv/kubevirt-hyperconverged".
	Object string `json:"object"`
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	// Path is the field path as the user spells it, e.g.
	// spec.config.storage.files[0] or storage.files[0].
	Path string `json:"path,omitempty"`
}

// File is one file nodevirt writes on the host.
type File struct {
	Path string      `json:"path"`
	Mode fs.FileMode `json:"mode"`
	// UID and GID are numeric owners; User and Group are names resolved on the
	// host at apply time. Neither set means root.
	UID      *int   `json:"uid,omitempty"`
	GID      *int   `json:"gid,omitempty"`
	User     string `json:"user,omitempty"`
	Group    string `json:"group,omitempty"`
	Contents []byte `json:"-"`
	Source   Source `json:"source"`
}

// Dropin is a unit drop-in, written to /etc/systemd/system/<unit>.d/<name>.
type Dropin struct {
	Name     string `json:"name"`
	Contents string `json:"contents"`
	// Generated is set on drop-ins nodevirt adds itself.
	Generated string `json:"generated,omitempty"`
}

// Unit is one systemd unit nodevirt manages.
type Unit struct {
	Name string `json:"name"`
	// Enabled: true enables, false disables, nil leaves the unit as it is.
	Enabled *bool `json:"enabled,omitempty"`
	// Mask: true masks (symlink to /dev/null), false unmasks, nil leaves it.
	Mask *bool `json:"mask,omitempty"`
	// Contents is the unit file; nil means the unit ships with the OS and
	// only its enablement or mask is managed.
	Contents *string  `json:"contents,omitempty"`
	Dropins  []Dropin `json:"dropins,omitempty"`
	Source   Source   `json:"source"`
}

// KernelArg is one kernel argument with where it came from.
type KernelArg struct {
	Value  string `json:"value"`
	Source Source `json:"source"`
}

// PCIResource is one permitted PCI device selector (KubeVirt's
// permittedHostDevices.pciHostDevices entry).
type PCIResource struct {
	// Selector is "vendor:device" in lower-case hex, e.g. "10de:1eb8".
	Selector     string `json:"selector"`
	ResourceName string `json:"resourceName"`
	// External: an external device plugin provides the resource; nodevirt
	// neither binds nor allocates it.
	External bool   `json:"externalResourceProvider,omitempty"`
	Source   Source `json:"source"`
}

// VFIO is what the source says about binding devices to vfio-pci.
type VFIO struct {
	// IDs are the vendor:device ids the configs bind to vfio-pci at boot
	// ("options vfio-pci ids=..." in /etc/modprobe.d), lower-case.
	IDs []string `json:"ids,omitempty"`
	// ModulesLoad: a file in /etc/modules-load.d loads vfio-pci at boot.
	ModulesLoad bool `json:"modulesLoad,omitempty"`
	// IOMMU lists the IOMMU kernel arguments among the kernel arguments.
	IOMMU []string `json:"iommu,omitempty"`
	// Generate: the HyperConverged object opted in (AnnotationVFIOGenerate)
	// to nodevirt writing vfio.conf, the modules-load file and the IOMMU
	// argument where no config does; Generated: it did write some.
	Generate  bool `json:"generate,omitempty"`
	Generated bool `json:"generated,omitempty"`
	// Bind: bind permitted devices to vfio-pci at run time through
	// driver_override (HyperConverged annotation AnnotationVFIOBind).
	Bind bool `json:"bind,omitempty"`
	// Source is the HyperConverged object that opted in, if any.
	Source *Source `json:"source,omitempty"`
}

// LabelCheck is one SELinux label nodevirt checks on the host.
type LabelCheck struct {
	Path string `json:"path"`
	// Type is the SELinux type the path must carry, e.g. container_file_t.
	Type string `json:"type"`
	// Unit applies the label (a chcon unit); healing restarts it.
	Unit   string `json:"unit,omitempty"`
	Source Source `json:"source"`
}

// Config is one MachineConfig or Butane file and whether it applies here.
type Config struct {
	Object string `json:"object"`
	File   string `json:"file"`
	// Name orders the merge (MachineConfig name; fcos Butane files use their
	// file name).
	Name    string   `json:"name"`
	Roles   []string `json:"roles,omitempty"`
	Applies bool     `json:"applies"`
	Invalid bool     `json:"invalid,omitempty"`
}

// HostConfig is the rendered host configuration of one node.
type HostConfig struct {
	Node Node `json:"node"`
	// Configs are every MachineConfig and Butane file of the source, in merge
	// (name) order.
	Configs []Config `json:"configs"`
	Files   []File   `json:"files"`
	Units   []Unit   `json:"units"`
	// KernelArgs are ordered and free of duplicates.
	KernelArgs []KernelArg `json:"kernelArguments"`
	// KernelArgsAbsent must not be on the kernel command line (fcos
	// kernel_arguments.should_not_exist).
	KernelArgsAbsent []KernelArg   `json:"kernelArgumentsAbsent,omitempty"`
	VFIO             VFIO          `json:"vfio"`
	PCI              []PCIResource `json:"pciResources,omitempty"`
	HostPathDirs     []HostPathDir `json:"hostPathDirs,omitempty"`
	Labels           []LabelCheck  `json:"selinuxLabels,omitempty"`
	// Invalid holds the objects that apply to this node but failed to
	// render: what nodevirt applied from them earlier is kept, not removed.
	Invalid []string `json:"invalid,omitempty"`
	// PruneSuspended: a file of the source failed to parse or could not be
	// read, so the configs it held are unknown; nothing nodevirt applied
	// earlier is removed for this revision.
	PruneSuspended bool `json:"pruneSuspended,omitempty"`
	// AllowPruneAll: an object of the source carries
	// AnnotationAllowPruneAll, confirming removals the prune guard holds.
	AllowPruneAll bool      `json:"allowPruneAll,omitempty"`
	Diags         diag.List `json:"diagnostics,omitempty"`
}

// HostPathDir is a HostPathProvisioner backing directory.
type HostPathDir struct {
	Path   string `json:"path"`
	Source Source `json:"source"`
}

// File returns the file with the path, or nil.
func (h *HostConfig) File(path string) *File {
	for i := range h.Files {
		if h.Files[i].Path == path {
			return &h.Files[i]
		}
	}
	return nil
}

// Unit returns the unit with the name, or nil.
func (h *HostConfig) Unit(name string) *Unit {
	for i := range h.Units {
		if h.Units[i].Name == name {
			return &h.Units[i]
		}
	}
	return nil
}

// KernelArgValues returns the kernel arguments as strings.
func (h *HostConfig) KernelArgValues() []string {
	out := make([]string, len(h.KernelArgs))
	for i, k := range h.KernelArgs {
		out[i] = k.Value
	}
	return out
}

// IsInvalid reports whether object failed to render.
func (h *HostConfig) IsInvalid(object string) bool {
	for _, o := range h.Invalid {
		if o == object {
			return true
		}
	}
	return false
}

// ModeString renders a file mode as chmod's four octal digits (0644, 4755),
// the way MachineConfigs and Butane write them.
func ModeString(m fs.FileMode) string {
	n := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		n |= 0o1000
	}
	return fmt.Sprintf("%04o", n)
}
