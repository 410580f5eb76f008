package host

import (
	"io/fs"

	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/nodeconfig"
	"github.com/nodevirt/nodevirt/reconciler/plan"
)

// The host stage's actions.
const (
	WriteFile    plan.Action = "write-file"
	WriteUnit    plan.Action = "write-unit" // a unit file or a drop-in
	RemoveFile   plan.Action = "remove-file"
	RestoreFile  plan.Action = "restore-file"
	MaskUnit     plan.Action = "mask-unit"
	UnmaskUnit   plan.Action = "unmask-unit"
	EnableUnit   plan.Action = "enable-unit"
	DisableUnit  plan.Action = "disable-unit"
	StageKargs   plan.Action = "stage-kargs"
	BindDevice   plan.Action = "bind-device"
	UnbindDevice plan.Action = "unbind-device"
	StopUnit     plan.Action = "stop-unit"
	StartUnit    plan.Action = "start-unit"
	RestartUnit  plan.Action = "restart-unit"
	// RebootRequired: staged kernel arguments or boot-time module options
	// differ from what the host runs with. nodevirt reboots only when allowed.
	RebootRequired plan.Action = "reboot-required"
	// Keep: a config is invalid; what nodevirt applied from it stays.
	Keep = plan.Keep
	// Hold: a removal of something nodevirt applied, stopped because a file
	// of the revision failed to parse or by the prune guard.
	Hold = plan.Hold
	// NotApplicable: an SELinux label check on a host without SELinux.
	NotApplicable plan.Action = "not-applicable"
	// DeviceUnbound: a permitted device nothing binds to vfio-pci.
	DeviceUnbound plan.Action = "device-unbound"
)

// Informational reports whether a host action changes nothing by itself.
func Informational(k plan.Action) bool {
	switch k {
	case Keep, Hold, NotApplicable, DeviceUnbound, RebootRequired:
		return true
	}
	return false
}

// Action is one step of a host plan: the shared step (its object is the
// config it comes from, e.g. "MachineConfig
// 50-set-selinux-for-hostpath-provisioner" or "Butane host/vfio.bu"; its
// target a path, unit name, "kernel arguments" or a PCI address) and what
// apply needs to do it.
type Action struct {
	plan.Step
	// Write is what a write-file or write-unit step puts on the host.
	Write *FileWrite `json:"write,omitempty"`
	// Unit is the unit of a unit step (and of a removed unit file).
	Unit string `json:"unit,omitempty"`
	// KargsWant and KargsDrop are a stage-kargs step's arguments: every one
	// nodevirt wants, and those it takes away.
	KargsWant []string `json:"kargsWant,omitempty"`
	KargsDrop []string `json:"kargsDrop,omitempty"`
	// Device is a bind-device step's "vendor:device" id.
	Device string `json:"device,omitempty"`
	// Judge says how a start's result is read.
	Judge Judge `json:"judge,omitempty"`
	// UntilBoot marks a reboot-required step that lasts until the next boot
	// (it is recorded, so later plans keep saying so).
	UntilBoot bool `json:"untilBoot,omitempty"`
}

// FileWrite is one path a write step puts on the host: a file, a unit file
// or a drop-in, as the config gives it.
type FileWrite struct {
	Path string `json:"path"`
	// Kind is file, unit or dropin.
	Kind string `json:"kind"`
	// Unit is the unit a unit file or drop-in belongs to.
	Unit string      `json:"unit,omitempty"`
	Data []byte      `json:"data"`
	Mode fs.FileMode `json:"mode"`
	// UID and GID are the config's numeric owner; nil keeps the observed one.
	UID *int `json:"uid,omitempty"`
	GID *int `json:"gid,omitempty"`
	// Object is the config the file comes from.
	Object string `json:"object"`
}

// Judge says how a start's result is read.
type Judge string

const (
	// JudgeResult reads the unit's result as it is.
	JudgeResult Judge = ""
	// JudgeSELinux: a SELinux-guarded unit; skipped means not applicable.
	JudgeSELinux Judge = "selinux"
)

// Plan is what Apply would do to the host.
type Plan struct {
	Revision string   `json:"revision,omitempty"`
	Actions  []Action `json:"actions"`
	// InSync counts the managed files, units and checks that match.
	InSync int `json:"inSync"`
	// Systemd is "live" or why units only take effect at boot.
	Systemd string `json:"systemd"`
	// KernelArgsBackend is the boot-loader back-end (ostree, systemd-boot,
	// grubby, grub, none).
	KernelArgsBackend string `json:"kernelArgumentBackend"`
	// PruneSuspended: a file of the revision failed to parse, so nothing
	// nodevirt applied is removed.
	PruneSuspended bool `json:"pruneSuspended,omitempty"`
	// PruneHeld says why this revision's removals are held (a failed parse
	// or the prune guard); "" when they run.
	PruneHeld string    `json:"pruneHeld,omitempty"`
	Diags     diag.List `json:"diagnostics,omitempty"`

	// Desired and Observed are what the plan was computed from; apply
	// records against them and restores what it observed on a rollback.
	Desired  *nodeconfig.HostConfig `json:"desired"`
	Observed Observed               `json:"observed"`
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool {
	for _, a := range p.Actions {
		if !Informational(a.Action) {
			return false
		}
	}
	return true
}

// Drift returns the actions that undo out-of-band changes.
func (p Plan) Drift() []Action {
	var out []Action
	for _, a := range p.Actions {
		if a.Drift {
			out = append(out, a)
		}
	}
	return out
}

// RebootRequired reports whether the host must reboot for the config to
// take full effect.
func (p Plan) RebootRequired() bool {
	for _, a := range p.Actions {
		if a.Action == RebootRequired {
			return true
		}
	}
	return false
}

// FileState is one host path as observed.
type FileState struct {
	Exists bool
	// Link is the target when the path is a symlink.
	Link string
	Mode fs.FileMode
	UID  int
	GID  int
	Data []byte
}

// UnitState is one unit as observed.
type UnitState struct {
	// FileState is systemctl is-enabled's answer (enabled, disabled,
	// masked, static, not-found, ...).
	FileState string
	// Props are the live properties (ActiveState, SubState, Result, ...),
	// empty when systemd is not running.
	Props map[string]string
}

// KargsState is the kernel command line as staged and as running.
type KargsState struct {
	Backend string
	Staged  []string
	// StagedErr says why the staged arguments could not be read.
	StagedErr string
	Running   []string
	// RunningKnown is false when /proc/cmdline could not be read.
	RunningKnown bool
}

// Device is one PCI device as observed.
type Device struct {
	Address    string `json:"address"`
	Vendor     string `json:"vendor"`
	Device     string `json:"device"`
	Class      string `json:"class,omitempty"`
	Driver     string `json:"driver,omitempty"`
	IOMMUGroup string `json:"iommuGroup,omitempty"`
	NUMANode   int    `json:"numaNode"`
}

// ID is "vendor:device" in lower case, the form of a selector.
func (d Device) ID() string { return d.Vendor + ":" + d.Device }

// SELinuxState is SELinux on the host.
type SELinuxState struct {
	// Mode is enforcing, permissive or disabled.
	Mode string
	// Labels maps checked paths to their security.selinux context ("" when
	// unlabelled); a missing path is absent.
	Labels map[string]string
}

// Owner is a resolved user and group.
type Owner struct {
	UID, GID int
	Err      string
}

// Observed is the host state Diff compares with the desired config.
type Observed struct {
	Record    Record
	Files     map[string]FileState
	Owners    map[string]Owner
	Units     map[string]UnitState
	UnitsLive bool
	// UnitsOffline says why units are offline ("" when live).
	UnitsOffline string
	Kargs        KargsState
	Devices      []Device
	SELinux      SELinuxState
	BootID       string
}
