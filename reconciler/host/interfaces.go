package host

import (
	"context"
	"io/fs"
)

// Files is a file system below a root: the host's (for configuration) or
// the state directory's (for the record and backups). runtime/hostfs
// implements it.
type Files interface {
	Lstat(path string) (fs.FileInfo, error)
	ReadFile(path string) ([]byte, error)
	Readlink(path string) (string, error)
	// WriteFile replaces path atomically with data, mode and owner,
	// creating parent directories.
	WriteFile(path string, data []byte, mode fs.FileMode, uid, gid int) error
	Symlink(target, path string) error
	// Remove deletes a file or symlink; a missing one is not an error.
	Remove(path string) error
	// RemoveEmptyDir removes a directory only if it is empty.
	RemoveEmptyDir(path string) error
	// Owner resolves user and group names against the root's databases.
	Owner(user, group string) (uid, gid int, err error)
}

// Units is systemd. runtime/systemd implements it: through D-Bus when a
// systemd runs under the root, offline (systemctl --root semantics)
// otherwise.
type Units interface {
	Live() bool
	// Offline says why units are offline ("" when live).
	Offline() string
	Reload(ctx context.Context) error
	UnitFileState(ctx context.Context, name string) (string, error)
	Enable(ctx context.Context, name string) error
	Disable(ctx context.Context, name string) error
	Mask(ctx context.Context, name string) error
	Unmask(ctx context.Context, name string) error
	// Start and Restart wait for the job and for the unit to settle, and
	// return its properties plus "Job", the job's result.
	Start(ctx context.Context, name string) (map[string]string, error)
	Restart(ctx context.Context, name string) (map[string]string, error)
	Stop(ctx context.Context, name string) error
	Properties(ctx context.Context, name string) (map[string]string, error)
	Reboot(ctx context.Context) error
}

// KernelArgs is the boot loader. runtime/kargs implements it.
type KernelArgs interface {
	// Name is the back-end: ostree, systemd-boot, grubby, grub or none.
	Name() string
	Staged(ctx context.Context) ([]string, error)
	// Stage makes want present and drop absent for the next boot.
	Stage(ctx context.Context, want, drop []string) error
	// Running returns /proc/cmdline's arguments.
	Running() ([]string, error)
}

// Devices is the PCI bus.
type Devices interface {
	List() ([]Device, error)
	// Bind binds a device to driver through driver_override.
	Bind(ctx context.Context, addr, driver string) error
	// Release clears driver_override and reprobes the device.
	Release(ctx context.Context, addr string) error
}

// SELinux reads SELinux state. runtime/selinux implements it.
type SELinux interface {
	// Mode is enforcing, permissive or disabled.
	Mode() (string, error)
	// Label returns a path's security.selinux context ("" when none).
	Label(path string) (string, error)
}
