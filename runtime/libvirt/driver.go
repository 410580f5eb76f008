package virt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"libvirt.org/go/libvirt"

	"github.com/nodevirt/nodevirt/runtime/hv"
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("libvirt driver is closed")

const (
	// keepAliveInterval and keepAliveCount make libvirt notice a dead or hung
	// libvirtd within about 20 s and fire the close callback, instead of
	// waiting for the next RPC to time out.
	keepAliveInterval = 5
	keepAliveCount    = 3

	// reconnectMin and reconnectMax bound the back-off of the background
	// reconnect loop, so a restarting libvirtd is picked up quickly but a
	// missing one is not hammered.
	reconnectMin = 500 * time.Millisecond
	reconnectMax = 30 * time.Second
)

// Driver is one connection to a libvirt URI that survives libvirtd restarts.
// It is safe for concurrent use.
type Driver struct {
	uri string
	// swtpmDir is libvirt's swtpm state directory on this host; "" when
	// the daemon's files are out of reach (test driver, remote URIs).
	swtpmDir string

	// mu guards conn, eventIDs and closed. It is held for reading for the
	// whole of every libvirt call, so a reconnect (which holds it for writing)
	// never closes a connection that is still in use.
	mu       sync.RWMutex
	conn     *libvirt.Connect
	eventIDs []int
	closed   bool

	// defs keeps definition XML between listings (see CacheDefinitions).
	defs definitions

	// starts holds the connections of domain starts; nil for the test
	// driver, whose every connection has a state of its own.
	starts *startConns

	// subsMu guards subs and nextSub. The lifecycle callback takes only this
	// lock, never mu, so it cannot wait behind a reconnect that is itself
	// waiting for the event loop.
	subsMu  sync.Mutex
	subs    map[uint64]*subscriber
	nextSub uint64

	// dead is signalled (never blocking, capacity 1) by the close callback;
	// the supervisor goroutine then reconnects.
	dead chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

// Open connects to uri, e.g. "qemu:///system", "test:///default" or
// "test:///abs/path/node.xml" (the last is parsed anew on every connect, so
// each Driver on it has private state: what unit tests want).
func Open(ctx context.Context, uri string) (*Driver, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open libvirt %s: %w", uri, err)
	}
	if err := startEventLoop(); err != nil {
		return nil, err
	}
	d := &Driver{
		uri:      uri,
		swtpmDir: swtpmDirFor(uri),
		subs:     map[uint64]*subscriber{},
		dead:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	d.mu.Lock()
	err := d.connect()
	if err == nil {
		d.starts = startConnsFor(d.conn, uri)
	}
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	d.wg.Add(1)
	go d.supervise()
	return d, nil
}

// URI returns the libvirt URI the driver was opened with.
func (d *Driver) URI() string { return d.uri }

// Close releases the connection, ends every event subscription and stops the
// reconnect loop. Calling it again is a no-op.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	err := d.disconnect()
	d.mu.Unlock()
	if d.starts != nil {
		d.starts.close()
	}

	close(d.done)
	d.wg.Wait()

	d.subsMu.Lock()
	for id, s := range d.subs {
		delete(d.subs, id)
		close(s.ch)
	}
	d.subsMu.Unlock()
	return err
}

// connect dials the URI and installs the callbacks. d.mu must be held for
// writing.
func (d *Driver) connect() error {
	c, err := libvirt.NewConnect(d.uri)
	if err != nil {
		return wrapErr("connect to", d.uri, err)
	}
	// Keepalive is best effort: the in-process test driver does not support
	// it (ERR_NO_SUPPORT) and cannot die anyway, and for remote URIs the
	// IsAlive check before every call still catches a dead daemon.
	_ = c.SetKeepAlive(keepAliveInterval, keepAliveCount)

	if err := c.RegisterCloseCallback(func(*libvirt.Connect, libvirt.ConnectCloseReason) {
		d.signalDead()
	}); err != nil {
		_, _ = c.Close()
		return wrapErr("register close callback on", d.uri, err)
	}
	// One lifecycle registration per connection fans out to every
	// subscriber, so subscriptions survive reconnects without re-registering
	// each of them. The device and metadata registrations only keep the
	// definition cache honest.
	ids, err := registerEvents(c, d)
	if err != nil {
		for _, id := range ids {
			_ = c.DomainEventDeregister(id)
		}
		_ = c.UnregisterCloseCallback()
		_, _ = c.Close()
		return wrapErr("register domain events on", d.uri, err)
	}
	d.conn = c
	d.eventIDs = ids
	return nil
}

// registerEvents registers the driver's domain event callbacks on c and
// returns the ids registered, also those before a failure.
func registerEvents(c *libvirt.Connect, d *Driver) ([]int, error) {
	var ids []int
	for _, register := range []func() (int, error){
		func() (int, error) { return c.DomainEventLifecycleRegister(nil, d.onLifecycle) },
		func() (int, error) {
			return c.DomainEventDeviceAddedRegister(nil, func(c *libvirt.Connect, dom *libvirt.Domain, _ *libvirt.DomainEventDeviceAdded) {
				d.onDomainChange(c, dom)
			})
		},
		func() (int, error) {
			return c.DomainEventDeviceRemovedRegister(nil, func(c *libvirt.Connect, dom *libvirt.Domain, _ *libvirt.DomainEventDeviceRemoved) {
				d.onDomainChange(c, dom)
			})
		},
		func() (int, error) {
			return c.DomainEventMetadataChangeRegister(nil, func(c *libvirt.Connect, dom *libvirt.Domain, _ *libvirt.DomainEventMetadataChange) {
				d.onDomainChange(c, dom)
			})
		},
	} {
		id, err := register()
		if err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// disconnect drops the connection, if any. d.mu must be held for writing.
// Deregistration errors are ignored: on a dead connection they are expected,
// and the close below releases the callbacks either way.
func (d *Driver) disconnect() error {
	if d.conn == nil {
		return nil
	}
	c := d.conn
	d.conn = nil
	for _, id := range d.eventIDs {
		_ = c.DomainEventDeregister(id)
	}
	d.eventIDs = nil
	_ = c.UnregisterCloseCallback()
	if _, err := c.Close(); err != nil {
		return wrapErr("close connection to", d.uri, err)
	}
	return nil
}

// signalDead wakes the supervisor without ever blocking: it runs on the
// libvirt event loop goroutine.
func (d *Driver) signalDead() {
	select {
	case d.dead <- struct{}{}:
	default:
	}
}

// alive reports whether c can still be used. For remote URIs IsAlive is a
// local check of the client's socket state, not an RPC.
func alive(c *libvirt.Connect) bool {
	ok, err := c.IsAlive()
	return err == nil && ok
}

// acquire returns a live connection, reconnecting first if needed, with d.mu
// held for reading; the caller must call release when its libvirt calls are
// done.
func (d *Driver) acquire(ctx context.Context) (c *libvirt.Connect, release func(), err error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		d.mu.RLock()
		if d.closed {
			d.mu.RUnlock()
			return nil, nil, ErrClosed
		}
		if d.conn != nil && alive(d.conn) {
			return d.conn, d.mu.RUnlock, nil
		}
		d.mu.RUnlock()
		if err := d.reconnect(); err != nil {
			return nil, nil, err
		}
	}
}

// reconnect replaces a missing or dead connection. Another goroutine may have
// done so already, in which case it does nothing.
func (d *Driver) reconnect() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if d.conn != nil && alive(d.conn) {
		return nil
	}
	_ = d.disconnect() // the old connection is dead; closing it can only fail
	if err := d.connect(); err != nil {
		return err
	}
	// Events emitted while disconnected are lost: tell subscribers to re-list,
	// and read every definition anew.
	d.defs.forget()
	d.broadcast(hv.Event{Kind: hv.EventOther, Detail: DetailReconnected})
	return nil
}

// supervise reconnects in the background when the close callback reports a
// dead connection, so event subscribers recover even if no other call comes.
func (d *Driver) supervise() {
	defer d.wg.Done()
	for {
		select {
		case <-d.done:
			return
		case <-d.dead:
		}
		wait := reconnectMin
		for {
			err := d.reconnect()
			if err == nil || errors.Is(err, ErrClosed) {
				break
			}
			t := time.NewTimer(wait)
			select {
			case <-d.done:
				t.Stop()
				return
			case <-t.C:
			}
			wait = min(2*wait, reconnectMax)
		}
	}
}
