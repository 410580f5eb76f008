package statedb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrDamaged marks a state database that cannot be trusted: empty while the
// state directory holds data, truncated, with damaged pages, or missing
// while its backup exists. Nothing may run on it: a reconciler that took it
// for a fresh state would provision (and import over) what it no longer
// knows.
var ErrDamaged = errors.New("state database is damaged")

// DamageError says which file is damaged, how, and what to do.
type DamageError struct {
	Path string
	// Problem is what is wrong, in words.
	Problem string
	// Backup is the last good copy, if there is one.
	Backup     string
	BackupTime time.Time
}

func (e *DamageError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "state database %s is damaged: %s; nodevirt will not run on it, so that nothing it no longer knows is overwritten. ", e.Path, e.Problem)
	if e.Backup != "" {
		fmt.Fprintf(&b, "Restore the last good copy %s (from %s) with `nodevirt state rebuild --from-backup`, or rebuild the state from libvirt and the disks with `nodevirt state rebuild`",
			e.Backup, e.BackupTime.Format(time.RFC3339))
	} else {
		b.WriteString("Rebuild the state from libvirt and the disks with `nodevirt state rebuild` (there is no backup)")
	}
	b.WriteString("; `nodevirt state check` shows the details")
	return b.String()
}

func (e *DamageError) Unwrap() error { return ErrDamaged }

// BackupPath is where the last good copy of the database at path is kept.
func BackupPath(path string) string { return path + ".bak" }

// damaged builds a DamageError naming the backup when one exists.
func damaged(path, problem string) *DamageError {
	e := &DamageError{Path: path, Problem: problem}
	if st, err := os.Stat(BackupPath(path)); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
		e.Backup, e.BackupTime = BackupPath(path), st.ModTime()
	}
	return e
}

// preflight decides, before bbolt touches the file, whether path may be
// opened: a missing file is fresh unless its backup exists (then it was
// lost, not never made); an empty file is fresh only in an otherwise empty
// directory (bbolt creates the file and writes its first pages in one step,
// so a 0-byte file beside other state is a truncation). fresh reports that
// bbolt will initialise the file.
func preflight(path string) (fresh bool, err error) {
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if _, berr := os.Stat(BackupPath(path)); berr == nil {
			return false, damaged(path, "the file is missing but its backup exists")
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("open state database %s: %w", path, err)
	case !st.Mode().IsRegular():
		return false, fmt.Errorf("open state database %s: not a regular file (%s)", path, st.Mode().Type())
	case st.Size() > 0:
		return false, nil
	}
	others, err := otherEntries(path)
	if err != nil {
		return false, err
	}
	if len(others) > 0 {
		return false, damaged(path, fmt.Sprintf("the file is empty (0 bytes) while the state directory holds %s", strings.Join(others, ", ")))
	}
	return true, nil
}

// otherEntries lists what the database's directory holds besides the
// database itself (at most a few names, for the message).
func otherEntries(path string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	base := filepath.Base(path)
	var out []string
	for _, e := range ents {
		if n := e.Name(); n != base && !strings.HasPrefix(n, base+".") && !strings.HasPrefix(n, "."+base) {
			out = append(out, n)
		}
		if len(out) == 5 {
			break
		}
	}
	return out, nil
}

// guard runs fn with memory faults turned into panics and recovers any
// panic as damage. bbolt trusts its pages: a damaged one makes it panic, and
// a page past the end of a truncated file faults in its memory map; neither
// may take the agent down with the state unreported.
func guard(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = damaged(path, fmt.Sprintf("reading it failed: %v", r))
		}
	}()
	return fn()
}

// Decoder checks one record's value; a non-nil error is reported as a
// problem of that record.
type Decoder func(key string, val []byte) error

// verify opens the file read-only (so a damaged file is never written,
// not even by bbolt's own freelist repair), checks its size against its
// meta page, reads every bucket and key, and runs bbolt's consistency check.
// Decoders, by bucket, check the values; their findings are returned as
// problems, not as damage. It returns ErrLocked while an agent holds the
// file.
func verify(path string, decoders map[string]Decoder) (buckets map[string]int, problems []string, err error) {
	err = guard(path, func() error {
		b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
		if errors.Is(err, bolterrors.ErrTimeout) {
			return fmt.Errorf("open state database %s: %w", path, ErrLocked)
		}
		if err != nil {
			return damaged(path, fmt.Sprintf("bbolt cannot open it: %v", err))
		}
		defer b.Close()
		return b.View(func(tx *bolt.Tx) error {
			st, err := os.Stat(path)
			if err != nil {
				return err
			}
			if tx.Size() > st.Size() {
				return damaged(path, fmt.Sprintf("the file is truncated: its meta page says %d bytes, the file has %d", tx.Size(), st.Size()))
			}
			buckets = map[string]int{}
			if err := tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
				dec := decoders[string(name)]
				n := 0
				err := bk.ForEach(func(k, v []byte) error {
					n++
					if dec != nil && v != nil {
						if derr := dec(string(k), v); derr != nil {
							problems = append(problems, fmt.Sprintf("bucket %q key %q: %v", name, k, derr))
						}
					}
					return nil
				})
				buckets[string(name)] = n
				return err
			}); err != nil {
				return damaged(path, err.Error())
			}
			var errs []string
			for cerr := range tx.Check() {
				errs = append(errs, cerr.Error())
			}
			if len(errs) > 0 {
				if len(errs) > 5 {
					errs = append(errs[:5], fmt.Sprintf("and %d more", len(errs)-5))
				}
				return damaged(path, "bbolt's consistency check failed: "+strings.Join(errs, "; "))
			}
			return nil
		})
	})
	return buckets, problems, err
}

// Report is what Check found.
type Report struct {
	Path string `json:"path"`
	// OK: the file opens, passes bbolt's check and every record decodes.
	OK bool `json:"ok"`
	// Fresh: there is no database yet.
	Fresh   bool           `json:"fresh,omitempty"`
	Size    int64          `json:"size"`
	Buckets map[string]int `json:"buckets,omitempty"`
	// Damage is why the file cannot be used, if it cannot.
	Damage string `json:"damage,omitempty"`
	// Problems are records that do not decode.
	Problems []string `json:"problems,omitempty"`
	// Locked: an agent holds the file; it checked it when it opened it.
	Locked bool        `json:"locked,omitempty"`
	Backup *BackupInfo `json:"backup,omitempty"`
}

// BackupInfo describes the last good copy.
type BackupInfo struct {
	Path    string         `json:"path"`
	Time    time.Time      `json:"time"`
	Size    int64          `json:"size"`
	OK      bool           `json:"ok"`
	Damage  string         `json:"damage,omitempty"`
	Buckets map[string]int `json:"buckets,omitempty"`
}

// Check verifies the database at path without changing it, and its backup.
// The error is for failures to check at all (not for damage, which the
// report carries).
func Check(path string, decoders map[string]Decoder) (*Report, error) {
	r := &Report{Path: path}
	fresh, err := preflight(path)
	var de *DamageError
	switch {
	case errors.As(err, &de):
		r.Damage = de.Problem
	case err != nil:
		return nil, err
	case fresh:
		r.Fresh, r.OK = true, true
	default:
		if st, err := os.Stat(path); err == nil {
			r.Size = st.Size()
		}
		r.Buckets, r.Problems, err = verify(path, decoders)
		switch {
		case errors.As(err, &de):
			r.Damage = de.Problem
		case errors.Is(err, ErrLocked):
			r.Locked = true
		case err != nil:
			return nil, err
		default:
			r.OK = len(r.Problems) == 0
		}
	}
	if st, err := os.Stat(BackupPath(path)); err == nil {
		bi := &BackupInfo{Path: BackupPath(path), Time: st.ModTime(), Size: st.Size()}
		bk, _, err := verify(bi.Path, nil)
		switch {
		case errors.As(err, &de):
			bi.Damage = de.Problem
		case err != nil:
			bi.Damage = err.Error()
		default:
			bi.OK, bi.Buckets = true, bk
		}
		r.Backup = bi
	}
	return r, nil
}
