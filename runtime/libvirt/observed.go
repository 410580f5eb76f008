package virt

import (
	"sync"

	"libvirt.org/go/libvirt"

	"github.com/nodevirt/nodevirt/runtime/hv"
)

// definitions keeps each domain's definition XML and state between two
// listings, by UUID. Reading them is most of a listing's cost (libvirt formats
// the whole document, and over a remote connection each is one round trip per
// domain), and between two reconciles of a quiet node neither changes. Every
// change of state fires a lifecycle event, so the state is kept on the same
// terms as the document.
//
// An entry is dropped on every libvirt event for its domain (lifecycle, device,
// metadata), on every change this driver makes to the domain, and the whole
// cache on a reconnect (events were lost meanwhile). Some configuration changes
// fire no event at all (virsh setmaxmem --config, setvcpus --config,
// autostart): the owner must call forget at least once per drift interval so
// that the next listing reads every document anew.
//
// Reads race with events: a listing that read a document just before a change
// may finish after the change's event dropped the entry. epoch counts
// invalidations, and a listing stores what it read only when none happened
// since it started, so a stale document is never kept.
type definitions struct {
	mu      sync.Mutex
	enabled bool
	epoch   uint64
	byUUID  map[string]definition
}

type definition struct {
	// persistent is part of the key: a transient domain's document is the
	// live one, a persistent domain's the inactive one.
	persistent bool
	xml        string
	state      hv.State
	reason     string
}

// enable makes later listings reuse documents.
func (c *definitions) enable() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enabled = true
}

// begin returns the epoch a listing starts at, and whether caching is on.
func (c *definitions) begin() (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch, c.enabled
}

// lookup returns what is kept for uuid, if any.
func (c *definitions) lookup(uuid string, persistent bool) (definition, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byUUID[uuid]
	if !ok || e.persistent != persistent {
		return definition{}, false
	}
	return e, true
}

// store keeps what a listing that began at epoch read, unless something was
// invalidated since: an event for one of these domains may have arrived
// between its read and now. keep lists every domain the listing saw; entries
// of the others (undefined meanwhile) are dropped.
func (c *definitions) store(epoch uint64, read map[string]definition, seen map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enabled || c.epoch != epoch {
		return
	}
	if c.byUUID == nil {
		c.byUUID = make(map[string]definition, len(read))
	}
	for uuid, e := range read {
		c.byUUID[uuid] = e
	}
	for uuid := range c.byUUID {
		if !seen[uuid] {
			delete(c.byUUID, uuid)
		}
	}
}

// drop forgets one domain's document.
func (c *definitions) drop(uuid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	delete(c.byUUID, uuid)
}

// forget empties the cache.
func (c *definitions) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	clear(c.byUUID)
}

// CacheDefinitions makes Domains reuse each domain's definition XML and state
// until an event or a change through this driver invalidates them. Configuration changes
// that fire no libvirt event stay unseen until ForgetDefinitions: the caller
// must call it at least as often as it wants such changes found (the agent's
// drift interval). Without it, every listing reads every document.
func (d *Driver) CacheDefinitions() { d.defs.enable() }

// ForgetDefinitions makes the next Domains read every domain's XML and state anew.
func (d *Driver) ForgetDefinitions() { d.defs.forget() }

// dropDomain invalidates dom's cached definition. It only calls a local
// accessor (no RPC), so the event callbacks may use it.
func (d *Driver) dropDomain(dom *libvirt.Domain) {
	if uuid, err := dom.GetUUIDString(); err == nil {
		d.defs.drop(uuid)
		return
	}
	d.defs.forget()
}

// onDomainChange invalidates the domain of an event that is not a lifecycle
// event but may change its document (devices, metadata).
func (d *Driver) onDomainChange(_ *libvirt.Connect, dom *libvirt.Domain) {
	d.dropDomain(dom)
}
