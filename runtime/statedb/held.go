package statedb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Held reports whether another open DB (an agent, or a command that changes
// the host) holds the database at path. It neither creates the file nor
// keeps a lock, so a read-only command can ask without ever standing in an
// agent's way. A missing file is not held. The answer can be stale at
// once: it decides where a read-only command keeps its scratch data, not
// whether anything may be written.
func Held(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check the state database lock %s: %w", path, err)
	}
	defer f.Close()
	// The lock bbolt takes: exclusive for a writer, which a shared probe
	// cannot get beside.
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("check the state database lock %s: %w", path, err)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false, nil
}
