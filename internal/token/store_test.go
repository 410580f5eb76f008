package token

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable time for the tests' Stores.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func open(t *testing.T, dir string, c *clock) *Store {
	t.Helper()
	s, err := Open(dir, WithClock(c.now))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func create(t *testing.T, s *Store, name string, ttl time.Duration) (string, Info) {
	t.Helper()
	secret, info, err := s.Create(name, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return secret, info
}

func TestCreateVerify(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	s := open(t, dir, c)
	secret, info := create(t, s, "ci", time.Hour)
	if !strings.HasPrefix(secret, "nvt_"+info.ID+".") {
		t.Errorf("secret %q does not start with nvt_<id>.", secret)
	}
	if info.Name != "ci" || !info.Created.Equal(c.now()) || !info.Expires.Equal(c.now().Add(time.Hour)) || info.Revoked != nil {
		t.Errorf("info %+v", info)
	}
	got, err := s.Verify(secret)
	if err != nil || got != info {
		t.Fatalf("Verify = %+v, %v; want %+v", got, err, info)
	}
	// The secret is in no file of the state directory.
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), secret[strings.LastIndex(secret, ".")+1:]) {
				t.Errorf("%s holds the secret's MAC", p)
			}
		}
		return nil
	})
	// And the default name follows the id.
	_, def := create(t, s, "", time.Minute)
	if def.Name != "token-"+def.ID {
		t.Errorf("default name %q, want token-%s", def.Name, def.ID)
	}
	list, err := s.List()
	if err != nil || len(list) != 2 || list[0].ID != info.ID || list[1].ID != def.ID {
		t.Errorf("List = %+v, %v", list, err)
	}
}

func TestCreate_refusesBadInput(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		want string
	}{
		{"ok", 0, "want at least 1s"},
		{"ok", -time.Hour, "want at least 1s"},
		{"ok", MaxTTL + time.Second, "longer than the maximum"},
		{"Upper", time.Hour, `token name "Upper"`},
		{"has space", time.Hour, `token name "has space"`},
		{"-dash", time.Hour, `token name "-dash"`},
		{strings.Repeat("a", 64), time.Hour, "token name"},
	} {
		if _, _, err := s.Create(tc.name, tc.ttl); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Create(%q, %v) = %v, want %q", tc.name, tc.ttl, err, tc.want)
		}
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("refused tokens were recorded: %+v", list)
	}
	if _, _, err := s.Create("", MaxTTL); err != nil {
		t.Errorf("Create with the maximum lifetime: %v", err)
	}
}

func TestVerify_expired(t *testing.T) {
	c := newClock()
	s := open(t, t.TempDir(), c)
	secret, _ := create(t, s, "short", time.Hour)
	c.add(time.Hour - time.Second)
	if _, err := s.Verify(secret); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	c.add(time.Second)
	info, err := s.Verify(secret)
	if !errors.Is(err, ErrExpired) || errors.Is(err, ErrInvalid) || info.Name != "short" {
		t.Fatalf("at expiry: %+v, %v; want ErrExpired with the record", info, err)
	}
	if st := info.Status(c.now()); st != Expired {
		t.Errorf("status %q, want expired", st)
	}
}

func TestRevoke(t *testing.T) {
	c := newClock()
	s := open(t, t.TempDir(), c)
	a, ai := create(t, s, "ci", time.Hour)
	b, _ := create(t, s, "ci", time.Hour)
	other, oi := create(t, s, "other", time.Hour)

	if changed, err := s.Revoke(ai.ID); err != nil || !changed {
		t.Fatalf("Revoke(id) = %v, %v", changed, err)
	}
	if _, err := s.Verify(a); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked token: %v, want ErrRevoked", err)
	}
	if _, err := s.Verify(b); err != nil {
		t.Errorf("the other token of the name: %v", err)
	}
	if changed, err := s.Revoke(ai.ID); err != nil || changed {
		t.Errorf("second Revoke(id) = %v, %v; want unchanged", changed, err)
	}
	// By name: every active token of that name, the others untouched.
	if changed, err := s.Revoke("ci"); err != nil || !changed {
		t.Fatalf("Revoke(name) = %v, %v", changed, err)
	}
	if _, err := s.Verify(b); !errors.Is(err, ErrRevoked) {
		t.Errorf("token revoked by name: %v", err)
	}
	if changed, err := s.Revoke("ci"); err != nil || changed {
		t.Errorf("second Revoke(name) = %v, %v; want unchanged", changed, err)
	}
	if info, err := s.Verify(other); err != nil || info.ID != oi.ID {
		t.Errorf("unrelated token: %+v, %v", info, err)
	}
	if _, err := s.Revoke("nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Revoke(unknown) = %v, want ErrNotFound naming it", err)
	}
	list, _ := s.List()
	for _, i := range list {
		if want := map[bool]string{true: Revoked, false: Active}[i.Name == "ci"]; i.Status(c.now()) != want {
			t.Errorf("%s (%s) is %s, want %s", i.ID, i.Name, i.Status(c.now()), want)
		}
	}
}

func TestVerify_refusesTampered(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, newClock())
	secret, info := create(t, s, "x", time.Hour)
	_, other := create(t, s, "y", time.Hour)
	for i := range len(secret) {
		b := []byte(secret)
		b[i] = map[bool]byte{true: 'B', false: 'A'}[b[i] == 'A']
		if _, err := s.Verify(string(b)); !errors.Is(err, ErrInvalid) {
			t.Errorf("token with byte %d changed (%q): %v, want ErrInvalid", i, b, err)
		}
	}
	// A token of another key, and the same claims with another's id or a
	// later expiry spliced in.
	foreign := sign(make([]byte, keySize), claims{id: info.ID, expires: info.Expires})
	longer := "nvt_" + info.ID + "." + fmt.Sprint(info.Expires.Add(time.Hour).Unix()) + secret[strings.LastIndex(secret, "."):]
	swapped := strings.Replace(secret, info.ID, other.ID, 1)
	for _, bad := range []string{foreign, longer, swapped, secret + "A", secret[:len(secret)-1], "", "nvt_", "Bearer " + secret} {
		if _, err := s.Verify(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Verify(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	// A token of a record that is gone (the file removed) is unknown.
	os.Remove(filepath.Join(dir, File))
	if _, err := s.Verify(secret); !errors.Is(err, ErrInvalid) {
		t.Errorf("token without a record: %v, want ErrInvalid", err)
	}
}

// The agent keeps its Store open while the CLI, another process with a
// Store of its own, creates and revokes tokens.
func TestVerify_seesAnotherStoresChanges(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	agent := open(t, dir, c)
	if _, err := agent.List(); err != nil {
		t.Fatal(err)
	}
	cli := open(t, dir, c)
	secret, info := create(t, cli, "late", time.Hour)
	if got, err := agent.Verify(secret); err != nil || got.ID != info.ID {
		t.Fatalf("agent does not see the CLI's new token: %+v, %v", got, err)
	}
	if _, err := open(t, dir, c).Revoke("late"); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Verify(secret); !errors.Is(err, ErrRevoked) {
		t.Fatalf("agent does not see the revocation: %v", err)
	}
	// And what the agent writes, the CLI's Store sees.
	s2, _ := create(t, agent, "from-agent", time.Hour)
	if _, err := cli.Verify(s2); err != nil {
		t.Errorf("CLI store does not see the agent's token: %v", err)
	}
}

// The same with a real second process: this test binary run again as the
// CLI, creating and then revoking a token.
func TestVerify_seesAnotherProcess(t *testing.T) {
	if dir := os.Getenv("NODEVIRT_TOKEN_TEST_DIR"); dir != "" {
		s, err := Open(dir)
		if err == nil && os.Getenv("NODEVIRT_TOKEN_TEST_REVOKE") != "" {
			_, err = s.Revoke("child")
		} else if err == nil {
			var secret string
			secret, _, err = s.Create("child", time.Hour)
			fmt.Print(secret)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir := t.TempDir()
	agent, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	child := func(env ...string) string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestVerify_seesAnotherProcess$")
		cmd.Env = append(os.Environ(), append(env, "NODEVIRT_TOKEN_TEST_DIR="+dir)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child process: %v", err)
		}
		return string(out)
	}
	secret := child()
	if info, err := agent.Verify(secret); err != nil || info.Name != "child" {
		t.Fatalf("the agent does not see the other process's token: %+v, %v", info, err)
	}
	child("NODEVIRT_TOKEN_TEST_REVOKE=1")
	if _, err := agent.Verify(secret); !errors.Is(err, ErrRevoked) {
		t.Fatalf("the agent does not see the other process's revocation: %v", err)
	}
}

// Verify, on every API request, reads the records file only when it
// changed: one stat otherwise.
func TestVerify_readsOnlyOnChange(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	s := open(t, dir, c)
	secret, _ := create(t, s, "x", time.Hour)
	reads := func() int { s.mu.Lock(); defer s.mu.Unlock(); return s.reads }
	before := reads()
	for range 100 {
		if _, err := s.Verify(secret); err != nil {
			t.Fatal(err)
		}
	}
	if n := reads() - before; n != 0 {
		t.Errorf("100 Verify calls on an unchanged file read it %d times", n)
	}
	create(t, open(t, dir, c), "y", time.Hour)
	for range 10 {
		s.Verify(secret)
	}
	if n := reads() - before; n != 1 {
		t.Errorf("Verify calls after one change read the file %d times, want 1", n)
	}
}

func TestCreate_concurrent(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	const workers, each = 4, 10
	var wg sync.WaitGroup
	secrets := make(chan string, workers*each)
	for w := range workers {
		// Half the workers share a Store, the others have their own, as
		// separate processes would.
		s := open(t, dir, c)
		for range 2 {
			wg.Go(func() {
				for i := range each / 2 {
					secret, _, err := s.Create(fmt.Sprintf("w%d-%d", w, i), time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					secrets <- secret
				}
			})
		}
	}
	wg.Wait()
	close(secrets)
	s := open(t, dir, c)
	list, err := s.List()
	if err != nil || len(list) != workers*each {
		t.Fatalf("List has %d records, want %d (%v)", len(list), workers*each, err)
	}
	for secret := range secrets {
		if _, err := s.Verify(secret); err != nil {
			t.Errorf("token lost: %v", err)
		}
	}
}

func TestFileModes(t *testing.T) {
	dir := t.TempDir()
	// internal/pki may have made the directory first.
	if err := os.Mkdir(filepath.Join(dir, "pki"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir, newClock())
	create(t, s, "x", time.Hour)
	for _, f := range []string{KeyFile, File, LockFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if key, _ := os.ReadFile(filepath.Join(dir, KeyFile)); len(key) != keySize {
		t.Errorf("key is %d bytes", len(key))
	}
	// A second Open keeps the key: earlier tokens stay valid.
	secret, _ := create(t, s, "y", time.Hour)
	if _, err := open(t, dir, newClock()).Verify(secret); err != nil {
		t.Errorf("reopened store: %v", err)
	}
}

func TestOpen_garbled(t *testing.T) {
	for name, content := range map[string]string{
		"not json":    "{tokens: [",
		"unknown key": `{"tokens": [], "secret": "x"}`,
		"bad id":      `{"tokens": [{"id": "../x", "name": "a"}]}`,
		"wrong shape": `{"tokens": {"id": "x"}}`,
		"a list":      `[]`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, File)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("Open = %v, want an error naming %s", err, path)
			}
		})
	}
	// Garbled behind an open Store: Verify and List say so too.
	dir := t.TempDir()
	s := open(t, dir, newClock())
	secret, _ := create(t, s, "x", time.Hour)
	path := filepath.Join(dir, File)
	os.WriteFile(path, []byte("garbage"), 0o600)
	if _, err := s.Verify(secret); err == nil || errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), path) {
		t.Errorf("Verify on a garbled file = %v", err)
	}
	if _, err := s.List(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("List on a garbled file = %v", err)
	}
	if _, _, err := s.Create("y", time.Hour); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Create on a garbled file = %v (and must not overwrite it)", err)
	}
	// A key of the wrong size is refused, not replaced.
	os.WriteFile(filepath.Join(dir, KeyFile), []byte("short"), 0o600)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), KeyFile) {
		t.Errorf("Open with a short key = %v", err)
	}
}

// Records of tokens expired longer than Retention go at the next Create; a
// revoked token that has not expired stays, so it is still refused as
// revoked.
func TestCreate_dropsLongExpiredRecords(t *testing.T) {
	c := newClock()
	s := open(t, t.TempDir(), c)
	create(t, s, "old", time.Hour)
	revoked, _ := create(t, s, "revoked", 30*24*time.Hour)
	if _, err := s.Revoke("revoked"); err != nil {
		t.Fatal(err)
	}
	c.add(time.Hour + Retention - time.Minute)
	create(t, s, "new1", time.Hour)
	if names := listNames(t, s); len(names) != 3 {
		t.Fatalf("within Retention of its expiry the record stays: %v", names)
	}
	c.add(2 * time.Minute)
	create(t, s, "new2", time.Hour)
	got := listNames(t, s)
	if len(got) != 3 || got[0] != "revoked" || got[1] != "new1" || got[2] != "new2" {
		t.Fatalf("records %v, want [revoked new1 new2]", got)
	}
	if _, err := s.Verify(revoked); !errors.Is(err, ErrRevoked) {
		t.Fatalf("the revoked token: %v, want ErrRevoked", err)
	}
}

func listNames(t *testing.T, s *Store) []string {
	t.Helper()
	infos, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range infos {
		names = append(names, i.Name)
	}
	return names
}
