// Package loop attaches regular files to Linux loop devices through ioctls
// (no losetup): LOOP_CTL_GET_FREE or LOOP_CTL_ADD picks the device, and
// LOOP_CONFIGURE attaches the file in one call, with LOOP_SET_FD plus
// LOOP_SET_STATUS64 as the fallback on kernels older than 5.8. Devices are
// attached without LO_FLAGS_AUTOCLEAR: a VM's volume must survive QEMU
// closing it when the domain stops. Attachments are kernel state, so a
// rebooted host has none; callers find what is attached by reading
// /sys/block/loop*/loop/backing_file and attach again.
//
// This package must not import github.com/nodevirt/nodevirt/reconciler or
// manifests: the reconciler declares the interface it satisfies.
package loop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// ErrBusy means the device is attached to another file.
	ErrBusy = errors.New("loop device is attached to another file")
	// ErrNotLoop means a path does not name a loop device (/dev/loopN).
	ErrNotLoop = errors.New("not a loop device path (want /dev/loopN)")
)

// Device is one attached loop device as sysfs describes it.
type Device struct {
	// Path is /dev/loopN.
	Path string `json:"path"`
	// Backing is the attached file as the kernel resolved it.
	Backing string `json:"backing"`
	// Deleted: the backing file was unlinked while attached.
	Deleted   bool `json:"deleted,omitempty"`
	ReadOnly  bool `json:"readOnly,omitempty"`
	Autoclear bool `json:"autoclear,omitempty"`
}

// Options tune an attachment.
type Options struct {
	ReadOnly bool
	// DirectIO makes the loop driver bypass the page cache of the backing file.
	DirectIO bool
}

// Loops works on the host's loop devices. Sys and Dev are the sysfs and
// device roots ("/sys" and "/dev" on a host).
type Loops struct {
	Sys string
	Dev string
	// noConfigure is set once LOOP_CONFIGURE was found missing, so later
	// attachments go straight to the fallback.
	noConfigure bool
}

// New returns Loops on the host's /sys and /dev.
func New() *Loops { return &Loops{Sys: "/sys", Dev: "/dev"} }

// Number parses /dev/loopN into N.
func Number(dev string) (int, error) {
	base := filepath.Base(dev)
	if !strings.HasPrefix(base, "loop") || filepath.Dir(filepath.Clean(dev)) != "/dev" {
		return 0, fmt.Errorf("%q: %w", dev, ErrNotLoop)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(base, "loop"))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: %w", dev, ErrNotLoop)
	}
	return n, nil
}

func (l *Loops) devPath(n int) string { return filepath.Join(l.Dev, "loop"+strconv.Itoa(n)) }

// Attach attaches backing to a free loop device and returns its path.
func (l *Loops) Attach(backing string, opt Options) (string, error) {
	for range 16 {
		n, err := l.free()
		if err != nil {
			return "", err
		}
		err = l.configure(n, backing, opt)
		if errors.Is(err, unix.EBUSY) {
			// Another process took the device between GET_FREE and
			// CONFIGURE: ask for a new one.
			continue
		}
		if err != nil {
			return "", err
		}
		return "/dev/loop" + strconv.Itoa(n), nil
	}
	return "", fmt.Errorf("attach %s: every free loop device was taken before it could be configured", backing)
}

// AttachAt attaches backing to the named device (/dev/loopN), creating the
// device if the kernel has none with that number. It is idempotent: a device
// already attached to backing is left as it is. A device attached to another
// file is an error wrapping ErrBusy that names that file.
func (l *Loops) AttachAt(dev, backing string, opt Options) error {
	n, err := Number(dev)
	if err != nil {
		return err
	}
	if cur, ok, err := l.Backing(dev); err != nil {
		return err
	} else if ok {
		return l.same(dev, cur, backing)
	}
	if err := l.add(n); err != nil {
		return err
	}
	err = l.configure(n, backing, opt)
	if errors.Is(err, unix.EBUSY) {
		if cur, ok, berr := l.Backing(dev); berr == nil && ok {
			return l.same(dev, cur, backing)
		}
	}
	return err
}

func (l *Loops) same(dev, cur, backing string) error {
	want, err := resolve(backing)
	if err != nil {
		return err
	}
	if cur == want {
		return nil
	}
	return fmt.Errorf("%s: %w %s (wanted %s)", dev, ErrBusy, cur, want)
}

// resolve gives the absolute, symlink-free path the kernel reports.
func resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r, nil
	}
	return abs, nil
}

// free asks /dev/loop-control for a free device number.
func (l *Loops) free() (int, error) {
	ctl, err := unix.Open(filepath.Join(l.Dev, "loop-control"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open loop-control: %w", err)
	}
	defer unix.Close(ctl)
	n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
	if err != nil {
		return 0, fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
	}
	return n, l.waitNode(n)
}

// add makes sure loop device n exists.
func (l *Loops) add(n int) error {
	if _, err := os.Stat(l.devPath(n)); err == nil {
		return nil
	}
	ctl, err := unix.Open(filepath.Join(l.Dev, "loop-control"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open loop-control: %w", err)
	}
	defer unix.Close(ctl)
	// LOOP_CTL_ADD takes the device number as its argument, not a pointer.
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(ctl), unix.LOOP_CTL_ADD, uintptr(n)); e != 0 && e != unix.EEXIST {
		return fmt.Errorf("LOOP_CTL_ADD %d: %w", n, e)
	}
	return l.waitNode(n)
}

// waitNode waits for devtmpfs to show /dev/loopN.
func (l *Loops) waitNode(n int) error {
	p := l.devPath(n)
	for range 100 {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s did not appear (is /dev a devtmpfs?)", p)
}

// configure attaches backing to loop device n.
func (l *Loops) configure(n int, backing string, opt Options) error {
	dev := l.devPath(n)
	path, err := resolve(backing)
	if err != nil {
		return fmt.Errorf("attach %s: %w", backing, err)
	}
	mode := unix.O_RDWR
	var flags uint32
	if opt.ReadOnly {
		mode = unix.O_RDONLY
		flags |= unix.LO_FLAGS_READ_ONLY
	}
	if opt.DirectIO {
		flags |= unix.LO_FLAGS_DIRECT_IO
	}
	file, err := unix.Open(path, mode|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("attach %s: open backing file: %w", path, err)
	}
	defer unix.Close(file)
	loopFd, err := unix.Open(dev, mode|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("attach %s: open %s: %w", path, dev, err)
	}
	defer unix.Close(loopFd)

	info := unix.LoopInfo64{Flags: flags}
	copy(info.File_name[:len(info.File_name)-1], path)
	if !l.noConfigure {
		err := unix.IoctlLoopConfigure(loopFd, &unix.LoopConfig{Fd: uint32(file), Info: info})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EBUSY):
			return fmt.Errorf("attach %s to %s: %w", path, dev, err)
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOTTY):
			// Kernels before 5.8 do not know LOOP_CONFIGURE.
			l.noConfigure = true
		default:
			return fmt.Errorf("attach %s to %s: LOOP_CONFIGURE: %w", path, dev, err)
		}
	}
	if err := unix.IoctlSetInt(loopFd, unix.LOOP_SET_FD, file); err != nil {
		return fmt.Errorf("attach %s to %s: LOOP_SET_FD: %w", path, dev, err)
	}
	if err := unix.IoctlLoopSetStatus64(loopFd, &info); err != nil {
		_ = unix.IoctlSetInt(loopFd, unix.LOOP_CLR_FD, 0)
		return fmt.Errorf("attach %s to %s: LOOP_SET_STATUS64: %w", path, dev, err)
	}
	return nil
}

// Detach detaches dev. A device nothing is attached to is not an error. A
// device still open elsewhere (a running QEMU) is detached by the kernel
// when it is last closed.
func (l *Loops) Detach(dev string) error {
	n, err := Number(dev)
	if err != nil {
		return err
	}
	fd, err := unix.Open(l.devPath(n), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENXIO) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("detach %s: %w", dev, err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0); err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("detach %s: LOOP_CLR_FD: %w", dev, err)
	}
	return nil
}

// Remove deletes loop device dev from the kernel (LOOP_CTL_REMOVE); it must
// be detached. Tests use it to leave no device behind that they created.
func (l *Loops) Remove(dev string) error {
	n, err := Number(dev)
	if err != nil {
		return err
	}
	ctl, err := unix.Open(filepath.Join(l.Dev, "loop-control"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open loop-control: %w", err)
	}
	defer unix.Close(ctl)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(ctl), unix.LOOP_CTL_REMOVE, uintptr(n)); e != 0 && e != unix.ENODEV {
		return fmt.Errorf("LOOP_CTL_REMOVE %d: %w", n, e)
	}
	return nil
}

// Backing returns the file dev is attached to; ok is false when dev exists
// but nothing is attached, or dev does not exist.
func (l *Loops) Backing(dev string) (file string, ok bool, err error) {
	n, err := Number(dev)
	if err != nil {
		return "", false, err
	}
	d, ok, err := l.device(n)
	return d.Backing, ok, err
}

func (l *Loops) device(n int) (Device, bool, error) {
	name := "loop" + strconv.Itoa(n)
	dir := filepath.Join(l.Sys, "block", name, "loop")
	b, err := os.ReadFile(filepath.Join(dir, "backing_file"))
	if errors.Is(err, os.ErrNotExist) {
		return Device{}, false, nil
	}
	if err != nil {
		return Device{}, false, fmt.Errorf("read %s backing file: %w", name, err)
	}
	d := Device{Path: "/dev/" + name, Backing: strings.TrimSuffix(string(b), "\n")}
	if strings.HasSuffix(d.Backing, " (deleted)") {
		d.Backing, d.Deleted = strings.TrimSuffix(d.Backing, " (deleted)"), true
	}
	d.Autoclear = readFlag(filepath.Join(dir, "autoclear"))
	d.ReadOnly = readFlag(filepath.Join(l.Sys, "block", name, "ro"))
	return d, true, nil
}

func readFlag(p string) bool {
	b, err := os.ReadFile(p)
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// List returns every attached loop device, by number.
func (l *Loops) List() ([]Device, error) {
	entries, err := os.ReadDir(filepath.Join(l.Sys, "block"))
	if err != nil {
		return nil, fmt.Errorf("list loop devices: %w", err)
	}
	var nums []int
	for _, e := range entries {
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "loop")); err == nil && strings.HasPrefix(e.Name(), "loop") {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	var out []Device
	for _, n := range nums {
		d, ok, err := l.device(n)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, d)
		}
	}
	return out, nil
}

// Find returns the devices backing is attached to (normally at most one).
func (l *Loops) Find(backing string) ([]string, error) {
	want, err := resolve(backing)
	if err != nil {
		return nil, err
	}
	all, err := l.List()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range all {
		if d.Backing == want && !d.Deleted {
			out = append(out, d.Path)
		}
	}
	return out, nil
}
