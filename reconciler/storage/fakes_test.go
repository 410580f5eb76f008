package storage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/reconciler/plan"
)

// fakeImporter records requests; each import waits for a verdict on its
// channel unless auto is set.
type fakeImporter struct {
	mu       sync.Mutex
	requests []ImportRequest
	files    *fakeFiles
	// auto finishes imports at once with err (nil: success).
	auto    bool
	autoErr error
	// gates hold running imports: send nil to succeed, an error to fail.
	gates map[string]chan error
}

func newFakeImporter(files *fakeFiles) *fakeImporter {
	return &fakeImporter{files: files, gates: map[string]chan error{}, auto: true}
}

func (f *fakeImporter) Import(ctx context.Context, req ImportRequest, progress func(float64)) (ImportResult, error) {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	auto, autoErr := f.auto, f.autoErr
	var gate chan error
	if !auto {
		gate = make(chan error, 1)
		f.gates[req.Target] = gate
	}
	f.mu.Unlock()
	progress(42)
	var err error
	if auto {
		err = autoErr
	} else {
		select {
		case err = <-gate:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		return ImportResult{}, err
	}
	if !req.Block {
		f.files.put(req.Target, req.Size)
	}
	return ImportResult{Format: "qcow2"}, nil
}

func (f *fakeImporter) finish(t *testing.T, target string, err error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		g := f.gates[target]
		if g != nil {
			delete(f.gates, target)
		}
		f.mu.Unlock()
		if g != nil {
			g <- err
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no import of %s is running", target)
}

func (f *fakeImporter) last() ImportRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

// fakeFiles is an in-memory file system: path -> size (-1 for directories),
// with contents for the small files written with WriteFile.
type fakeFiles struct {
	mu       sync.Mutex
	paths    map[string]int64
	contents map[string][]byte
	// sparse are files made by CreateSparse and never written since.
	sparse map[string]bool
	log    []string
}

func newFakeFiles() *fakeFiles {
	return &fakeFiles{paths: map[string]int64{}, contents: map[string][]byte{}, sparse: map[string]bool{}}
}

func (f *fakeFiles) HasData(p string) (bool, error) {
	s, err := f.Size(p)
	f.mu.Lock()
	defer f.mu.Unlock()
	return s > 0 && !f.sparse[p], err
}

func (f *fakeFiles) ReadFile(p string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.contents[p]
	if !ok {
		return nil, os.ErrNotExist
	}
	return slices.Clone(b), nil
}

func (f *fakeFiles) WriteFile(p string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paths[p] = int64(len(data))
	f.contents[p] = slices.Clone(data)
	return nil
}

func (f *fakeFiles) put(p string, size int64) {
	f.mu.Lock()
	delete(f.sparse, p)
	f.paths[p] = size
	f.mu.Unlock()
}

func (f *fakeFiles) Exists(p string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.paths[p]; ok {
		return true
	}
	for q := range f.paths {
		if strings.HasPrefix(q, p+"/") {
			return true
		}
	}
	return false
}

func (f *fakeFiles) MkdirAll(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paths[p] = -1
	f.log = append(f.log, "mkdir "+p)
	return nil
}

func (f *fakeFiles) RemoveAll(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for q := range f.paths {
		if q == p || strings.HasPrefix(q, p+"/") {
			delete(f.paths, q)
			delete(f.contents, q)
		}
	}
	f.log = append(f.log, "rm -r "+p)
	return nil
}

func (f *fakeFiles) Remove(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.paths, p)
	delete(f.contents, p)
	f.log = append(f.log, "rm "+p)
	return nil
}

func (f *fakeFiles) CreateSparse(p string, size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.paths[p]; !ok {
		f.paths[p] = size
		f.sparse[p] = true
	}
	f.log = append(f.log, fmt.Sprintf("create %s %d", p, size))
	return nil
}

func (f *fakeFiles) Size(p string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.paths[p]
	if !ok {
		return 0, errors.New("not found")
	}
	return s, nil
}

// fakeLoops maps devices to backing files.
type fakeLoops struct {
	mu  sync.Mutex
	dev map[string]string
}

func newFakeLoops() *fakeLoops { return &fakeLoops{dev: map[string]string{}} }

func (l *fakeLoops) AttachAt(dev, backing string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur := l.dev[dev]; cur != "" && cur != backing {
		return fmt.Errorf("%s busy with %s", dev, cur)
	}
	l.dev[dev] = backing
	return nil
}

func (l *fakeLoops) Backing(dev string) (string, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.dev[dev]
	return b, ok, nil
}

func (l *fakeLoops) Find(backing string) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for d, b := range l.dev {
		if b == backing {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (l *fakeLoops) Detach(dev string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.dev, dev)
	return nil
}

type fakeKV struct {
	mu sync.Mutex
	m  map[string]map[string][]byte
}

func newFakeKV() *fakeKV { return &fakeKV{m: map[string]map[string][]byte{}} }

func (k *fakeKV) Get(b, key string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.m[b][key], nil
}

func (k *fakeKV) Put(b, key string, v []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m[b] == nil {
		k.m[b] = map[string][]byte{}
	}
	k.m[b][key] = slices.Clone(v)
	return nil
}

func (k *fakeKV) Delete(b, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m[b], key)
	return nil
}

func (k *fakeKV) ForEach(b string, fn func(string, []byte) error) error {
	k.mu.Lock()
	keys := slices.Sorted(maps.Keys(k.m[b]))
	vals := map[string][]byte{}
	for _, key := range keys {
		vals[key] = k.m[b][key]
	}
	k.mu.Unlock()
	for _, key := range keys {
		if err := fn(key, vals[key]); err != nil {
			return err
		}
	}
	return nil
}

type fakeSecrets map[string]map[string][]byte

func (s fakeSecrets) Read(ns, name string) (map[string][]byte, error) {
	if d, ok := s[ns+"/"+name]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("secret %s/%s: not found in the secrets directory", ns, name)
}

// rig is a Manager on fakes with a settable clock.
type rig struct {
	t       *testing.T
	m       *Manager
	imp     *fakeImporter
	files   *fakeFiles
	loops   *fakeLoops
	kv      *fakeKV
	secrets fakeSecrets
	now     time.Time
	cfg     Config
	node    string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, files: newFakeFiles(), loops: newFakeLoops(), kv: newFakeKV(), secrets: fakeSecrets{},
		now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), node: "node01"}
	r.imp = newFakeImporter(r.files)
	r.cfg = Config{Root: "/", StateDir: "/var/lib/nodevirt", SelfHeal: true, Now: func() time.Time { return r.now }}
	r.restart()
	return r
}

// restart makes a new Manager on the same host and state, as after an
// agent restart.
func (r *rig) restart() {
	r.t.Helper()
	if r.m != nil {
		r.m.Close()
	}
	m, err := NewManager(r.cfg, r.imp, r.loops, r.files, r.secrets, r.kv)
	if err != nil {
		r.t.Fatal(err)
	}
	r.m = m
	r.t.Cleanup(m.Close)
}

func (r *rig) state(yaml string) *State {
	r.t.Helper()
	set := manifests.Parse("storage.yaml", []byte(yaml), manifests.Options{})
	return Build(set, Options{Node: r.node})
}

func (r *rig) plan(st *State) *Plan {
	r.t.Helper()
	p, err := r.m.Plan(context.Background(), st)
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

// apply plans and applies once and waits for imports when auto is on.
func (r *rig) apply(st *State) (*Plan, Report) {
	r.t.Helper()
	p := r.plan(st)
	rep := r.m.Apply(context.Background(), p, All)
	if r.imp.auto {
		if err := r.m.Wait(context.Background()); err != nil {
			r.t.Fatal(err)
		}
	}
	return p, rep
}

// actions renders a plan as "kind object [target] (drift)" lines.
func actions(p *Plan) []string {
	var out []string
	for _, a := range p.Actions {
		s := string(a.Action) + " " + a.Object
		if a.Target != "" {
			s += " " + a.Target
		}
		if a.Drift {
			s += " (drift)"
		}
		out = append(out, s)
	}
	return out
}

func hasAction(p *Plan, kind plan.Action, object string) *Action {
	for i, a := range p.Actions {
		if a.Action == kind && a.Object == object {
			return &p.Actions[i]
		}
	}
	return nil
}

func hostDir(parts ...string) string { return filepath.Join(parts...) }
