package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// The default debounce (30 ms quiet after Creates alone, 300 ms after
// anything else, 3 s max) is what these tests run with: a notification must
// arrive within notifyWithin of the last action, and no second one may
// follow within settle. A spurious notification would come at most one
// settle period after the event that caused it, so settle and silence only
// need a margin over watchSettle.
const (
	notifyWithin = 2 * time.Second
	settle       = watchSettle + 300*time.Millisecond
	silence      = watchSettle + 400*time.Millisecond // how long "nothing happens" is watched for
)

// watchFixture is a Dir with vms/vm1.yaml and a running watch.
type watchFixture struct {
	root   string
	notify <-chan struct{}
	errs   <-chan error
	cancel context.CancelFunc
}

func startWatch(t *testing.T) *watchFixture {
	t.Helper()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "vms/vm1.yaml"), "kind: VirtualMachine\n")
	d := openDir(t, Options{URL: root})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	notify, errs, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &watchFixture{root: root, notify: notify, errs: errs, cancel: cancel}
}

func (f *watchFixture) path(rel string) string { return filepath.Join(f.root, filepath.FromSlash(rel)) }

// expectOne fails unless exactly one notification arrives: one within
// notifyWithin, then none during settle.
func (f *watchFixture) expectOne(t *testing.T, what string) {
	t.Helper()
	select {
	case _, ok := <-f.notify:
		if !ok {
			t.Fatalf("%s: notify channel closed", what)
		}
	case err := <-f.errs:
		t.Fatalf("%s: watch error %v", what, err)
	case <-time.After(notifyWithin):
		t.Fatalf("%s: no notification within %s", what, notifyWithin)
	}
	f.expectNone(t, what+" (second notification)", settle)
}

func (f *watchFixture) expectNone(t *testing.T, what string, d time.Duration) {
	t.Helper()
	select {
	case <-f.notify:
		t.Fatalf("%s: unexpected notification", what)
	case err := <-f.errs:
		t.Fatalf("%s: watch error %v", what, err)
	case <-time.After(d):
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDir_Watch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		act  func(t *testing.T, f *watchFixture)
	}{
		{"edit in place", func(t *testing.T, f *watchFixture) {
			fh, err := os.OpenFile(f.path("vms/vm1.yaml"), os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			_, err = fh.WriteString("spec: {}\n")
			must(t, err)
			must(t, fh.Close())
		}},
		{"atomic rename-on-save", func(t *testing.T, f *watchFixture) {
			// No Write event reaches vm1.yaml: only Create after the rename.
			writeFile(t, f.path("vms/vm1.yaml.tmp"), "kind: VirtualMachine\nv: 2\n")
			must(t, os.Rename(f.path("vms/vm1.yaml.tmp"), f.path("vms/vm1.yaml")))
		}},
		{"vim backup-style save", func(t *testing.T, f *watchFixture) {
			must(t, os.Rename(f.path("vms/vm1.yaml"), f.path("vms/vm1.yaml~")))
			writeFile(t, f.path("vms/vm1.yaml"), "kind: VirtualMachine\nv: 3\n")
			must(t, os.Remove(f.path("vms/vm1.yaml~")))
		}},
		{"new subdirectory with a file written right after mkdir", func(t *testing.T, f *watchFixture) {
			must(t, os.MkdirAll(f.path("storage/pvs/local"), 0o755))
			writeFile(t, f.path("storage/pvs/local/pv.yaml"), "kind: PersistentVolume\n")
			f.expectOne(t, "mkdir + write")
			// The new directories are watched now: a later edit deep inside
			// fires on its own.
			writeFile(t, f.path("storage/pvs/local/pv.yaml"), "kind: PersistentVolume\nv: 2\n")
		}},
		{"delete", func(t *testing.T, f *watchFixture) {
			must(t, os.Remove(f.path("vms/vm1.yaml")))
		}},
		{"delete a directory", func(t *testing.T, f *watchFixture) {
			must(t, os.RemoveAll(f.path("vms")))
		}},
		{"burst of edits", func(t *testing.T, f *watchFixture) {
			for i := range 20 {
				writeFile(t, f.path("vms/vm1.yaml"), "v: "+string(rune('a'+i))+"\n")
				time.Sleep(20 * time.Millisecond)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := startWatch(t)
			tc.act(t, f)
			f.expectOne(t, tc.name)
		})
	}
}

// The "nothing fires" cases each end with a real edit, so a dead watcher
// cannot pass them.
func TestDir_Watch_quiet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		act  func(t *testing.T, f *watchFixture)
	}{
		{"temp files only", func(t *testing.T, f *watchFixture) {
			for _, name := range []string{"vms/.vm1.yaml.swp", "vms/vm1.yaml~", "vms/4913", "vms/x.tmp", "vms/.#vm1.yaml"} {
				writeFile(t, f.path(name), "scratch\n")
				must(t, os.Remove(f.path(name)))
			}
		}},
		// Here the digest is unchanged anyway; that Chmod and temporaries
		// never even start the debounce is shown by
		// TestDir_Watch_baselineIsLastFetch.
		{"chmod only", func(t *testing.T, f *watchFixture) {
			must(t, os.Chmod(f.path("vms/vm1.yaml"), 0o600))
		}},
		{"same content rewritten", func(t *testing.T, f *watchFixture) {
			// Events fire, the digest does not change.
			writeFile(t, f.path("vms/vm1.yaml"), "kind: VirtualMachine\n")
		}},
		{"inside a dot-directory", func(t *testing.T, f *watchFixture) {
			must(t, os.MkdirAll(f.path(".git/objects"), 0o755))
			f.expectNone(t, "mkdir .git", silence)
			writeFile(t, f.path(".git/objects/x"), "blob\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := startWatch(t)
			tc.act(t, f)
			f.expectNone(t, tc.name, silence)
			writeFile(t, f.path("vms/vm1.yaml"), "kind: VirtualMachine\nedited: true\n")
			f.expectOne(t, tc.name+", then a real edit")
		})
	}
}

func TestDir_Watch_baselineIsLastFetch(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a.yaml"), "v: 1\n")
	d := openDir(t, Options{URL: root})
	if _, err := d.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Changed between Fetch and Watch: the consumer holds the old tree,
	// so the first settled event must fire even though the watcher never
	// saw the old tree itself.
	writeFile(t, filepath.Join(root, "a.yaml"), "v: 2\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notify, errs, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := &watchFixture{root: root, notify: notify, errs: errs}
	// With a change pending, any event that reached the debounce would
	// fire; these must not reach it.
	must(t, os.Chmod(filepath.Join(root, "a.yaml"), 0o600))
	f.expectNone(t, "chmod", silence)
	writeFile(t, filepath.Join(root, ".a.yaml.swp"), "swap\n")
	writeFile(t, filepath.Join(root, "4913"), "")
	must(t, os.Remove(filepath.Join(root, "4913")))
	f.expectNone(t, "editor temporaries", silence)
	writeFile(t, filepath.Join(root, "b.tmp.yaml"), "x\n")
	must(t, os.Remove(filepath.Join(root, "b.tmp.yaml")))
	f.expectOne(t, "any event after a change made before Watch")
}

func TestDir_Watch_closesOnCancel(t *testing.T) {
	t.Parallel()
	f := startWatch(t)
	f.cancel()
	deadline := time.After(notifyWithin)
	for notify, errs := f.notify, f.errs; notify != nil || errs != nil; {
		select {
		case _, ok := <-notify:
			if !ok {
				notify = nil
			}
		case _, ok := <-errs:
			if !ok {
				errs = nil
			}
		case <-deadline:
			t.Fatal("channels not closed after cancel")
		}
	}
}

func TestDir_Watch_overflowRescansAndFires(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a.yaml"), "v: 1\n")
	d := openDir(t, Options{URL: root})
	wt, err := d.newWatch(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notify, errs := make(chan struct{}, 1), make(chan error, 8)
	go wt.run(ctx, notify, errs)
	f := &watchFixture{root: root, notify: notify, errs: errs}

	// A directory whose Create event the kernel dropped. An empty
	// directory is not part of the tree, so its mkdir fires nothing.
	must(t, os.Mkdir(filepath.Join(root, "lost"), 0o755))
	f.expectNone(t, "mkdir of an empty directory", settle)
	must(t, wt.w.Remove(filepath.Join(root, "lost")))

	// Same digest, but lost events mean the consumer must re-read.
	wt.w.Errors <- fsnotify.ErrEventOverflow
	f.expectOne(t, "overflow")
	// The rescan watches "lost" again.
	writeFile(t, filepath.Join(root, "lost/x.yaml"), "x\n")
	f.expectOne(t, "edit in a directory re-added by the rescan")
}

func TestDir_Watch_sourceignoreAbovePath(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "edge/vm.yaml"), "a\n")
	writeFile(t, filepath.Join(root, "edge/skip.yaml"), "b\n")
	d := openDir(t, Options{URL: root, Path: "edge"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notify, errs, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := &watchFixture{root: root, notify: notify, errs: errs}
	writeFile(t, filepath.Join(root, "outside.yaml"), "not under Path\n")
	f.expectNone(t, "file outside Path", silence)
	writeFile(t, filepath.Join(root, ".sourceignore"), "edge/skip.yaml\n")
	f.expectOne(t, ".sourceignore at the root changed the tree under Path")
}

func TestDir_Watch_skipsDotDirs(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, ".git/objects/aa"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "vms"), 0o755))
	d := openDir(t, Options{URL: root})
	wt, err := d.newWatch(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notify, errs := make(chan struct{}, 1), make(chan error, 8)
	go wt.run(ctx, notify, errs)
	f := &watchFixture{root: root, notify: notify, errs: errs}

	// Created after the watch started: .github is skipped, new is added.
	must(t, os.MkdirAll(filepath.Join(root, ".github/workflows"), 0o755))
	writeFile(t, filepath.Join(root, "new/vm.yaml"), "x\n")
	f.expectOne(t, "new directory")
	got := wt.w.WatchList()
	slices.Sort(got)
	want := []string{root, filepath.Join(root, "new"), filepath.Join(root, "vms")}
	if !slices.Equal(got, want) {
		t.Errorf("watched %q, want %q", got, want)
	}
}

// startWatchWith is startWatch with the debounce set: quiet after Creates
// alone, settle after anything else. A settle far longer than the test
// shows which of the two a burst waited for without timing anything.
func startWatchWith(t *testing.T, quiet, settle time.Duration) *watchFixture {
	t.Helper()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "vms/vm1.yaml"), "kind: VirtualMachine\n")
	d := openDir(t, Options{URL: root})
	d.quiet, d.settle, d.maxDelay = quiet, settle, 2*time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	notify, errs, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &watchFixture{root: root, notify: notify, errs: errs, cancel: cancel}
}

// saveByRename writes content to a temporary file beside rel and renames
// it over rel, as editors and atomic-save helpers do.
func (f *watchFixture) saveByRename(t *testing.T, rel, content string) {
	t.Helper()
	tmp := f.path(rel) + ".tmp"
	writeFile(t, tmp, content)
	must(t, os.Rename(tmp, f.path(rel)))
}

// A file renamed into place is whole: its save fires after the short quiet
// period, never waiting for the long one (an hour here).
func TestDir_Watch_renameIntoPlaceFiresAfterQuiet(t *testing.T) {
	t.Parallel()
	f := startWatchWith(t, 20*time.Millisecond, time.Hour)
	f.saveByRename(t, "vms/vm1.yaml", "kind: VirtualMachine\nv: 2\n")
	f.expectOne(t, "rename over an existing file")
	f.saveByRename(t, "vms/vm2.yaml", "kind: VirtualMachine\n")
	f.expectOne(t, "rename into a new name")

	// A directory moved in whole is a Create too; what it holds is read
	// with it, and it is watched from then on.
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "pvs/pv.yaml"), "kind: PersistentVolume\n")
	must(t, os.Rename(filepath.Join(outside, "pvs"), f.path("pvs")))
	f.expectOne(t, "directory moved in")
	f.saveByRename(t, "pvs/pv.yaml", "kind: PersistentVolume\nv: 2\n")
	f.expectOne(t, "rename inside the directory moved in")
}

// Saves renamed into place one after the other, each sooner than the quiet
// period after the last, are one burst: one notification.
func TestDir_Watch_burstOfRenamesIsOneNotification(t *testing.T) {
	t.Parallel()
	f := startWatchWith(t, 500*time.Millisecond, time.Hour)
	for i := range 10 {
		f.saveByRename(t, "vms/vm1.yaml", fmt.Sprintf("kind: VirtualMachine\nv: %d\n", i))
		time.Sleep(10 * time.Millisecond)
	}
	f.expectOne(t, "ten saves 10 ms apart")
}

// The first half of a backup-style save (the file moved away) and an
// in-place write (perhaps one of several) wait the long settle period: read
// at the short one, the tree could lack the file, and its VMs would be
// pruned. With the quiet period 10 ms and settle 3 s, nothing may fire
// while the save is half done, and the one notification sees it finished.
func TestDir_Watch_removalsAndWritesWaitSettle(t *testing.T) {
	t.Parallel()
	const halfDone = 400 * time.Millisecond // 40 quiet periods
	for _, tc := range []struct {
		name       string
		start, end func(t *testing.T, f *watchFixture)
	}{
		{"backup-style save", func(t *testing.T, f *watchFixture) {
			must(t, os.Rename(f.path("vms/vm1.yaml"), f.path("vms/vm1.yaml.orig")))
		}, func(t *testing.T, f *watchFixture) {
			writeFile(t, f.path("vms/vm1.yaml"), "kind: VirtualMachine\nv: 2\n")
			must(t, os.Remove(f.path("vms/vm1.yaml.orig")))
		}},
		{"write in place, in two parts", func(t *testing.T, f *watchFixture) {
			must(t, os.WriteFile(f.path("vms/vm1.yaml"), []byte("kind: Virtual"), 0o644))
		}, func(t *testing.T, f *watchFixture) {
			fh, err := os.OpenFile(f.path("vms/vm1.yaml"), os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			_, err = fh.WriteString("Machine\nv: 2\n")
			must(t, err)
			must(t, fh.Close())
		}},
		{"a new file created, then written", func(t *testing.T, f *watchFixture) {
			writeFile(t, f.path("vms/vm2.yaml"), "kind: Virtual")
		}, func(t *testing.T, f *watchFixture) {
			writeFile(t, f.path("vms/vm2.yaml"), "kind: VirtualMachine\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := startWatchWith(t, 10*time.Millisecond, 3*time.Second)
			tc.start(t, f)
			f.expectNone(t, tc.name+", half done", halfDone)
			tc.end(t, f)
			select {
			case <-f.notify:
			case err := <-f.errs:
				t.Fatalf("watch error %v", err)
			case <-time.After(3*time.Second + notifyWithin):
				t.Fatal("no notification after the save finished")
			}
		})
	}
}
