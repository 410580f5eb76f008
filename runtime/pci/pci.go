// Package pci discovers PCI devices from sysfs below a root
// (<root>/sys/bus/pci/devices: vendor, device, class, the driver in use and
// the IOMMU group, as KubeVirt's device manager reads them) and binds a
// device to a driver at run time through driver_override, which, unlike
// new_id, binds exactly one device.
//
// Tests build fake sysfs trees under a temporary root. This package must
// not import nodevirt's reconciler or manifests.
package pci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nodevirt/nodevirt/runtime/hostfs"
)

// Device is one PCI function.
type Device struct {
	// Address is the BDF, e.g. 0000:02:01.0.
	Address string `json:"address"`
	// Vendor and Device are lower-case hex without 0x, e.g. 10de and 1eb8.
	Vendor string `json:"vendor"`
	Device string `json:"device"`
	// Class is the class code, e.g. 030200.
	Class string `json:"class"`
	// Driver is the bound driver ("" when none).
	Driver string `json:"driver,omitempty"`
	// DriverOverride is driver_override ("" when unset).
	DriverOverride string `json:"driverOverride,omitempty"`
	// IOMMUGroup is "" when the IOMMU is off (or the kernel argument is not
	// active yet).
	IOMMUGroup string `json:"iommuGroup,omitempty"`
	NUMANode   int    `json:"numaNode"`
}

// ID is "vendor:device", the form of a pciDeviceSelector (lower-case).
func (d Device) ID() string { return d.Vendor + ":" + d.Device }

// Sysfs reads and binds devices below a root.
type Sysfs struct {
	root string
	run  hostfs.Runner
}

// New returns the PCI bus of root; run loads modules (modprobe) inside it.
func New(root string, run hostfs.Runner) *Sysfs {
	if root == "" {
		root = "/"
	}
	return &Sysfs{root: root, run: run}
}

func (s *Sysfs) path(elem ...string) string {
	return filepath.Join(append([]string{s.root, "sys/bus/pci"}, elem...)...)
}

// List returns the devices sorted by address; a root without
// /sys/bus/pci has none.
func (s *Sysfs) List() ([]Device, error) {
	ents, err := os.ReadDir(s.path("devices"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list PCI devices: %w", err)
	}
	var out []Device
	for _, e := range ents {
		d, err := s.Get(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out, nil
}

// Get reads one device.
func (s *Sysfs) Get(addr string) (Device, error) {
	dir := s.path("devices", addr)
	d := Device{Address: addr, NUMANode: -1}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	hex := func(s string) string { return strings.ToLower(strings.TrimPrefix(s, "0x")) }
	d.Vendor, d.Device = hex(read("vendor")), hex(read("device"))
	if d.Vendor == "" || d.Device == "" {
		// uevent's PCI_ID=10DE:1EB8 is what KubeVirt reads.
		for _, l := range strings.Split(read("uevent"), "\n") {
			if v, ok := strings.CutPrefix(l, "PCI_ID="); ok {
				d.Vendor, d.Device, _ = strings.Cut(strings.ToLower(v), ":")
			}
		}
	}
	if d.Vendor == "" {
		return Device{}, fmt.Errorf("PCI device %s: no vendor id in %s", addr, dir)
	}
	d.Class = strings.TrimPrefix(read("class"), "0x")
	if t, err := os.Readlink(filepath.Join(dir, "driver")); err == nil {
		d.Driver = filepath.Base(t)
	}
	if o := read("driver_override"); o != "(null)" {
		d.DriverOverride = o
	}
	if t, err := os.Readlink(filepath.Join(dir, "iommu_group")); err == nil {
		d.IOMMUGroup = filepath.Base(t)
	}
	if n, err := strconv.Atoi(read("numa_node")); err == nil {
		d.NUMANode = n
	}
	return d, nil
}

func (s *Sysfs) write(p, v string) error {
	// sysfs attributes take one write; O_TRUNC would be refused by some.
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(v))
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}

// Bind binds the device to driver through driver_override: set the
// override, unbind from the current driver, and ask the bus to probe the
// device again. The driver's module is loaded first if its sysfs directory
// is missing.
func (s *Sysfs) Bind(ctx context.Context, addr, driver string) error {
	d, err := s.Get(addr)
	if err != nil {
		return err
	}
	if d.Driver == driver {
		return nil
	}
	if _, err := os.Stat(s.path("drivers", driver)); err != nil {
		if s.run == nil || !s.run.Has("modprobe") {
			return fmt.Errorf("bind %s to %s: driver %s is not loaded and modprobe is missing", addr, driver, driver)
		}
		if _, err := s.run.Run(ctx, "modprobe", driver); err != nil {
			return fmt.Errorf("bind %s to %s: %w", addr, driver, err)
		}
	}
	dir := s.path("devices", addr)
	if err := s.write(filepath.Join(dir, "driver_override"), driver); err != nil {
		return fmt.Errorf("bind %s to %s: set driver_override: %w", addr, driver, err)
	}
	if d.Driver != "" {
		if err := s.write(filepath.Join(dir, "driver", "unbind"), addr); err != nil {
			return fmt.Errorf("bind %s to %s: unbind from %s: %w", addr, driver, d.Driver, err)
		}
	}
	if err := s.write(s.path("drivers_probe"), addr); err != nil {
		return fmt.Errorf("bind %s to %s: drivers_probe: %w", addr, driver, err)
	}
	// Probing is synchronous for most drivers; deferred probes take a moment.
	var after Device
	for i := 0; i < 50; i++ {
		if after, err = s.Get(addr); err != nil {
			return err
		}
		if after.Driver == driver {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("bind %s to %s: the device is bound to %q after probing", addr, driver, after.Driver)
}

// Release clears driver_override and lets the bus probe the device again,
// so its native driver (if any) takes it back.
func (s *Sysfs) Release(ctx context.Context, addr string) error {
	d, err := s.Get(addr)
	if err != nil {
		return err
	}
	dir := s.path("devices", addr)
	if err := s.write(filepath.Join(dir, "driver_override"), "\n"); err != nil {
		return fmt.Errorf("release %s: clear driver_override: %w", addr, err)
	}
	if d.Driver != "" {
		if err := s.write(filepath.Join(dir, "driver", "unbind"), addr); err != nil {
			return fmt.Errorf("release %s: unbind from %s: %w", addr, d.Driver, err)
		}
	}
	if err := s.write(s.path("drivers_probe"), addr); err != nil {
		return fmt.Errorf("release %s: drivers_probe: %w", addr, err)
	}
	return nil
}

// IOMMUEnabled reports whether the kernel has IOMMU groups
// (<root>/sys/kernel/iommu_groups is absent or empty without an IOMMU).
func (s *Sysfs) IOMMUEnabled() bool {
	ents, err := os.ReadDir(filepath.Join(s.root, "sys/kernel/iommu_groups"))
	return err == nil && len(ents) > 0
}
