package vm

import (
	"fmt"
	"sync"
	"time"
)

// startBackoff spaces out starts of a domain whose start keeps failing, as
// KubeVirt's VM controller does: 10 s × failures², at most 5 minutes. Without
// it every libvirt event would trigger another doomed start. It lives in
// memory: an agent restart is a fair moment to try again at once.
type startBackoff struct {
	mu sync.Mutex
	m  map[string]startFailures
}

type startFailures struct {
	count int
	next  time.Time
	last  error
}

const (
	backoffStep = 10 * time.Second
	backoffMax  = 5 * time.Minute
)

func (b *startBackoff) waiting(domain string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.m[domain]
	return ok && now.Before(f.next)
}

func (b *startBackoff) reason(domain string, now time.Time) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.m[domain]
	return fmt.Sprintf("start failed %d times (last: %v); next try in %s", f.count, f.last, f.next.Sub(now).Round(time.Second))
}

func (b *startBackoff) record(domain string, err error, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		delete(b.m, domain)
		return
	}
	if b.m == nil {
		b.m = map[string]startFailures{}
	}
	f := b.m[domain]
	f.count++
	f.last = err
	d := time.Duration(f.count*f.count) * backoffStep
	if d > backoffMax {
		d = backoffMax
	}
	f.next = now.Add(d)
	b.m[domain] = f
}
