// Package statedb owns the node agent's embedded state: one bbolt file holding
// opaque values in named buckets (the reconciler stores versioned JSON
// records there so a restarted agent can re-adopt what it created). bbolt's
// exclusive file lock doubles as the guard against two agents sharing one
// state directory.
//
// This package must not import github.com/nodevirt/nodevirt/reconciler: it
// is storage only, and the reconciler decides what the bytes mean.
package statedb

import (
	"errors"
	"fmt"
	"github.com/nodevirt/nodevirt/runtime/atomicfile"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrLocked is returned by Open when the file stays locked for lockTimeout.
var ErrLocked = errors.New("state database is locked: another nodevirt agent probably holds the state directory")

// lockTimeout bounds the wait for bbolt's file lock: a second agent should
// fail fast with a clear message instead of hanging.
const lockTimeout = time.Second

// DB is the agent's state database. It is safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	path string

	// gen counts committed writes; saved is gen as of the last backup, so
	// Backup costs nothing while nothing changed.
	mu    sync.Mutex
	gen   uint64
	saved uint64
}

// Open opens (creating if needed) the state database at path. An existing
// file is verified first (see ErrDamaged): damage is an error naming the
// file and what to do, never a panic and never a fresh database in its
// place. A verified file is copied to BackupPath(path).
func Open(path string) (*DB, error) {
	fresh, err := preflight(path)
	if err != nil {
		return nil, err
	}
	if !fresh {
		if _, _, err := verify(path, nil); err != nil {
			return nil, err
		}
	}
	var b *bolt.DB
	err = guard(path, func() error {
		var err error
		b, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
		return err
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open state database %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	db := &DB{bolt: b, path: path}
	if !fresh {
		db.gen = 1 // back up what was just verified
		if err := db.Backup(); err != nil {
			_ = b.Close()
			return nil, err
		}
	}
	return db, nil
}

// OpenReadOnly opens an existing state database for reading, beside no
// writer: bbolt takes a shared lock, so it fails with ErrLocked while an
// agent holds the file, and an agent starting meanwhile waits for it.
// Nothing is verified, backed up or created; writes fail. It is for
// read-only commands (render), which keep it open only while they read.
func OpenReadOnly(path string) (*DB, error) {
	var b *bolt.DB
	err := guard(path, func() error {
		var err error
		b, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
		return err
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open state database %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open state database %s read-only: %w", path, err)
	}
	return &DB{bolt: b, path: path}, nil
}

// Create makes a new, empty state database at path, which must not exist.
// It is for rebuilding the state: unlike Open, it does not refuse because a
// backup of a lost database exists.
func Create(path string) (*DB, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("create state database %s: %w", path, os.ErrExist)
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return nil, fmt.Errorf("create state database %s: %w", path, err)
	}
	return &DB{bolt: b, path: path}, nil
}

// Close backs up what changed since the last backup, then releases the file
// and its lock.
func (db *DB) Close() error {
	berr := db.Backup()
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close state database %s: %w", db.path, err)
	}
	return berr
}

// Path is the database file.
func (db *DB) Path() string { return db.path }

// Backup copies the database consistently (one read transaction) to
// BackupPath, through a temporary file and a rename so the backup is always
// whole. It does nothing when nothing was written since the last backup,
// and never replaces a backup holding records with a database holding none.
func (db *DB) Backup() error {
	db.mu.Lock()
	gen := db.gen
	if gen == db.saved {
		db.mu.Unlock()
		return nil
	}
	db.mu.Unlock()
	dst := BackupPath(db.path)
	err := db.view(func(tx *bolt.Tx) error {
		keys := 0
		if err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			// Reading every key proves the pages copied are sound.
			return b.ForEach(func(_, _ []byte) error { keys++; return nil })
		}); err != nil {
			return err
		}
		if keys == 0 {
			if st, err := os.Stat(dst); err == nil && st.Size() > 0 {
				return nil
			}
		}
		return atomicfile.Write(dst, 0o600, func(f *os.File) error {
			_, err := tx.WriteTo(f)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("back up state database to %s: %w", dst, err)
	}
	db.mu.Lock()
	if gen > db.saved {
		db.saved = gen
	}
	db.mu.Unlock()
	return nil
}

// view and update are bbolt's View and Update with damage found while
// running (a page damaged after Open) returned as ErrDamaged, not a panic.
func (db *DB) view(fn func(*bolt.Tx) error) error {
	return guard(db.path, func() error { return db.bolt.View(fn) })
}

func (db *DB) update(fn func(*bolt.Tx) error) error {
	err := guard(db.path, func() error { return db.bolt.Update(fn) })
	if err == nil {
		db.mu.Lock()
		db.gen++
		db.mu.Unlock()
	}
	return err
}

// Get returns a copy of the value under key, or nil and no error if the
// bucket or key does not exist.
func (db *DB) Get(bucket, key string) ([]byte, error) {
	var val []byte
	err := db.view(func(tx *bolt.Tx) error {
		var err error
		val, err = (&Tx{tx: tx}).Get(bucket, key)
		return err
	})
	return val, err
}

// Put stores val under key, creating the bucket if needed.
func (db *DB) Put(bucket, key string, val []byte) error {
	return db.update(func(tx *bolt.Tx) error {
		return (&Tx{tx: tx}).Put(bucket, key, val)
	})
}

// Delete removes key; a missing bucket or key is not an error.
func (db *DB) Delete(bucket, key string) error {
	return db.update(func(tx *bolt.Tx) error {
		return (&Tx{tx: tx}).Delete(bucket, key)
	})
}

// ForEach calls fn for every key of bucket in key order, stopping at fn's
// first error, which it returns. It works on a snapshot copied out of the
// database, so fn may write to the database itself (bbolt would deadlock on a
// write inside its read transaction) and may keep val.
func (db *DB) ForEach(bucket string, fn func(key string, val []byte) error) error {
	type kv struct {
		k string
		v []byte
	}
	var all []kv
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if v == nil { // a nested bucket, which this package never creates
				return nil
			}
			all = append(all, kv{string(k), clone(v)})
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("read bucket %q: %w", bucket, err)
	}
	for _, e := range all {
		if err := fn(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}

// Keys returns the keys of bucket in key order, without copying the values
// out: what a caller that only asks which records exist needs.
func (db *DB) Keys(bucket string) ([]string, error) {
	var keys []string
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil { // a nested bucket, which this package never creates
				continue
			}
			keys = append(keys, string(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read keys of bucket %q: %w", bucket, err)
	}
	return keys, nil
}

// Batch runs fn in one read-write transaction: all of its writes land
// together or, if fn returns an error, none do. It is bbolt's Update, not
// bbolt's Batch, because the latter may run fn more than once.
func (db *DB) Batch(fn func(tx *Tx) error) error {
	return db.update(func(tx *bolt.Tx) error {
		return fn(&Tx{tx: tx})
	})
}

// Tx is a read-write transaction handed to Batch's fn; it is valid only
// during fn.
type Tx struct {
	tx *bolt.Tx
}

// Get returns a copy of the value under key, or nil if absent; it sees the
// transaction's own earlier writes.
func (t *Tx) Get(bucket, key string) ([]byte, error) {
	if err := checkNames(bucket, key); err != nil {
		return nil, err
	}
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil, nil
	}
	return clone(b.Get([]byte(key))), nil
}

// Put stores val under key, creating the bucket if needed.
func (t *Tx) Put(bucket, key string, val []byte) error {
	if err := checkNames(bucket, key); err != nil {
		return err
	}
	b, err := t.tx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return fmt.Errorf("create bucket %q: %w", bucket, err)
	}
	// bbolt stores nil as an empty value; say so rather than surprise.
	if val == nil {
		val = []byte{}
	}
	if err := b.Put([]byte(key), val); err != nil {
		return fmt.Errorf("put %s/%s: %w", bucket, key, err)
	}
	return nil
}

// Delete removes key; a missing bucket or key is not an error.
func (t *Tx) Delete(bucket, key string) error {
	if err := checkNames(bucket, key); err != nil {
		return err
	}
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	if err := b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("delete %s/%s: %w", bucket, key, err)
	}
	return nil
}

// checkNames rejects what bbolt cannot store, with a message naming it.
func checkNames(bucket, key string) error {
	if bucket == "" {
		return errors.New("state database: empty bucket name")
	}
	if key == "" {
		return fmt.Errorf("state database: empty key in bucket %q", bucket)
	}
	return nil
}

// clone copies a value out of bbolt's memory map, which is only valid during
// the transaction. nil stays nil so Get can signal absence.
func clone(v []byte) []byte {
	if v == nil {
		return nil
	}
	return append([]byte{}, v...)
}
