package pki

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// listing is every file of dir with its size and modification time.
func listing(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fi.ModTime().String() + " " + fi.Mode().String()
	}
	return out
}

// ReadStatus reads from the files what the Manager that wrote them
// reports, before and after a CA rotation, and changes nothing.
func TestReadStatus_matchesManager(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		l := DefaultLifetimes()
		m := newManager(t, dir, l)
		check := func(previous int) {
			t.Helper()
			before := listing(t, dir)
			got, err := ReadStatus(dir, l)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(m.Status(), got); diff != "" {
				t.Errorf("ReadStatus differs from Manager.Status (-manager +read):\n%s", diff)
			}
			if len(got.Previous) != previous {
				t.Errorf("%d older CAs, want %d", len(got.Previous), previous)
			}
			if after := listing(t, dir); !cmp.Equal(before, after) {
				t.Errorf("ReadStatus changed the directory: %v", cmp.Diff(before, after))
			}
		}
		check(0)
		run(t, m)
		sleep(24*time.Hour + time.Second) // the CA rotated; the old one stays in the bundle
		check(1)
	})
}

// The lifetimes asked for decide the deadlines: a serving certificate
// longer-lived than the server duration is due now.
func TestReadStatus_lifetimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		newManager(t, dir, DefaultLifetimes())
		time.Sleep(time.Minute)
		short := DefaultLifetimes()
		short.Server = Lifetime{Duration: time.Hour, RenewBefore: 30 * time.Minute}
		st, err := ReadStatus(dir, short)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Server.NextRotation.Equal(time.Now()) || st.Lifetimes != short {
			t.Errorf("server due at %v, want now (%v)", st.Server.NextRotation, time.Now())
		}
		bad := DefaultLifetimes()
		bad.CA.RenewBefore = -time.Second
		if _, err := ReadStatus(dir, bad); err == nil || !strings.Contains(err.Error(), "certConfig.ca.renewBefore") {
			t.Errorf("ReadStatus with invalid lifetimes = %v", err)
		}
	})
}

func TestReadStatus_missingOrGarbled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if _, err := ReadStatus(dir, DefaultLifetimes()); err == nil || !strings.Contains(err.Error(), "no certificates in "+dir+" yet") {
		t.Errorf("ReadStatus of a missing directory = %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("ReadStatus created %s", dir)
	}
	newManager(t, dir, DefaultLifetimes())
	os.Remove(filepath.Join(dir, CertFile))
	if _, err := ReadStatus(dir, DefaultLifetimes()); err == nil || !strings.Contains(err.Error(), "no certificates in") {
		t.Errorf("ReadStatus without %s = %v", CertFile, err)
	}
	path := filepath.Join(dir, BundleFile)
	os.WriteFile(path, []byte("garbage"), 0o644)
	if _, err := ReadStatus(dir, DefaultLifetimes()); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("ReadStatus with a garbled bundle = %v, want it named", err)
	}
}

// Status goes over the wire (the API, -o json): durations in certConfig's
// spelling, and back.
func TestStatus_JSON(t *testing.T) {
	m := newManager(t, t.TempDir(), DefaultLifetimes())
	st := m.Status()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"ca":{"duration":"48h0m0s","renewBefore":"24h0m0s"}`, `"nextRotation":`, `"previous":[]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	var back Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, back); diff != "" {
		t.Errorf("round trip (-before +after):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"lifetimes":{"ca":{"duration":"forever","renewBefore":"1h"}}}`), &back); err == nil || !strings.Contains(err.Error(), "duration") {
		t.Errorf("garbled duration: %v", err)
	}
}
