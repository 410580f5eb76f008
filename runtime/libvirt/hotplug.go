package virt

import (
	"context"
	"errors"
	"fmt"
	"time"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// ErrDetachTimeout is returned when a device is still in the live domain
// after DetachDevice's deadline: the guest did not release it.
var ErrDetachTimeout = errors.New("guest did not release device")

// ErrNotRunning is returned by hotplug calls on a domain that is not running.
var ErrNotRunning = errors.New("domain is not running")

// detachPoll is how often the live XML is read while waiting for a removal:
// the event is the fast path, the read covers drivers and reconnects that
// lose it.
const detachPoll = 250 * time.Millisecond

func modifyFlags(persist bool) libvirt.DomainDeviceModifyFlags {
	if persist {
		return libvirt.DOMAIN_DEVICE_MODIFY_LIVE | libvirt.DOMAIN_DEVICE_MODIFY_CONFIG
	}
	return libvirt.DOMAIN_DEVICE_MODIFY_LIVE
}

// AttachDevice adds deviceXML to the running domain name; with persist it
// goes into the persistent definition as well, so it survives a restart.
func (d *Driver) AttachDevice(ctx context.Context, name, deviceXML string, persist bool) error {
	t := domainTarget(name)
	found, err := d.withDomain(ctx, name, func(dom *libvirt.Domain) error {
		active, err := isActive(dom)
		if err != nil {
			return wrapErr("read state of", t, err)
		}
		if !active {
			return fmt.Errorf("attach a device to %s: %w", t, ErrNotRunning)
		}
		return wrapErrIf("attach a device to", t, dom.AttachDeviceFlags(deviceXML, modifyFlags(persist)))
	})
	if err == nil && !found {
		err = fmt.Errorf("attach a device to %s: %w", t, ErrNotDefined)
	}
	return err
}

// DetachDevice removes the device with the given alias ("ua-data") from the
// running domain name (and with persist from its definition too), and
// returns only once it is gone from the live domain: confirmed by libvirt's
// DEVICE_REMOVED event or by the live XML no longer holding the alias. Until
// then the guest may still use the device, so its backing data must not be
// touched. After timeout it returns ErrDetachTimeout; a removal the guest
// refused returns its reason.
func (d *Driver) DetachDevice(ctx context.Context, name, alias string, persist bool, timeout time.Duration) error {
	t := domainTarget(name)
	removed := make(chan string, 4)
	failed := make(chan string, 4)
	// The callbacks run on libvirt's event loop goroutine: never block.
	onRemoved := func(_ *libvirt.Connect, _ *libvirt.Domain, e *libvirt.DomainEventDeviceRemoved) {
		select {
		case removed <- e.DevAlias:
		default:
		}
	}
	onFailed := func(_ *libvirt.Connect, _ *libvirt.Domain, e *libvirt.DomainEventDeviceRemovalFailed) {
		select {
		case failed <- e.DevAlias:
		default:
		}
	}
	var conn *libvirt.Connect
	var ids []int
	found, err := d.withDomainConn(ctx, name, func(c *libvirt.Connect, dom *libvirt.Domain) error {
		active, err := isActive(dom)
		if err != nil {
			return wrapErr("read state of", t, err)
		}
		if !active {
			return fmt.Errorf("detach %s from %s: %w", alias, t, ErrNotRunning)
		}
		if ok, err := hasAlias(dom, alias); err != nil {
			return wrapErr("read live XML of", t, err)
		} else if !ok {
			return nil
		}
		// Registered before the request, so a removal cannot slip between
		// the two.
		conn = c
		if id, err := c.DomainEventDeviceRemovedRegister(dom, onRemoved); err == nil {
			ids = append(ids, id)
		}
		if id, err := c.DomainEventDeviceRemovalFailedRegister(dom, onFailed); err == nil {
			ids = append(ids, id)
		}
		return wrapErrIf("detach "+alias+" from", t, dom.DetachDeviceAlias(alias, modifyFlags(persist)))
	})
	defer d.deregister(conn, ids)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("detach %s from %s: %w", alias, t, ErrNotDefined)
	}

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(detachPoll)
	defer tick.Stop()
	for {
		gone, err := d.aliasGone(ctx, name, alias)
		if err != nil {
			return err
		}
		if gone {
			return nil
		}
		select {
		case a := <-removed:
			if a == alias {
				return nil
			}
		case a := <-failed:
			if a == alias {
				return fmt.Errorf("detach %s from %s: the guest refused to release it", alias, t)
			}
		case <-tick.C:
		case <-deadline.C:
			return fmt.Errorf("detach %s from %s: %w within %s", alias, t, ErrDetachTimeout, timeout)
		case <-ctx.Done():
			return fmt.Errorf("detach %s from %s: %w", alias, t, ctx.Err())
		}
	}
}

// aliasGone reports whether the live domain no longer holds alias; a
// domain that stopped or vanished holds nothing.
func (d *Driver) aliasGone(ctx context.Context, name, alias string) (bool, error) {
	gone := true
	_, err := d.withDomain(ctx, name, func(dom *libvirt.Domain) error {
		active, err := isActive(dom)
		if err != nil || !active {
			return err
		}
		ok, err := hasAlias(dom, alias)
		gone = !ok
		return err
	})
	if err != nil {
		return false, wrapErr("read live XML of", domainTarget(name), err)
	}
	return gone, nil
}

func (d *Driver) deregister(c *libvirt.Connect, ids []int) {
	if c == nil || len(ids) == 0 {
		return
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	// A reconnect closed that connection, and its callbacks with it.
	if d.conn != c {
		return
	}
	for _, id := range ids {
		_ = c.DomainEventDeregister(id)
	}
}

// LiveDomain returns the running domain name as libvirt runs it (its id,
// disks with targets and aliases); nil for a domain that is not running.
func (d *Driver) LiveDomain(ctx context.Context, name string) (*libvirtxml.Domain, error) {
	var live *libvirtxml.Domain
	_, err := d.withDomain(ctx, name, func(dom *libvirt.Domain) error {
		active, err := isActive(dom)
		if err != nil || !active {
			return err
		}
		live, err = liveDomain(dom)
		return err
	})
	if err != nil {
		return nil, wrapErr("read live XML of", domainTarget(name), err)
	}
	return live, nil
}

func liveDomain(dom *libvirt.Domain) (*libvirtxml.Domain, error) {
	x, err := dom.GetXMLDesc(0)
	if err != nil {
		return nil, err
	}
	var live libvirtxml.Domain
	if err := live.Unmarshal(x); err != nil {
		return nil, fmt.Errorf("parse live XML: %w", err)
	}
	return &live, nil
}

// hasAlias reports whether a disk of the live domain carries alias.
func hasAlias(dom *libvirt.Domain, alias string) (bool, error) {
	live, err := liveDomain(dom)
	if err != nil || live.Devices == nil {
		return false, err
	}
	for _, disk := range live.Devices.Disks {
		if disk.Alias != nil && disk.Alias.Name == alias {
			return true, nil
		}
	}
	return false, nil
}

// withDomainConn is withDomain that also hands fn the connection, for
// event registrations tied to it.
func (d *Driver) withDomainConn(ctx context.Context, name string, fn func(*libvirt.Connect, *libvirt.Domain) error) (found bool, err error) {
	c, release, err := d.acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("%s: %w", domainTarget(name), err)
	}
	defer release()
	return d.onDomain(c, name, func(dom *libvirt.Domain) error { return fn(c, dom) })
}

// onDomain runs fn on the domain called name, looked up on c; found is
// false when there is none.
func (d *Driver) onDomain(c *libvirt.Connect, name string, fn func(*libvirt.Domain) error) (found bool, err error) {
	dom, err := c.LookupDomainByName(name)
	if errors.Is(err, libvirt.ERR_NO_DOMAIN) {
		return false, nil
	}
	if err != nil {
		return false, wrapErr("look up", domainTarget(name), err)
	}
	defer func() { _ = dom.Free() }()
	// fn may change the domain (start, stop, undefine, hot-plug), and its
	// event may arrive after the next listing: its cached XML and state go
	// now.
	defer d.dropDomain(dom)
	return true, fn(dom)
}
