package vm

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Holders of a shared key take turns, holders of other keys do not wait
// for them, and nothing stays behind once every lock is released.
func TestPathLocks_sharedKeysTakeTurns(t *testing.T) {
	var p pathLocks
	var inImage, peak atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each VM its own disk path, all on one image, keys given in
			// either order.
			keys := []string{"image oci:/img", "/disks/vm" + string(rune('a'+i))}
			if i%2 == 0 {
				keys[0], keys[1] = keys[1], keys[0]
			}
			unlock := p.lock(keys...)
			defer unlock()
			if n := inImage.Add(1); n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(2 * time.Millisecond)
			inImage.Add(-1)
		}()
	}
	wg.Wait()
	if peak.Load() != 1 {
		t.Fatalf("%d holders of one image at once", peak.Load())
	}
	other := p.lock("/disks/x")
	done := make(chan struct{})
	go func() { p.lock("/disks/y")(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a lock on another path waited")
	}
	other()
	if len(p.held) != 0 {
		t.Fatalf("locks left after release: %v", p.held)
	}
}
