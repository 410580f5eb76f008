package host

import (
	"io/fs"

	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/nodeconfig"
	"github.com/nodevirt/nodevirt/reconciler/plan"
)

// Kind is what an action does.
type Kind string

const (
	WriteFile    Kind = "write-file"
	WriteUnit    Kind = "write-unit" // a unit file or a drop-in
	RemoveFile   Kind = "remove-file"
	RestoreFile  Kind = "restore-file"
	MaskUnit     Kind = "mask-unit"
	UnmaskUnit   Kind = "unmask-unit"
	EnableUnit   Kind = "enable-unit"
	DisableUnit  Kind = "disable-unit"
	StageKargs   Kind = "stage-kargs"
	BindDevice   Kind = "bind-device"
	UnbindDevice Kind = "unbind-device"
	StopUnit     Kind = "stop-unit"
	StartUnit    Kind = "start-unit"
	RestartUnit  Kind = "restart-unit"
	// RebootRequired: staged kernel arguments or boot-time module options
	// differ from what the host runs with. nodevirt reboots only when allowed.
	RebootRequired Kind = "reboot-required"
	// Keep: a config is invalid; what nodevirt applied from it stays.
	Keep Kind = "keep"
	// Hold: a removal of something nodevirt applied, stopped because a file
	// of the revision failed to parse or by the prune guard.
	Hold Kind = "hold"
	// NotApplicable: an SELinux label check on a host without SELinux.
	NotApplicable Kind = "not-applicable"
	// DeviceUnbound: a permitted device nothing binds to vfio-pci.
	DeviceUnbound Kind = "device-unbound"
)

// Informational reports whether the action changes nothing by itself.
func (k Kind) Informational() bool {
	switch k {
	case Keep, Hold, NotApplicable, DeviceUnbound, RebootRequired:
		return true
	}
	return false
}

// Action is one step of a host plan.
type Action struct {
	Kind Kind `json:"action"`
	// Object is the config the action comes from, e.g. "MachineConfig
	// 50-set-selinux-for-hostpath-provisioner" or "Butane host/vfio.bu".
	Object string `json:"object"`
	// Target is a path, unit name, "kernel arguments" or a PCI address.
	Target  string        `json:"target"`
	Changes []plan.Change `json:"changes,omitempty"`
	Reason  string        `json:"reason"`
	// Disruptive actions interrupt something running (a service restart, a
	// device taken from its driver).
	Disruptive bool `json:"disruptive,omitempty"`
	// Drift marks actions that undo an out-of-band change; they run only
	// with self-heal on.
	Drift bool `json:"drift,omitempty"`

	entry      *entry   // write: what to write
	unit       string   // unit actions
	want, drop []string // stage-kargs
	device     string   // bind-device: the device id
	judge      judge    // start/restart: how to read the result
	reboot     bool     // reboot-required that lasts until the next boot
}

// judge says how a start's result is read.
type judge int

const (
	judgeResult  judge = iota
	judgeSELinux       // a SELinux-guarded unit: skipped means not applicable
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

	desired  *nodeconfig.HostConfig
	observed Observed
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool {
	for _, a := range p.Actions {
		if !a.Kind.Informational() {
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
		if a.Kind == RebootRequired {
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
