package vm

import (
	"slices"
	"sync"
)

// pathLocks holds one lock per key (a host path, an image) while anyone
// uses it; a key nobody holds takes no memory, so the set does not grow
// with every VM ever applied.
type pathLocks struct {
	mu   sync.Mutex
	held map[string]*pathLock
}

type pathLock struct {
	sync.Mutex
	users int
}

// lock takes the locks of keys ("" ignored) in sorted order, so two
// callers sharing keys cannot each wait for the other, and returns what
// releases them.
func (p *pathLocks) lock(keys ...string) (unlock func()) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	if len(keys) > 0 && keys[0] == "" {
		keys = keys[1:]
	}
	locks := make([]*pathLock, len(keys))
	p.mu.Lock()
	if p.held == nil {
		p.held = map[string]*pathLock{}
	}
	for i, k := range keys {
		l := p.held[k]
		if l == nil {
			l = &pathLock{}
			p.held[k] = l
		}
		l.users++
		locks[i] = l
	}
	p.mu.Unlock()
	for _, l := range locks {
		l.Lock()
	}
	return func() {
		for _, l := range locks {
			l.Unlock()
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, k := range keys {
			if locks[i].users--; locks[i].users == 0 {
				delete(p.held, k)
			}
		}
	}
}
