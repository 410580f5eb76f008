package source

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// The default debounce (300 ms quiet, 3 s max) is what these tests run
// with: a notification must arrive within notifyWithin of the last action,
// and no second one may follow within settle. A spurious notification would
// come one quiet period after the event that caused it, so settle and
// silence only need a margin over watchQuiet.
const (
	notifyWithin = 2 * time.Second
	settle       = watchQuiet + 300*time.Millisecond
	silence      = watchQuiet + 400*time.Millisecond // how long "nothing happens" is watched for
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
