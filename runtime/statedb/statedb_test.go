package statedb

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func openTemp(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, path
}

func TestDB_roundtrip(t *testing.T) {
	db, _ := openTemp(t)
	if v, err := db.Get("vms", "default/a"); err != nil || v != nil {
		t.Fatalf("Get on empty db = %q, %v; want nil, nil", v, err)
	}
	if err := db.Put("vms", "default/a", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := db.Put("vms", "default/b", []byte(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := db.Put("vms", "default/e", nil); err != nil {
		t.Fatal(err)
	}
	v, err := db.Get("vms", "default/a")
	if err != nil || string(v) != `{"v":1}` {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if v, _ := db.Get("vms", "default/e"); v == nil || len(v) != 0 {
		t.Errorf("Get of a nil Put = %#v, want empty non-nil", v)
	}

	got := map[string]string{}
	if err := db.ForEach("vms", func(k string, v []byte) error {
		got[k] = string(v)
		// Writing from inside ForEach must not deadlock.
		return db.Put("seen", k, v)
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"default/a": `{"v":1}`, "default/b": `{"v":2}`, "default/e": ""}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ForEach (-want +got):\n%s", diff)
	}
	if err := db.ForEach("missing", func(string, []byte) error { return errors.New("called") }); err != nil {
		t.Errorf("ForEach on missing bucket = %v", err)
	}
	stop := errors.New("stop")
	if err := db.ForEach("vms", func(string, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("ForEach did not return fn's error: %v", err)
	}

	for range 2 {
		if err := db.Delete("vms", "default/a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Delete("missing", "x"); err != nil {
		t.Errorf("Delete in missing bucket = %v", err)
	}
	if v, err := db.Get("vms", "default/a"); err != nil || v != nil {
		t.Errorf("Get after Delete = %q, %v", v, err)
	}
	if err := db.Put("", "k", nil); err == nil {
		t.Error("Put accepted an empty bucket name")
	}
	if err := db.Put("vms", "", nil); err == nil {
		t.Error("Put accepted an empty key")
	}
}

func TestDB_reopenPersists(t *testing.T) {
	db, path := openTemp(t)
	if err := db.Put("vms", "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if v, err := db2.Get("vms", "a"); err != nil || string(v) != "1" {
		t.Errorf("after reopen Get = %q, %v", v, err)
	}
}

func TestOpen_locked(t *testing.T) {
	_, path := openTemp(t)
	start := time.Now()
	_, err := Open(path)
	took := time.Since(start)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "another nodevirt agent probably holds the state directory") || !strings.Contains(err.Error(), path) {
		t.Errorf("message %q should name the file and the likely cause", err)
	}
	if took > 3*time.Second {
		t.Errorf("second Open took %s, want about 1s", took)
	}
}

func TestDB_Batch_atomic(t *testing.T) {
	db, _ := openTemp(t)
	if err := db.Put("vms", "a", []byte("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := db.Batch(func(tx *Tx) error {
		if err := tx.Put("vms", "a", []byte("new")); err != nil {
			return err
		}
		if err := tx.Put("vms", "b", []byte("new")); err != nil {
			return err
		}
		if err := tx.Delete("vms", "a"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Batch = %v, want fn's error", err)
	}
	if v, _ := db.Get("vms", "a"); string(v) != "old" {
		t.Errorf("a = %q after failed Batch, want old", v)
	}
	if v, _ := db.Get("vms", "b"); v != nil {
		t.Errorf("b = %q after failed Batch, want absent", v)
	}

	err = db.Batch(func(tx *Tx) error {
		if err := tx.Put("vms", "b", []byte("2")); err != nil {
			return err
		}
		// A transaction sees its own writes.
		if v, err := tx.Get("vms", "b"); err != nil || string(v) != "2" {
			return fmt.Errorf("tx.Get = %q, %v", v, err)
		}
		return tx.Delete("vms", "a")
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := db.Get("vms", "a"); v != nil {
		t.Errorf("a = %q after Batch, want deleted", v)
	}
	if v, _ := db.Get("vms", "b"); string(v) != "2" {
		t.Errorf("b = %q after Batch, want 2", v)
	}
}

func BenchmarkDB_Put(b *testing.B) {
	db, _ := openTemp(b)
	val := []byte(`{"version":1,"uid":"0f8c","specHash":"sha256:abcdef","generation":3}`)
	i := 0
	for b.Loop() {
		if err := db.Put("vms", fmt.Sprintf("ns/vm-%d", i%100), val); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkDB_Get(b *testing.B) {
	db, _ := openTemp(b)
	val := []byte(`{"version":1,"uid":"0f8c","specHash":"sha256:abcdef","generation":3}`)
	for i := range 100 {
		if err := db.Put("vms", fmt.Sprintf("ns/vm-%d", i), val); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	for b.Loop() {
		if _, err := db.Get("vms", fmt.Sprintf("ns/vm-%d", i%100)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// The VM stage declares this interface (reconciler/vm.KV); it is mirrored
// here, not imported, because runtime must not import reconciler.
var _ interface {
	Get(bucket, key string) ([]byte, error)
	Put(bucket, key string, val []byte) error
	Delete(bucket, key string) error
	ForEach(bucket string, fn func(key string, val []byte) error) error
} = (*DB)(nil)

// OpenReadOnly reads what an agent wrote, writes nothing, and cannot open
// the file while a writer holds it.
func TestOpenReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if _, err := OpenReadOnly(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Put("cpus", "default_vm", []byte(`{"vcpus":[1]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReadOnly(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("beside a writer: %v, want ErrLocked", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if v, err := ro.Get("cpus", "default_vm"); err != nil || string(v) != `{"vcpus":[1]}` {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if err := ro.Put("cpus", "other", []byte("{}")); err == nil {
		t.Fatal("a read-only database must refuse writes")
	}
}

// Keys lists what ForEach visits, without the values, and an absent bucket
// as empty.
func TestDB_Keys(t *testing.T) {
	db, _ := openTemp(t)
	if keys, err := db.Keys("vms"); err != nil || len(keys) != 0 {
		t.Fatalf("Keys of an absent bucket = %q, %v; want none", keys, err)
	}
	for _, k := range []string{"default/b", "default/a", "other/c"} {
		if err := db.Put("vms", k, []byte(`{"big":"record"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Put("vms", "default/e", nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Put("started", "x", []byte{1}); err != nil {
		t.Fatal(err)
	}
	var visited []string
	if err := db.ForEach("vms", func(k string, _ []byte) error { visited = append(visited, k); return nil }); err != nil {
		t.Fatal(err)
	}
	keys, err := db.Keys("vms")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(visited, keys); diff != "" {
		t.Errorf("Keys differ from what ForEach visits (-ForEach +Keys):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"default/a", "default/b", "default/e", "other/c"}, keys); diff != "" {
		t.Errorf("Keys (-want +got):\n%s", diff)
	}
}
