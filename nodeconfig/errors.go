package nodeconfig

import "errors"

// Rules of host configuration; diagnostics wrap one of these (errors.Is).
var (
	// ErrUnsupported: an Ignition section or MachineConfig field nodevirt
	// does not apply (as the Machine Config Daemon refuses them).
	ErrUnsupported = errors.New("not supported by nodevirt")
	// ErrIgnition: the Ignition config does not parse or validate.
	ErrIgnition = errors.New("invalid Ignition config")
	// ErrPathNotAllowed: a file outside the host paths nodevirt may write.
	ErrPathNotAllowed = errors.New("path is outside the host paths nodevirt may write")
	// ErrFileSource: a file source other than a data URL.
	ErrFileSource = errors.New("file contents must be inline (a data: URL)")
	// ErrUnitName: a unit or drop-in name systemd would not load.
	ErrUnitName = errors.New("invalid systemd unit name")
	// ErrNoRole: a MachineConfig without the role label applies to no node.
	ErrNoRole = errors.New("no machineconfiguration.openshift.io/role label; the config applies to no node")
	// ErrOverridden: a later config (by name) replaces an earlier one's entry.
	ErrOverridden = errors.New("overridden by a later config")
	// ErrDuplicateConfig: a Butane file and a MachineConfig of the same name.
	ErrDuplicateConfig = errors.New("same MachineConfig defined twice")
	// ErrSelector: a pciDeviceSelector that is not vendor:device in hex.
	ErrSelector = errors.New(`pciDeviceSelector must be "vendorID:deviceID" in hexadecimal, e.g. "10DE:1EB8"`)
	// ErrVFIO: VFIO set-up the source asks for that nodevirt cannot do as asked.
	ErrVFIO = errors.New("vfio")
	// ErrCPUVendor: the IOMMU argument depends on a CPU vendor nodevirt does not know.
	ErrCPUVendor = errors.New("unknown CPU vendor")
)
