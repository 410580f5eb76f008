package virt

import (
	"context"
	"fmt"
	"sync"
	"time"

	"libvirt.org/go/libvirt"

	"github.com/nodevirt/nodevirt/runtime/hv"
)

// DetailReconnected is the Detail of the hv.EventOther event (with an empty
// Domain) sent to every subscriber after the driver reconnected: events that
// happened while the connection was down are lost, so consumers should re-list.
const DetailReconnected = "reconnected"

// eventBuffer is the capacity of each subscription channel. When a consumer
// falls this far behind, the oldest events are dropped: the callback runs on
// libvirt's single event loop goroutine and must never block, and the
// reconciler treats events only as hints to re-list, so newer ones matter more.
const eventBuffer = 256

// libvirt's default event loop implementation is process-global by libvirt's
// design: virEventRegisterDefaultImpl installs it once for the whole process
// and it must be installed before the first connection is opened, or
// keepalives and event callbacks never fire. These package-level variables
// record that one-time registration; they are the only package state.
var (
	eventLoopOnce sync.Once
	eventLoopErr  error
)

// startEventLoop registers libvirt's default event loop and runs it on a
// goroutine for the life of the process.
func startEventLoop() error {
	eventLoopOnce.Do(func() {
		if err := libvirt.EventRegisterDefaultImpl(); err != nil {
			eventLoopErr = fmt.Errorf("register libvirt event loop: %w", err)
			return
		}
		go func() {
			for {
				// An error here is transient (e.g. an interrupted poll);
				// pausing avoids a hot loop if it repeats.
				if err := libvirt.EventRunDefaultImpl(); err != nil {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	})
	return eventLoopErr
}

type subscriber struct {
	ch chan hv.Event
}

// Events streams lifecycle events of all domains until ctx ends or the
// driver is closed; then the channel is closed. Subscriptions survive
// reconnects, which are announced with DetailReconnected.
func (d *Driver) Events(ctx context.Context) (<-chan hv.Event, error) {
	// Make sure a live connection (and with it the lifecycle registration)
	// exists, so the caller sees connection errors now rather than silence.
	// Holding the read lock until the goroutine below is counted keeps this
	// from racing with Close's wg.Wait.
	_, release, err := d.acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("subscribe to libvirt events: %w", err)
	}
	defer release()

	s := &subscriber{ch: make(chan hv.Event, eventBuffer)}
	d.subsMu.Lock()
	id := d.nextSub
	d.nextSub++
	d.subs[id] = s
	d.subsMu.Unlock()

	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		select {
		case <-ctx.Done():
		case <-d.done:
		}
		d.subsMu.Lock()
		// Close may already have closed and removed it.
		if _, ok := d.subs[id]; ok {
			delete(d.subs, id)
			close(s.ch)
		}
		d.subsMu.Unlock()
	}()
	return s.ch, nil
}

// onLifecycle is the libvirt lifecycle callback. It runs on the event loop
// goroutine, so it must not block and must not take d.mu. The domain object
// belongs to libvirt for the duration of the callback and must not be freed.
func (d *Driver) onLifecycle(_ *libvirt.Connect, dom *libvirt.Domain, e *libvirt.DomainEventLifecycle) {
	// The cache first: a subscriber woken by this event must not be handed
	// the document from before it.
	d.dropDomain(dom)
	name, err := dom.GetName() // a local accessor, no RPC
	if err != nil {
		return
	}
	d.broadcast(eventOf(name, e))
}

// broadcast delivers ev to every subscriber, dropping that subscriber's
// oldest buffered event when its buffer is full. All channel operations are
// non-blocking; subsMu makes them safe against the channel being closed.
func (d *Driver) broadcast(ev hv.Event) {
	d.subsMu.Lock()
	defer d.subsMu.Unlock()
	for _, s := range d.subs {
		select {
		case s.ch <- ev:
			continue
		default:
		}
		select {
		case <-s.ch:
		default:
		}
		select {
		case s.ch <- ev:
		default:
		}
	}
}
