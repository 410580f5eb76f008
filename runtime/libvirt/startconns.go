package virt

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"libvirt.org/go/libvirt"
)

// startConns hands each domain start a connection of its own. On one
// connection libvirt's quick calls (a lookup, a state read, a define) from
// other goroutines can wait for the whole of a start in flight, which under
// TCG is about a second of QEMU's work: measured with two goroutines
// starting 20 domains on qemu:///system, 7–9 lookups, state and XML reads
// took 0.3–1.1 s each (5.5–8.7 s in all) on one connection and none over
// 0.1 s with a connection each. So parallel applies start each VM on its
// own connection, kept for the next start.
//
// Only the main connection carries events and keep-alive; these carry the
// start alone. A connection a start failed on is closed, not kept: it may
// be what failed.
type startConns struct {
	uri string

	mu     sync.Mutex
	idle   []*libvirt.Connect
	closed bool
}

// maxIdleStartConns bounds the connections kept between starts: the
// apply's parallel bound is at most 4.
const maxIdleStartConns = 4

// get returns an idle live connection or a new one.
func (p *startConns) get() (*libvirt.Connect, error) {
	p.mu.Lock()
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if alive(c) {
			p.mu.Unlock()
			return c, nil
		}
		_, _ = c.Close() // dead already; nothing to act on
	}
	p.mu.Unlock()
	c, err := libvirt.NewConnect(p.uri)
	if err != nil {
		return nil, wrapErr("connect to", p.uri, err)
	}
	return c, nil
}

// put keeps c for the next start, or closes it when the start failed, the
// pool is full or closed.
func (p *startConns) put(c *libvirt.Connect, failed bool) {
	p.mu.Lock()
	if !failed && !p.closed && len(p.idle) < maxIdleStartConns && alive(c) {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		_, _ = c.Close()
	}
}

// close closes the idle connections; those in use are closed when put.
func (p *startConns) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		_, _ = c.Close()
	}
}

// startConnsFor returns the start connections for the driver behind c, or
// nil for libvirt's test driver: each of its connections, in process or
// through libvirtd, parses the node anew and would not see the domains of
// the others.
func startConnsFor(c *libvirt.Connect, uri string) *startConns {
	if typ, err := c.GetType(); err != nil || strings.EqualFold(typ, "test") {
		return nil
	}
	return &startConns{uri: uri}
}

// withStartConn is withDomain on a start connection (see startConns), or on
// the main connection for the test driver.
func (d *Driver) withStartConn(ctx context.Context, name string, fn func(*libvirt.Domain) error) (found bool, err error) {
	if d.starts == nil {
		return d.withDomain(ctx, name, fn)
	}
	// The main connection stays held for reading, as for any call, so
	// Close and a reconnect wait for the start.
	_, release, err := d.acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("%s: %w", domainTarget(name), err)
	}
	defer release()
	c, err := d.starts.get()
	if err != nil {
		return false, fmt.Errorf("%s: %w", domainTarget(name), err)
	}
	found, err = d.onDomain(c, name, fn)
	d.starts.put(c, err != nil)
	return found, err
}
