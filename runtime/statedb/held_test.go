package statedb

import (
	"os"
	"path/filepath"
	"testing"
)

// Held sees an open database's lock, creates nothing, and takes no lock
// that would keep a later Open out.
func TestHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if held, err := Held(path); err != nil || held {
		t.Fatalf("missing file: held %v, %v", held, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("Held created the file: %v", err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if held, err := Held(path); err != nil || !held {
		t.Fatalf("open database: held %v, %v", held, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if held, err := Held(path); err != nil || held {
		t.Fatalf("closed database: held %v, %v", held, err)
	}
	db, err = Open(path)
	if err != nil {
		t.Fatalf("Open after Held: %v", err)
	}
	db.Close()
}
