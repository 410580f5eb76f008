package token

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/nodevirt/nodevirt/runtime/atomicfile"
)

// The files of a state directory that tokens use.
const (
	KeyFile  = "pki/token.key" // the HMAC key, 32 random bytes
	File     = "tokens.json"   // the records; never the secrets
	LockFile = "tokens.lock"   // flocked by every writer of File or KeyFile
)

// MaxTTL is the longest a token may live: a token is a password that
// expires, and one that never does is a password nobody rotates.
const MaxTTL = 365 * 24 * time.Hour

const keySize = 32

// Info is a token's record: what List shows and Verify returns. The
// secret is not part of it and is never stored.
type Info struct {
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	Created time.Time  `json:"created"`
	Expires time.Time  `json:"expires"`
	Revoked *time.Time `json:"revoked,omitempty"`
}

// A token's state at some time, as Info.Status says it.
const (
	Active  = "active"
	Expired = "expired"
	Revoked = "revoked"
)

// Status is Active, Expired or Revoked at now; a revoked token says
// Revoked even once it has expired too.
func (i Info) Status(now time.Time) string {
	switch {
	case i.Revoked != nil:
		return Revoked
	case !now.Before(i.Expires):
		return Expired
	}
	return Active
}

// CheckName accepts what may name a token: a DNS-1123 label, so names are
// safe in logs, metrics labels and shell commands.
func CheckName(name string) error {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("token name %q: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

// Option configures a Store.
type Option func(*Store)

// WithClock makes the Store read the time from now (tests; time.Now by
// default).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Store creates, lists, revokes and verifies the tokens of one state
// directory. Several Stores, in one process or several, may share the
// directory: writes are serialized by a file lock, and each Store re-reads
// the records when the file changed. Its methods are safe for concurrent
// use.
type Store struct {
	path, lock string
	key        []byte
	now        func() time.Time

	mu     sync.Mutex
	seen   stamp  // of the file the records were read from
	tokens []Info // as the file holds them
	reads  int    // of the file, for tests of the stamp
}

// fileData is the layout of File.
type fileData struct {
	Tokens []Info `json:"tokens"`
}

// Open opens the tokens of stateDir, creating the signing key on first
// use. A garbled records file is an error naming the file.
func Open(stateDir string, opts ...Option) (*Store, error) {
	s := &Store{
		path: filepath.Join(stateDir, File),
		lock: filepath.Join(stateDir, LockFile),
		now:  time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	// 0711 and 0755 are what the agent and internal/pki create these with.
	if err := os.MkdirAll(stateDir, 0o711); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	keyPath := filepath.Join(stateDir, KeyFile)
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o755); err != nil {
		return nil, fmt.Errorf("token key directory: %w", err)
	}
	err := s.locked(func() error {
		var err error
		s.key, err = loadOrCreateKey(keyPath)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refresh(); err != nil {
		return nil, err
	}
	return s, nil
}

// loadOrCreateKey reads the key, or writes a new one when there is none
// (under the lock, so two first users agree on one key).
func loadOrCreateKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err == nil {
		if len(key) != keySize {
			return nil, fmt.Errorf("token key %s: %d bytes, want %d (remove it to make a new one; every token is then invalid)", path, len(key), keySize)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("token key: %w", err)
	}
	key = make([]byte, keySize)
	rand.Read(key)
	err = atomicfile.Write(path, 0o600, func(f *os.File) error {
		_, err := f.Write(key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("write token key %s: %w", path, err)
	}
	return key, nil
}

// Retention is how long the record of an expired token is kept (and
// listed) after it expired; the next Create drops older ones.
const Retention = 7 * 24 * time.Hour

// Create issues a token called name (token-<id> when empty) that expires
// after ttl (at most MaxTTL). The secret is returned once and kept
// nowhere.
func (s *Store) Create(name string, ttl time.Duration) (string, Info, error) {
	if ttl < time.Second {
		return "", Info{}, fmt.Errorf("token lifetime %s: want at least 1s", ttl)
	}
	if ttl > MaxTTL {
		return "", Info{}, fmt.Errorf("token lifetime %s: longer than the maximum %s (a year)", ttl, MaxTTL)
	}
	if name != "" {
		if err := CheckName(name); err != nil {
			return "", Info{}, err
		}
	}
	var info Info
	err := s.update(func(tokens []Info) ([]Info, bool, error) {
		// Records of tokens long expired are dropped: they can verify
		// nothing, and the file would otherwise only grow. A revoked token
		// stays until it has expired, so it is refused as revoked.
		tokens = slices.DeleteFunc(tokens, func(i Info) bool { return s.now().Sub(i.Expires) > Retention })
		id := newID()
		for slices.ContainsFunc(tokens, func(i Info) bool { return i.ID == id }) {
			id = newID()
		}
		now := s.now().UTC().Truncate(time.Second)
		info = Info{ID: id, Name: name, Created: now, Expires: now.Add(ttl)}
		if info.Name == "" {
			info.Name = "token-" + id
		}
		return append(tokens, info), true, nil
	})
	if err != nil {
		return "", Info{}, err
	}
	return sign(s.key, claims{id: info.ID, expires: info.Expires}), info, nil
}

// List returns every record, oldest first.
func (s *Store) List() ([]Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refresh(); err != nil {
		return nil, err
	}
	out := slices.Clone(s.tokens)
	// The file is in creation order already; sorting only puts back in
	// place records an editor moved.
	slices.SortStableFunc(out, func(a, b Info) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// Revoke revokes the token with id idOrName, or else every active token
// named idOrName. changed is false when there was nothing left to revoke;
// an id or name no record has is ErrNotFound.
func (s *Store) Revoke(idOrName string) (changed bool, err error) {
	err = s.update(func(tokens []Info) ([]Info, bool, error) {
		now := s.now().UTC().Truncate(time.Second)
		if i := slices.IndexFunc(tokens, func(i Info) bool { return i.ID == idOrName }); i >= 0 {
			if tokens[i].Revoked != nil {
				return tokens, false, nil
			}
			tokens[i].Revoked = &now
			changed = true
			return tokens, true, nil
		}
		found := false
		for i := range tokens {
			if tokens[i].Name != idOrName {
				continue
			}
			found = true
			if tokens[i].Status(now) == Active {
				tokens[i].Revoked = &now
				changed = true
			}
		}
		if !found {
			return nil, false, fmt.Errorf("%w: no token has the id or name %q", ErrNotFound, idOrName)
		}
		return tokens, changed, nil
	})
	return changed && err == nil, err
}

// Verify checks a secret as a client presents it and returns its record.
// A malformed or forged token, or one this directory does not know, is
// ErrInvalid; otherwise ErrRevoked or ErrExpired, with the record. It
// reads the records file only when it changed since the last read.
func (s *Store) Verify(secret string) (Info, error) {
	c, err := parse(s.key, secret)
	if err != nil {
		return Info{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refresh(); err != nil {
		return Info{}, err
	}
	i := slices.IndexFunc(s.tokens, func(i Info) bool { return i.ID == c.id })
	if i < 0 {
		return Info{}, ErrInvalid
	}
	info := s.tokens[i]
	now := s.now()
	switch {
	case info.Revoked != nil:
		return info, fmt.Errorf("token %s (%s): %w", info.ID, info.Name, ErrRevoked)
	// The record may have been shortened by hand; the token's own
	// expiry is signed and cannot be lengthened.
	case !now.Before(info.Expires) || !now.Before(c.expires):
		return info, fmt.Errorf("token %s (%s): %w", info.ID, info.Name, ErrExpired)
	}
	return info, nil
}

// stamp tells whether a file was replaced or changed: atomicfile's rename
// gives every write a new inode, and size and times catch an edit in place.
type stamp struct {
	exists       bool
	ino, size    int64
	mtime, ctime int64
}

func stampOf(fi os.FileInfo) stamp {
	st := stamp{exists: true, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = int64(sys.Ino)
		st.ctime = sys.Ctim.Nano()
	}
	return st
}

// refresh re-reads the records when the file changed since they were read
// (s.mu held). Unchanged, it costs one stat.
func (s *Store) refresh() error {
	fi, err := os.Stat(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		s.seen, s.tokens = stamp{}, nil
		return nil
	case err != nil:
		return fmt.Errorf("tokens file: %w", err)
	case stampOf(fi) == s.seen:
		return nil
	}
	tokens, st, err := s.read()
	s.reads++
	if err != nil {
		return err
	}
	s.seen, s.tokens = st, tokens
	return nil
}

// read reads the records and the stamp of the very file they came from.
func (s *Store) read() ([]Info, stamp, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, stamp{}, nil
	}
	if err != nil {
		return nil, stamp{}, fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, stamp{}, fmt.Errorf("tokens file: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, stamp{}, fmt.Errorf("tokens file %s: %w", s.path, err)
	}
	var d fileData
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, stamp{}, fmt.Errorf("tokens file %s is not valid: %w (fix or remove it; removing it invalidates every token)", s.path, err)
	}
	for _, t := range d.Tokens {
		if !validID(t.ID) {
			return nil, stamp{}, fmt.Errorf("tokens file %s is not valid: token id %q is not %d lowercase base32 characters", s.path, t.ID, idLen)
		}
	}
	return d.Tokens, stampOf(fi), nil
}

// update runs change on the records as the file holds them now, under the
// file lock, and writes the result when change says it changed them.
func (s *Store) update(change func([]Info) ([]Info, bool, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.locked(func() error {
		tokens, _, err := s.read()
		if err != nil {
			return err
		}
		tokens, changed, err := change(tokens)
		if err != nil || !changed {
			return err
		}
		b, err := json.MarshalIndent(fileData{Tokens: tokens}, "", "  ")
		if err != nil {
			return err
		}
		err = atomicfile.Write(s.path, 0o600, func(f *os.File) error {
			_, err := f.Write(append(b, '\n'))
			return err
		})
		if err != nil {
			return fmt.Errorf("write tokens file %s: %w", s.path, err)
		}
		// No other writer comes in between while the lock is held, so
		// the file's stamp now is that of what was just written.
		fi, err := os.Stat(s.path)
		if err != nil {
			return fmt.Errorf("tokens file: %w", err)
		}
		s.seen, s.tokens = stampOf(fi), tokens
		return nil
	})
}

// locked runs fn holding the exclusive lock of LockFile. Writers hold it
// for a read and a write, so waiting is short.
func (s *Store) locked(fn func() error) error {
	f, err := os.OpenFile(s.lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("tokens lock: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("tokens lock %s: %w", s.lock, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}
