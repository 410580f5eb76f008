package statedb

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// filled makes a closed database with enough records to span many pages.
func filled(t testing.TB, dir string, n int) string {
	t.Helper()
	path := filepath.Join(dir, "state.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := db.Put("storage.claims", fmt.Sprintf("default/dv-%04d", i), []byte(strings.Repeat("x", 200))); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func wantDamaged(t *testing.T, err error, what string) {
	t.Helper()
	var de *DamageError
	if !errors.Is(err, ErrDamaged) || !errors.As(err, &de) {
		t.Fatalf("Open = %v; want ErrDamaged", err)
	}
	if !strings.Contains(err.Error(), de.Path) || !strings.Contains(err.Error(), "nodevirt state rebuild") || !strings.Contains(de.Problem, what) {
		t.Fatalf("error does not name the file, the problem %q and what to do: %v", what, err)
	}
}

// An empty file beside other state is damage, not a fresh database; alone
// in a new directory it is fresh.
func TestOpen_emptyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatalf("0-byte file in an empty directory: %v", err)
	}
	db.Close()

	dir = t.TempDir()
	path = filepath.Join(dir, "state.db")
	if err := os.MkdirAll(filepath.Join(dir, "disks"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path)
	wantDamaged(t, err, "empty (0 bytes)")
	if st, _ := os.Stat(path); st.Size() != 0 {
		t.Fatal("Open wrote into the empty file")
	}
}

func TestOpen_truncated(t *testing.T) {
	path := filled(t, t.TempDir(), 500)
	st, _ := os.Stat(path)
	if err := os.Truncate(path, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	wantDamaged(t, err, "truncated")
	if e := err.(*DamageError); e.Backup != BackupPath(path) {
		t.Errorf("error does not point to the backup: %v", err)
	}
	// Below two pages bbolt itself refuses the file.
	if err := os.Truncate(path, 100); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path)
	wantDamaged(t, err, "bbolt cannot open it")
}

// Garbage in data pages (meta pages intact) is found at Open, without a
// panic, however it lands.
func TestOpen_damagedPages(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			path := filled(t, t.TempDir(), 300)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := f.Stat()
			pages := st.Size() / 4096
			r := rand.New(rand.NewPCG(seed, 1))
			junk := make([]byte, 4096)
			for range 3 {
				for i := range junk {
					junk[i] = byte(r.UintN(256))
				}
				if _, err := f.WriteAt(junk, (2+r.Int64N(pages-2))*4096); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			_, err = Open(path)
			wantDamaged(t, err, "")
		})
	}
}

func TestOpen_missingWithBackup(t *testing.T) {
	path := filled(t, t.TempDir(), 3)
	if _, err := os.Stat(BackupPath(path)); err != nil {
		t.Fatalf("no backup after open and close: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	wantDamaged(t, err, "missing but its backup exists")
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Open created a fresh database in place of a lost one")
	}
}

// The backup is a whole, valid copy of the last good state, rewritten only
// after writes, and never replaced by an empty database.
func TestBackup(t *testing.T) {
	path := filled(t, t.TempDir(), 10)
	bak := BackupPath(path)
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(bak, old, old); err != nil {
		t.Fatal(err)
	}
	if err := db.Backup(); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(bak); !st.ModTime().Equal(old) {
		t.Fatal("Backup rewrote the backup although nothing changed")
	}
	if err := db.Put("vms", "default/a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(bak); st.ModTime().Equal(old) {
		t.Fatal("Close did not back up a changed database")
	}
	rep, err := Check(bak, nil)
	if err != nil || !rep.OK || rep.Buckets["vms"] != 1 || rep.Buckets["storage.claims"] != 10 {
		t.Fatalf("backup check = %+v, %v", rep, err)
	}

	// A fresh database (the old one moved away) leaves the backup alone.
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bak, bak+".keep"); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bak+".keep", bak); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete("vms", "none"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if rep, _ := Check(bak, nil); rep.Buckets["storage.claims"] != 10 {
		t.Fatalf("an empty database replaced the backup: %+v", rep)
	}
}

func TestCheck(t *testing.T) {
	path := filled(t, t.TempDir(), 5)
	dec := map[string]Decoder{"storage.claims": func(k string, v []byte) error {
		if k == "default/dv-0003" {
			return errors.New("bad record")
		}
		return nil
	}}
	rep, err := Check(path, dec)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "dv-0003") || rep.Backup == nil || !rep.Backup.OK {
		t.Fatalf("Check = %+v", rep)
	}
	if err := os.Truncate(path, 4096*3); err != nil {
		t.Fatal(err)
	}
	rep, err = Check(path, dec)
	if err != nil || rep.OK || !strings.Contains(rep.Damage, "truncated") {
		t.Fatalf("Check of a truncated file = %+v, %v", rep, err)
	}
	if st, _ := os.Stat(path); st.Size() != 4096*3 {
		t.Fatal("Check changed the file")
	}
	rep, err = Check(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil || !rep.OK || !rep.Fresh {
		t.Fatalf("Check of no database = %+v, %v", rep, err)
	}
}

// Backup runs after every agent iteration: unchanged, it must cost nothing.
func BenchmarkBackup_unchanged(b *testing.B) {
	db, err := Open(filled(b, b.TempDir(), 1000))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for b.Loop() {
		if err := db.Backup(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBackup_changed(b *testing.B) {
	db, err := Open(filled(b, b.TempDir(), 1000))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for b.Loop() {
		if err := db.Put("meta", "k", []byte("v")); err != nil {
			b.Fatal(err)
		}
		if err := db.Backup(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	path := filled(b, b.TempDir(), 1000)
	for b.Loop() {
		db, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
}
