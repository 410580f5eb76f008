package virt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// HostPaths lists the host paths a domain definition reads or writes: the
// sources of its disks (file, block device, directory) with their backing
// chains as libvirt reports them, its filesystems, and the block devices of
// its storage host devices. Paths come back cleaned, in document order.
func HostPaths(domainXML string) ([]string, error) {
	devs, err := devicesOf(domainXML)
	if devs == nil {
		return nil, err
	}
	var out []string
	add := func(p string) {
		if p != "" {
			out = append(out, filepath.Clean(p))
		}
	}
	addSource := func(s *libvirtxml.DomainDiskSource) {
		switch {
		case s == nil:
		case s.File != nil:
			add(s.File.File)
		case s.Block != nil:
			add(s.Block.Dev)
		case s.Dir != nil:
			add(s.Dir.Dir)
		}
		if s != nil && s.DataStore != nil {
			addDataStore(s.DataStore, add)
		}
	}
	for _, d := range devs.Disks {
		addSource(d.Source)
		// The chain is in the live XML of a running domain (and in a
		// definition that spells it out); each layer is opened by QEMU.
		for b := d.BackingStore; b != nil; b = b.BackingStore {
			addSource(b.Source)
		}
	}
	for _, f := range devs.Filesystems {
		if s := f.Source; s != nil {
			switch {
			case s.Mount != nil:
				add(s.Mount.Dir)
			case s.File != nil:
				add(s.File.File)
			case s.Block != nil:
				add(s.Block.Dev)
			}
		}
	}
	for _, h := range devs.Hostdevs {
		if c := h.CapsStorage; c != nil && c.Source != nil {
			add(c.Source.Block)
		}
	}
	return out, nil
}

func addDataStore(ds *libvirtxml.DomainDiskDataStore, add func(string)) {
	if s := ds.Source; s != nil {
		switch {
		case s.File != nil:
			add(s.File.File)
		case s.Block != nil:
			add(s.Block.Dev)
		}
	}
}

// Uses reports whether a domain definition uses path: one of its host paths
// is path, or lies inside it when path is a directory.
func Uses(domainXML, path string) (bool, error) {
	paths, err := HostPaths(domainXML)
	if err != nil {
		return false, err
	}
	return within(paths, path), nil
}

func within(paths []string, path string) bool {
	dir := filepath.Clean(path)
	if !strings.HasSuffix(dir, string(filepath.Separator)) {
		dir += string(filepath.Separator)
	}
	for _, p := range paths {
		if p == filepath.Clean(path) || strings.HasPrefix(p, dir) {
			return true
		}
	}
	return false
}

// InUse reports whether any domain, running or only defined, uses path (see
// Uses). A running domain is checked in its live definition too: a disk
// attached at run time is not in the persistent one.
func (d *Driver) InUse(ctx context.Context, path string) (bool, error) {
	return d.uses(ctx, path, 0, []libvirt.DomainXMLFlags{0, libvirt.DOMAIN_XML_INACTIVE})
}

// RunningUses reports whether an active domain uses path in its live
// definition: a stopped domain's disks may be read whole.
func (d *Driver) RunningUses(ctx context.Context, path string) (bool, error) {
	return d.uses(ctx, path, libvirt.CONNECT_LIST_DOMAINS_ACTIVE, []libvirt.DomainXMLFlags{0})
}

func (d *Driver) uses(ctx context.Context, path string, list libvirt.ConnectListAllDomainsFlags, defs []libvirt.DomainXMLFlags) (bool, error) {
	c, release, err := d.acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("list domains: %w", err)
	}
	defer release()
	doms, err := c.ListAllDomains(list)
	if err != nil {
		return false, wrapErr("list domains on", d.uri, err)
	}
	defer func() {
		for i := range doms {
			_ = doms[i].Free()
		}
	}()
	for i := range doms {
		for _, flags := range defs {
			x, err := doms[i].GetXMLDesc(flags)
			if isNoDomain(err) {
				break // gone since the listing
			}
			if err != nil {
				return false, wrapErr("read XML of", "domain", err)
			}
			used, err := Uses(x, path)
			if err != nil {
				return false, err
			}
			if used {
				return true, nil
			}
		}
	}
	return false, nil
}

func isNoDomain(err error) bool { return errors.Is(err, libvirt.ERR_NO_DOMAIN) }

// HostdevPCIAddresses returns the PCI addresses (0000:03:00.0) of a domain
// definition's PCI <hostdev>s.
func HostdevPCIAddresses(domainXML string) ([]string, error) {
	devs, err := devicesOf(domainXML)
	if devs == nil {
		return nil, err
	}
	var out []string
	num := func(p *uint) uint {
		if p == nil {
			return 0
		}
		return *p
	}
	for _, h := range devs.Hostdevs {
		pci := h.SubsysPCI
		if pci == nil || pci.Source == nil || pci.Source.Address == nil {
			continue
		}
		a := pci.Source.Address
		out = append(out, fmt.Sprintf("%04x:%02x:%02x.%x", num(a.Domain), num(a.Bus), num(a.Slot), num(a.Function)))
	}
	return out, nil
}

// devicesOf parses a domain definition's device list (nil without one).
func devicesOf(domainXML string) (*libvirtxml.DomainDeviceList, error) {
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(domainXML); err != nil {
		return nil, fmt.Errorf("parse domain XML: %w", err)
	}
	return dom.Devices, nil
}
