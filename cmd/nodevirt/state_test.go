package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stateWorld is a source with a blank and an http DataVolume on the
// hostpath provisioner, imported for real into files under a temporary root.
type stateWorld struct {
	t                *testing.T
	src, state, root string
	image            []byte
	disks            []string
}

func newStateWorld(t *testing.T) *stateWorld {
	t.Helper()
	w := &stateWorld{t: t, src: t.TempDir(), state: t.TempDir(), root: t.TempDir()}
	r := rand.New(rand.NewPCG(7, 7))
	w.image = make([]byte, 2<<20)
	for i := range w.image {
		w.image[i] = byte(r.UintN(256))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		http.ServeContent(rw, req, "disk.img", time.Time{}, bytes.NewReader(w.image))
	}))
	t.Cleanup(srv.Close)
	manifests := hostpathStorage("/hp") + `---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: statetest-blank}
spec:
  source: {blank: {}}
  storage:
    resources: {requests: {storage: 64Mi}}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: statetest-http}
spec:
  source:
    http: {url: "` + srv.URL + `/disk.img"}
  storage:
    resources: {requests: {storage: 64Mi}}
`
	if err := os.WriteFile(filepath.Join(w.src, "storage.yaml"), []byte(manifests), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *stateWorld) apply() (string, string, int) {
	return run(w.t, "--state", w.state, "--root", w.root, "--source", w.src, "storage", "apply", "--wait")
}

// written imports both DataVolumes, then writes known bytes into both disks
// as a guest would, and returns their digests.
func (w *stateWorld) written() map[string]string {
	w.t.Helper()
	out, errOut, code := w.apply()
	if code != 0 {
		w.t.Fatalf("first apply: exit %d\n%s%s", code, out, errOut)
	}
	disks, _ := filepath.Glob(filepath.Join(w.root, "hp", "*", "disk.img"))
	if len(disks) != 2 {
		w.t.Fatalf("disks after import: %v\n%s", disks, out)
	}
	w.disks = disks
	for i, d := range disks {
		f, err := os.OpenFile(d, os.O_RDWR, 0)
		if err != nil {
			w.t.Fatal(err)
		}
		for _, off := range []int64{0, 1 << 20, 60 << 20} {
			if _, err := f.WriteAt([]byte(fmt.Sprintf("guest data %d at %d", i, off)), off); err != nil {
				w.t.Fatal(err)
			}
		}
		f.Close()
	}
	return w.digests()
}

func (w *stateWorld) digests() map[string]string {
	w.t.Helper()
	out := map[string]string{}
	for _, d := range w.disks {
		b, err := os.ReadFile(d)
		if err != nil {
			w.t.Fatal(err)
		}
		s := sha256.Sum256(b)
		out[d] = hex.EncodeToString(s[:])
	}
	return out
}

func (w *stateWorld) same(before map[string]string) {
	w.t.Helper()
	after := w.digests()
	for d, s := range before {
		if after[d] != s {
			w.t.Errorf("%s changed: sha256 %s, was %s", d, after[d], s)
		}
	}
}

func damagePages(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i*7 + 3)
	}
	for off := int64(2 * 4096); off < st.Size(); off += 4096 {
		if _, err := f.WriteAt(junk, off); err != nil {
			t.Fatal(err)
		}
	}
}

// A lost, empty, truncated or damaged state.db never leads to an import
// over existing disks: damage stops the run with the file and what to do;
// a state directory without its database adopts the disks by their
// markers, or leaves unmarked ones alone and says why.
func TestStorageApply_stateLossKeepsDisks(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(w *stateWorld, db string)
		code   int
		want   []string
	}{
		{"empty", func(w *stateWorld, db string) { os.Truncate(db, 0) }, 1,
			[]string{"state.db is damaged", "empty (0 bytes)", "state.db.bak", "nodevirt state rebuild"}},
		{"truncated", func(w *stateWorld, db string) {
			// The meta pages stay; the pages they point to are gone.
			os.Truncate(db, 3*4096)
		}, 1, []string{"state.db is damaged", "truncated", "nodevirt state rebuild --from-backup"}},
		{"damaged pages", func(w *stateWorld, db string) { damagePages(t, db) }, 1,
			[]string{"state.db is damaged", "nodevirt state rebuild"}},
		{"missing, backup kept", func(w *stateWorld, db string) { os.Remove(db) }, 1,
			[]string{"state.db is damaged", "missing but its backup exists"}},
		{"missing", func(w *stateWorld, db string) {
			os.Remove(db)
			os.Remove(db + ".bak")
		}, 0, []string{"adopt", "carries nodevirt's marker"}},
		{"missing, no markers", func(w *stateWorld, db string) {
			os.Remove(db)
			os.Remove(db + ".bak")
			for _, d := range w.disks {
				os.Remove(d + ".nodevirt.json")
			}
		}, 0, []string{"disk.img exists but nodevirt's state does not know it: run `nodevirt state rebuild` or move the file away"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newStateWorld(t)
			before := w.written()
			tc.break_(w, filepath.Join(w.state, "state.db"))
			out, errOut, code := w.apply()
			if code != tc.code {
				t.Errorf("second apply: exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			for _, s := range tc.want {
				if !strings.Contains(out+errOut, s) {
					t.Errorf("the report does not say %q:\n%s%s", s, out, errOut)
				}
			}
			w.same(before)
			if tc.code == 0 {
				// And again, now that the state knows (or still refuses).
				out, errOut, code := w.apply()
				if code != 0 {
					t.Errorf("third apply: exit %d\n%s%s", code, out, errOut)
				}
				w.same(before)
			}
		})
	}
}

// state check finds the damage (exit 1, the file named); state rebuild
// moves the file aside and restores the DataVolumes from their markers, so
// the next apply imports nothing and the disks are untouched.
func TestStateCheckAndRebuild(t *testing.T) {
	w := newStateWorld(t)
	before := w.written()
	db := filepath.Join(w.state, "state.db")
	st := func(args ...string) (string, string, int) {
		return run(t, append([]string{"--state", w.state, "--root", w.root, "--libvirt", "test:///default"}, args...)...)
	}
	out, errOut, code := st("state", "check")
	if code != 0 || !strings.Contains(out, "state.db: ok") || !strings.Contains(out, "storage.claims") || !strings.Contains(out, "backup "+db+".bak: ok") {
		t.Fatalf("check of a good database: exit %d\n%s%s", code, out, errOut)
	}
	damagePages(t, db)
	out, errOut, code = st("state", "check")
	if code != 1 || !strings.Contains(out, "DAMAGED") || !strings.Contains(out, "nodevirt state rebuild --from-backup") {
		t.Fatalf("check of a damaged database: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = st("-o", "json", "state", "check")
	if code != 1 || !strings.Contains(out, `"ok": false`) || !strings.Contains(out, `"damage"`) {
		t.Fatalf("check -o json: exit %d\n%s", code, out)
	}
	out, errOut, code = st("state", "rebuild")
	if code != 0 || !strings.Contains(out, "restored claim default/statetest-blank") || !strings.Contains(out, "restored claim default/statetest-http") {
		t.Fatalf("rebuild: exit %d\n%s%s", code, out, errOut)
	}
	moved, _ := filepath.Glob(db + ".damaged-*")
	kept, _ := filepath.Glob(db + ".bak-*")
	if len(moved) != 1 || len(kept) != 1 {
		t.Fatalf("the damaged file and the old backup must be kept: %v %v", moved, kept)
	}
	out, errOut, code = w.apply()
	if code != 0 || !strings.Contains(out, "Nothing to do") {
		t.Fatalf("apply after rebuild: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("rebuild then apply:\n%s", out)
	w.same(before)

	// The backup path: truncate, restore, apply.
	if err := os.Truncate(db, 3*4096); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = st("state", "rebuild", "--from-backup")
	if code != 0 || !strings.Contains(out, "restored "+db+".bak") {
		t.Fatalf("rebuild --from-backup: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = w.apply()
	if code != 0 || !strings.Contains(out, "Nothing to do") {
		t.Fatalf("apply after restore: exit %d\n%s%s", code, out, errOut)
	}
	w.same(before)
}
