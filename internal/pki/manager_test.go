package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

const serverName = "node1.example"

func newManager(t *testing.T, dir string, l Lifetimes) *Manager {
	t.Helper()
	m, err := New(Options{Dir: dir, Lifetimes: l, DNSNames: []string{serverName}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// run starts m.Run in the bubble and stops it when the test ends.
func run(t *testing.T, m *Manager) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	synctest.Wait()
}

// sleep advances the bubble's clock and lets Run do what fell due.
func sleep(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func poolOf(t *testing.T, bundle []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(bundle) {
		t.Fatalf("no certificate in bundle %q", bundle)
	}
	return p
}

// handshake runs a TLS handshake against m's server configuration over a
// pipe, a client trusting roots and presenting client when given. The
// deadline keeps a stuck handshake from spinning the fake clock forever.
func handshake(m *Manager, roots *x509.CertPool, client *tls.Certificate) (tls.ConnectionState, error) {
	cc, sc := net.Pipe()
	deadline := time.Now().Add(10 * time.Second)
	_ = cc.SetDeadline(deadline)
	_ = sc.SetDeadline(deadline)
	srv := tls.Server(sc, m.TLSConfig())
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Handshake(); sc.Close() }()
	cfg := &tls.Config{RootCAs: roots, ServerName: serverName}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	c := tls.Client(cc, cfg)
	err := c.Handshake()
	st := c.ConnectionState()
	cc.Close()
	if serr := <-srvErr; err == nil && serr != nil {
		err = serr
	}
	return st, err
}

func served(t *testing.T, m *Manager) *x509.Certificate {
	t.Helper()
	c, err := m.GetCertificate(nil)
	if err != nil || c == nil || c.Leaf == nil {
		t.Fatalf("GetCertificate = %v, %v", c, err)
	}
	return c.Leaf
}

func readCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := parseCerts(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cs
}

func checkModes(t *testing.T, dir string) {
	t.Helper()
	for name, want := range map[string]os.FileMode{CAKeyFile: 0o600, KeyFile: 0o600, BundleFile: 0o644, CertFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
}

func TestNew_issues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "pki")
		t0 := time.Now()
		m := newManager(t, dir, DefaultLifetimes())
		checkModes(t, dir)
		leaf := served(t, m)
		ca := readCerts(t, filepath.Join(dir, BundleFile))
		if len(ca) != 1 || !ca[0].IsCA {
			t.Fatalf("bundle %v, want one CA", ca)
		}
		if err := leaf.CheckSignatureFrom(ca[0]); err != nil {
			t.Errorf("leaf not signed by the CA: %v", err)
		}
		if got := readCerts(t, filepath.Join(dir, CertFile)); !got[0].Equal(leaf) {
			t.Errorf("%s does not hold the served certificate", CertFile)
		}
		if lifetime(leaf) != 24*time.Hour || lifetime(ca[0]) != 48*time.Hour {
			t.Errorf("lifetimes leaf %v, CA %v; want 24h, 48h", lifetime(leaf), lifetime(ca[0]))
		}
		if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != serverName || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("SANs %v %v", leaf.DNSNames, leaf.IPAddresses)
		}
		st := m.Status()
		if !st.CA.NextRotation.Equal(t0.Add(24*time.Hour)) || !st.Server.NextRotation.Equal(t0.Add(12*time.Hour)) {
			t.Errorf("next rotations CA %v, server %v; want 24h, 12h", st.CA.NextRotation.Sub(t0), st.Server.NextRotation.Sub(t0))
		}
		if _, err := handshake(m, poolOf(t, m.Bundle()), nil); err != nil {
			t.Errorf("handshake with the bundle: %v", err)
		}
		if _, err := handshake(m, x509.NewCertPool(), nil); err == nil {
			t.Error("handshake trusting nothing succeeded")
		}
	})
}

func TestNew_reloads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		m := newManager(t, dir, DefaultLifetimes())
		before := map[string][]byte{}
		for _, f := range []string{BundleFile, CAKeyFile, CertFile, KeyFile} {
			before[f], _ = os.ReadFile(filepath.Join(dir, f))
		}
		time.Sleep(time.Hour)
		m2 := newManager(t, dir, DefaultLifetimes())
		if !served(t, m2).Equal(served(t, m)) {
			t.Error("restart issued a new serving certificate")
		}
		for f, b := range before {
			if now, _ := os.ReadFile(filepath.Join(dir, f)); string(now) != string(b) {
				t.Errorf("restart rewrote %s", f)
			}
		}
		// New SANs (another --listen address) reissue the leaf only.
		m3, err := New(Options{Dir: dir, Lifetimes: DefaultLifetimes(), DNSNames: []string{"other.example"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := served(t, m3); got.Equal(served(t, m)) || got.DNSNames[0] != "other.example" {
			t.Errorf("changed SANs kept the old certificate: %v", got.DNSNames)
		}
		if m3.Status().CA.Serial != m.Status().CA.Serial {
			t.Error("changed SANs rotated the CA")
		}
	})
}

func TestNew_recoversGarbledFiles(t *testing.T) {
	for _, tc := range []struct {
		file    string
		content string // "" removes the file
		newCA   bool
	}{
		{BundleFile, "garbage", true},
		{BundleFile, "", true},
		{CAKeyFile, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", true},
		{CAKeyFile, "", true},
		{CAKeyFile, "copy of " + KeyFile, true}, // a valid key that is not the CA's
		{CertFile, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", false},
		{CertFile, "", false},
		{KeyFile, "garbage", false},
		{KeyFile, "", false},
	} {
		t.Run(tc.file+"/"+map[bool]string{true: "garbled", false: "missing"}[tc.content != ""], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				m := newManager(t, dir, DefaultLifetimes())
				path := filepath.Join(dir, tc.file)
				content := []byte(tc.content)
				if tc.content == "copy of "+KeyFile {
					content, _ = os.ReadFile(filepath.Join(dir, KeyFile))
				}
				if tc.content == "" {
					os.Remove(path)
				} else if err := os.WriteFile(path, content, 0o600); err != nil {
					t.Fatal(err)
				}
				m2 := newManager(t, dir, DefaultLifetimes())
				if (m2.Status().CA.Serial != m.Status().CA.Serial) != tc.newCA {
					t.Errorf("new CA = %v, want %v", !tc.newCA, tc.newCA)
				}
				if served(t, m2).Equal(served(t, m)) {
					t.Error("serving certificate not reissued")
				}
				checkModes(t, dir)
				if _, err := handshake(m2, poolOf(t, m2.Bundle()), nil); err != nil {
					t.Errorf("handshake after recovery: %v", err)
				}
				// And what was written reads back as is.
				m3 := newManager(t, dir, DefaultLifetimes())
				if !served(t, m3).Equal(served(t, m2)) {
					t.Error("the recovered files did not reload")
				}
			})
		})
	}
}

func TestRun_rotatesLeafBeforeExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		t0 := time.Now()
		m := newManager(t, dir, DefaultLifetimes())
		first := served(t, m)
		run(t, m)
		sleep(12*time.Hour - time.Second)
		if !served(t, m).Equal(first) {
			t.Fatal("rotated before NotAfter - renewBefore")
		}
		sleep(2 * time.Second)
		second := served(t, m)
		if second.Equal(first) {
			t.Fatal("not rotated at NotAfter - renewBefore")
		}
		if !second.NotBefore.Equal(t0.Add(12 * time.Hour)) {
			t.Errorf("new leaf from %v, want 12h", second.NotBefore.Sub(t0))
		}
		if got := readCerts(t, filepath.Join(dir, CertFile)); !got[0].Equal(second) {
			t.Errorf("%s does not hold the rotated certificate", CertFile)
		}
		if st := m.Status(); len(st.Previous) != 0 || !st.Server.NextRotation.Equal(t0.Add(24*time.Hour)) {
			t.Errorf("status after a leaf rotation: %+v", st)
		}
		checkModes(t, dir)
	})
}

func TestRun_CARotationKeepsOldBundleClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		t0 := time.Now()
		m := newManager(t, dir, DefaultLifetimes())
		oldBundle := poolOf(t, m.Bundle()) // fetched by a client before the rotation
		oldCA := m.Status().CA.Serial
		run(t, m)
		sleep(12*time.Hour + time.Second)
		oldLeaf, _ := m.GetCertificate(nil) // signed by the old CA, valid until 36h

		sleep(12 * time.Hour) // past the CA's deadline at 24h
		st := m.Status()
		if st.CA.Serial == oldCA {
			t.Fatal("CA not rotated at NotAfter - renewBefore")
		}
		if len(st.Previous) != 1 || st.Previous[0].Serial != oldCA || !st.Previous[0].NextRotation.Equal(t0.Add(48*time.Hour)) {
			t.Fatalf("old CA in the bundle: %+v, want it until 48h", st.Previous)
		}
		if got := readCerts(t, filepath.Join(dir, BundleFile)); len(got) != 2 {
			t.Errorf("%s holds %d certificates, want 2", BundleFile, len(got))
		}
		newBundle := poolOf(t, m.Bundle())
		if cs, err := handshake(m, oldBundle, nil); err != nil {
			t.Errorf("client with the old bundle during the overlap: %v", err)
		} else if cs.PeerCertificates[0].CheckSignatureFrom(readCerts(t, filepath.Join(dir, BundleFile))[0]) != nil {
			t.Error("server still serves a leaf of the old CA")
		}
		if _, err := handshake(m, newBundle, nil); err != nil {
			t.Errorf("client with the new bundle: %v", err)
		}
		// A client certificate of the old CA is still accepted.
		if _, err := handshake(m, newBundle, oldLeaf); err != nil {
			t.Errorf("client certificate of the old CA during the overlap: %v", err)
		}
		checkModes(t, dir)

		// 48h+1s: the first CA expired and left the bundle; with the default
		// lifetimes the second one was itself replaced at 48h and overlaps
		// with the third.
		sleep(24 * time.Hour)
		st = m.Status()
		if len(st.Previous) != 1 || st.Previous[0].Serial == oldCA || st.CA.Serial == oldCA {
			t.Errorf("bundle after the first CA expired: CA %v, previous %+v", st.CA.Serial, st.Previous)
		}
		if c, _ := m.GetCertificate(nil); len(c.Certificate) != 2 {
			t.Errorf("serving %d certificates, want the leaf and one cross-certificate", len(c.Certificate))
		}
		if _, err := handshake(m, oldBundle, nil); err == nil {
			t.Error("client with the old bundle still connects after the old CA expired")
		}
		if _, err := handshake(m, newBundle, nil); err != nil {
			t.Errorf("client with the new bundle after the overlap: %v", err)
		}
	})
}

func TestSetLifetimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		m := newManager(t, t.TempDir(), DefaultLifetimes())
		run(t, m)
		sleep(time.Hour)
		before := m.Status()

		l := DefaultLifetimes()
		l.Server = Lifetime{Duration: 2 * time.Hour, RenewBefore: time.Hour}
		if err := m.SetLifetimes(l); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		st := m.Status()
		if st.Server.Serial == before.Server.Serial {
			t.Fatal("a shorter server duration did not rotate the serving certificate now")
		}
		if st.CA.Serial != before.CA.Serial {
			t.Error("a shorter server duration rotated the CA")
		}
		if d := st.Server.NotAfter.Sub(st.Server.NotBefore); d != 2*time.Hour {
			t.Errorf("new serving certificate lives %v, want 2h", d)
		}
		if !st.Server.NextRotation.Equal(t0.Add(2 * time.Hour)) {
			t.Errorf("next rotation at %v, want 2h", st.Server.NextRotation.Sub(t0))
		}
		sleep(time.Hour + time.Second)
		if m.Status().Server.Serial == st.Server.Serial {
			t.Error("the shorter lifetime's deadline did not rotate")
		}

		l.CA = Lifetime{Duration: 10 * time.Hour, RenewBefore: 5 * time.Hour}
		if err := m.SetLifetimes(l); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if m.Status().CA.Serial == before.CA.Serial {
			t.Fatal("a shorter CA duration did not rotate the CA now")
		}

		// Longer lifetimes wait for the next rotation.
		st = m.Status()
		if err := m.SetLifetimes(DefaultLifetimes()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := m.Status(); got.CA.Serial != st.CA.Serial || got.Server.Serial != st.Server.Serial {
			t.Error("longer lifetimes rotated at once")
		}

		// Lifetimes the loop cannot honour are refused; the current stay.
		bad := DefaultLifetimes()
		bad.Server.RenewBefore = 48 * time.Hour
		if err := m.SetLifetimes(bad); err == nil || !strings.Contains(err.Error(), "certConfig.server.renewBefore") {
			t.Errorf("SetLifetimes(renewBefore > duration) = %v", err)
		}
		if m.Status().Lifetimes != DefaultLifetimes() {
			t.Error("refused lifetimes were applied")
		}
	})
}

func TestRotateNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newManager(t, t.TempDir(), DefaultLifetimes())
		run(t, m)
		before := m.Status()
		m.RotateNow(false)
		synctest.Wait()
		if st := m.Status(); st.Server.Serial == before.Server.Serial || st.CA.Serial != before.CA.Serial {
			t.Errorf("RotateNow(false): server %v→%v, CA %v→%v", before.Server.Serial, st.Server.Serial, before.CA.Serial, st.CA.Serial)
		}
		m.RotateNow(true)
		synctest.Wait()
		if st := m.Status(); st.CA.Serial == before.CA.Serial || len(st.Previous) != 1 {
			t.Errorf("RotateNow(true): CA %v→%v, %d old CAs", before.CA.Serial, st.CA.Serial, len(st.Previous))
		}
	})
}

func TestRun_failedRotationKeepsServingAndRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		m := newManager(t, dir, DefaultLifetimes())
		before := served(t, m)
		run(t, m)
		// A directory where tls.crt goes makes every write of it fail.
		crt := filepath.Join(dir, CertFile)
		if err := os.Remove(crt); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(crt, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		m.RotateNow(false)
		synctest.Wait()
		if !served(t, m).Equal(before) {
			t.Fatal("a rotation that could not be written was served")
		}
		if _, err := handshake(m, poolOf(t, m.Bundle()), nil); err != nil {
			t.Errorf("handshake after a failed rotation: %v", err)
		}
		if err := os.RemoveAll(crt); err != nil {
			t.Fatal(err)
		}
		sleep(retryAfter + time.Second)
		if served(t, m).Equal(before) {
			t.Error("the failed rotation was not retried")
		}
		if got := readCerts(t, crt); !got[0].Equal(served(t, m)) {
			t.Errorf("%s does not hold the served certificate after the retry", CertFile)
		}
	})
}

// A forced rotation happens at Run's next turn, on the real clock: its
// deadline is "now", which a clock read before the deadline would miss
// (the rotation never came and Run spun).
func TestManager_rotateNowRotates(t *testing.T) {
	m, err := New(Options{Dir: t.TempDir(), Lifetimes: DefaultLifetimes()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	for _, ca := range []bool{false, true} {
		before := m.Status()
		m.RotateNow(ca)
		deadline := time.Now().Add(10 * time.Second)
		for {
			now := m.Status()
			if now.Server.Serial != before.Server.Serial && (!ca || now.CA.Serial != before.CA.Serial) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("RotateNow(%v) did not rotate", ca)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !ca && m.Status().CA.Serial != before.CA.Serial {
			t.Fatal("RotateNow(false) rotated the CA")
		}
	}
}
