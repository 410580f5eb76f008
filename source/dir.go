package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Debounce of Dir.Watch: an editor's save is a burst of events, and a
// "git checkout" or "cp -r" a longer one. Waiting for a quiet period turns
// each burst into one notification; the maximum delay bounds the wait when
// something keeps writing.
//
// How long "quiet" is depends on what the burst held. A burst of Creates
// alone (a file renamed into place, the way editors and atomic-save helpers
// write, or a directory moved in) left every file whole, so watchQuiet
// suffices. A Write may be one of several into a file still being written,
// and a Remove or Rename may be the first half of a backup-style save (the
// old file moved away, the new one not yet written): read too early, that
// tree lacks the documents of the file, and the agent would prune their
// VMs. Such bursts wait watchSettle, as long as every burst used to.
const (
	watchQuiet    = 30 * time.Millisecond
	watchSettle   = 300 * time.Millisecond
	watchMaxDelay = 3 * time.Second
)

// Dir is a Source backed by a local directory that the operator edits in
// place. Its revision is the digest of the manifest tree.
type Dir struct {
	root string
	sub  string

	// quiet, settle and maxDelay are the debounce settings; fields, not
	// globals, so tests can change them per value.
	quiet, settle, maxDelay time.Duration

	mu   sync.Mutex
	last Snapshot // from the last successful Fetch; Watch's first baseline
}

var _ Source = (*Dir)(nil)

func newDir(root, sub string) *Dir {
	return &Dir{root: root, sub: sub, quiet: watchQuiet, settle: watchSettle, maxDelay: watchMaxDelay}
}

// String describes the source, e.g. "dir /srv/manifests path clusters/edge".
func (d *Dir) String() string {
	if d.sub == "" {
		return "dir " + d.root
	}
	return "dir " + d.root + " path " + filepath.ToSlash(d.sub)
}

// Fetch implements Source by hashing the tree; the digest is the revision,
// so an unchanged tree yields an equal Snapshot.
func (d *Dir) Fetch(ctx context.Context) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, err
	}
	snap, err := d.snapshot()
	if err != nil {
		return Snapshot{}, fmt.Errorf("source %s: %w", d, err)
	}
	d.mu.Lock()
	d.last = snap
	d.mu.Unlock()
	return snap, nil
}

func (d *Dir) snapshot() (Snapshot, error) {
	dir, err := resolveSub(d.root, d.sub)
	if err != nil {
		return Snapshot{}, err
	}
	digest, err := digestTree(d.root, d.sub)
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Revision: digest, Dir: dir, Digest: digest, root: d.root}, nil
}

// Watch reports changes of the manifest tree. It sends one value on the
// first channel, after the tree has been quiet for 30 ms when only new
// files and directories appeared (a file renamed into place) or for 300 ms
// after any other change, at most 3 s after the first event either way, and
// only when the Digest differs from the one last reported (initially: the
// last Fetch, or the tree when Watch starts).
// The channel holds one pending value; further changes before the receiver
// reads it coalesce into it. The second channel carries problems that do not
// stop the watch (a directory that could not be watched, a tree that could
// not be read); when full, newer errors are dropped. Both close when ctx
// ends or the underlying watcher fails.
//
// The watcher is a trigger, not the truth: Fetch always rehashes, so the
// agent's periodic poll remains the safety net for file systems that emit no
// events (NFS, FUSE).
func (d *Dir) Watch(ctx context.Context) (<-chan struct{}, <-chan error, error) {
	base, err := resolveSub(d.root, d.sub)
	if err == nil {
		// WalkDir does not descend into a symlinked root; watch its target.
		base, err = filepath.EvalSymlinks(base)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("source %s: watch: %w", d, err)
	}
	wt, err := d.newWatch(base)
	if err != nil {
		return nil, nil, fmt.Errorf("source %s: watch: %w", d, err)
	}
	notify := make(chan struct{}, 1)
	errs := make(chan error, 8)
	go wt.run(ctx, notify, errs)
	return notify, errs, nil
}

// newWatch sets up the watches and the baseline digest.
func (d *Dir) newWatch(base string) (*watch, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	wt := &watch{d: d, w: w, base: base}
	if err := wt.addTree(base); err != nil {
		w.Close()
		return nil, err
	}
	if d.sub != "" {
		// .sourceignore lives at the root, above Path; watch the root
		// itself (not its other subdirectories) so edits to it count.
		root, err := filepath.EvalSymlinks(d.root)
		if err == nil {
			// Resolved like base, so event names share its prefix.
			err = w.Add(root)
		}
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("%s: %w", d.root, err)
		}
	}

	d.mu.Lock()
	wt.reported = d.last.Digest
	d.mu.Unlock()
	if wt.reported == "" {
		// Computed after the watches are in place, so a change in between
		// is seen either here or as an event.
		if s, err := d.snapshot(); err == nil {
			wt.reported = s.Digest
		}
	}
	return wt, nil
}

// watch is the state of one Watch call, owned by its goroutine.
type watch struct {
	d        *Dir
	w        *fsnotify.Watcher
	base     string // the watched tree: root/Path
	reported string // the digest last reported (or the baseline)
}

// addTree watches dir and every directory below it that can be part of the
// tree. fsnotify is not recursive, hence the walk.
func (wt *watch) addTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking; its Remove event follows
			}
			return err
		}
		if !e.IsDir() {
			return nil
		}
		if p != dir && strings.HasPrefix(e.Name(), ".") {
			return fs.SkipDir
		}
		if err := wt.w.Add(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("watch %s: %w", p, err)
		}
		return nil
	})
}

// inTree reports whether p is the watched tree or below it (the root above
// Path is watched for .sourceignore only).
func (wt *watch) inTree(p string) bool {
	rel, err := filepath.Rel(wt.base, p)
	return err == nil && filepath.IsLocal(rel)
}

func (wt *watch) run(ctx context.Context, notify chan<- struct{}, errs chan<- error) {
	defer close(errs)
	defer close(notify)
	// Close makes fsnotify's reader goroutine exit even though nobody
	// drains Events any more (it selects on its done channel).
	defer wt.w.Close()

	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}

	// One timer for the whole tree: every relevant event pushes it back by
	// the quiet period, but never beyond maxDelay after the first one. The
	// burst settles the long way once any event in it asked to.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		armed    bool
		first    time.Time
		cautious bool // the burst held more than Creates: wait settle
		force    bool // fire even when the digest looks unchanged
	)
	dirty := func(onlyCreate bool) {
		now := time.Now()
		if !armed {
			armed, first, cautious = true, now, false
		}
		cautious = cautious || !onlyCreate
		wait := wt.d.quiet
		if cautious {
			wait = wt.d.settle
		}
		if left := wt.d.maxDelay - now.Sub(first); left < wait {
			wait = max(left, 0)
		}
		timer.Reset(wait)
	}

	for {
		select {
		case <-ctx.Done():
			return

		case ev, ok := <-wt.w.Events:
			if !ok {
				return
			}
			// Chmod is noise (indexers, backup tools; on Linux a delete
			// sends one first); editor temporaries change nothing the
			// tree holds.
			if !ev.Has(fsnotify.Create|fsnotify.Write|fsnotify.Remove|fsnotify.Rename) ||
				isTempName(filepath.Base(ev.Name)) {
				continue
			}
			if ev.Has(fsnotify.Create) && wt.inTree(ev.Name) && !strings.HasPrefix(filepath.Base(ev.Name), ".") {
				if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
					// A new directory: watch it and everything already
					// created inside it (files written between mkdir and
					// Add produce no events; the digest at the end of the
					// quiet period sees them anyway).
					if err := wt.addTree(ev.Name); err != nil {
						report(err)
					}
				}
			}
			// A Create that is also something else (fsnotify may merge
			// ops) is not a whole file for certain.
			dirty(ev.Op == fsnotify.Create)

		case err, ok := <-wt.w.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// The kernel dropped events: re-add every directory (new
				// ones may have been missed) and tell the consumer to
				// re-read, whatever the digest says.
				if err := wt.addTree(wt.base); err != nil {
					report(err)
				}
				force = true
				dirty(false)
				continue
			}
			report(err)

		case <-timer.C:
			armed = false
			s, err := wt.d.snapshot()
			if err != nil {
				report(fmt.Errorf("source %s: %w", wt.d, err))
				continue
			}
			if s.Digest == wt.reported && !force {
				continue
			}
			force = false
			wt.reported = s.Digest
			select {
			case notify <- struct{}{}:
			default: // one is already pending; it covers this change too
			}
		}
	}
}
