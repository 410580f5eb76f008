package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nodevirt/nodevirt/runtime/atomicfile"
)

// step rotates whatever is due, writes it, publishes it and returns when
// the next thing is due. A failed write leaves the served material as it
// was; the next step tries again.
func (m *Manager) step() (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	overlap := m.lifetimes.CA.RenewBefore
	// due reads the clock after the deadline: a forced rotation's deadline
	// is "now" as caDeadline read it, and a clock read before that would
	// find it still ahead, rotate nothing and spin.
	due := func(deadline func() time.Time) bool {
		d := deadline()
		return !time.Now().Before(d)
	}
	if m.ca == nil || due(m.caDeadline) {
		if err := m.rotateCA(); err != nil {
			return time.Time{}, err
		}
	} else if b := MergeBundle(m.ca.cert, m.bundle, overlap); len(b) != len(m.bundle) {
		if err := m.write(BundleFile, 0o644, certsPEM(b...)); err != nil {
			return time.Time{}, err
		}
		m.bundle = b
	}
	chain := m.liveCross()
	if m.leaf == nil || due(m.leafDeadline) {
		if err := m.rotateLeaf(chain); err != nil {
			return time.Time{}, err
		}
	} else if !slices.EqualFunc(chain, m.chain, (*x509.Certificate).Equal) {
		// The old CA left the bundle: stop serving its cross-certificate.
		if err := m.write(CertFile, 0o644, certsPEM(append([]*x509.Certificate{m.leaf.cert}, chain...)...)); err != nil {
			return time.Time{}, err
		}
		m.chain = chain
	}
	m.publish()
	next := m.caDeadline()
	for _, at := range []time.Time{m.leafDeadline(), bundleChange(m.bundle, overlap)} {
		if !at.IsZero() && at.Before(next) {
			next = at
		}
	}
	return next, nil
}

func (m *Manager) rotateCA() error {
	l := m.lifetimes.CA
	next, err := issue(request{ca: true, lifetime: l.Duration}, nil)
	if err != nil {
		return fmt.Errorf("issue CA: %w", err)
	}
	bundle := MergeBundle(next.cert, m.bundle, l.RenewBefore)
	var cross []*x509.Certificate
	if prev := m.ca; prev != nil && time.Now().Before(prev.cert.NotAfter) && slices.ContainsFunc(bundle, prev.cert.Equal) {
		c, err := crossSign(next.cert, prev)
		if err != nil {
			return err
		}
		cross = []*x509.Certificate{c}
	}
	key, err := keyPEM(next.key)
	if err != nil {
		return err
	}
	// The key first: a crash between the two writes leaves a key that
	// matches no bundle, which the next start reads as "issue anew".
	if err := m.write(CAKeyFile, 0o600, key); err != nil {
		return err
	}
	if err := m.write(BundleFile, 0o644, certsPEM(bundle...)); err != nil {
		return err
	}
	m.ca, m.bundle, m.cross, m.forceCA = next, bundle, cross, false
	m.log.Info("rotated the CA", "subject", next.cert.Subject.CommonName, "notAfter", next.cert.NotAfter, "bundle", len(bundle))
	return nil
}

func (m *Manager) rotateLeaf(chain []*x509.Certificate) error {
	next, err := issue(request{lifetime: m.lifetimes.Server.Duration, dnsNames: m.dnsNames, ips: m.ips}, m.ca)
	if err != nil {
		return fmt.Errorf("issue serving certificate: %w", err)
	}
	key, err := keyPEM(next.key)
	if err != nil {
		return err
	}
	if err := m.write(KeyFile, 0o600, key); err != nil {
		return err
	}
	if err := m.write(CertFile, 0o644, certsPEM(append([]*x509.Certificate{next.cert}, chain...)...)); err != nil {
		return err
	}
	m.leaf, m.chain, m.forceLeaf = next, chain, false
	m.log.Info("rotated the serving certificate", "serial", next.cert.SerialNumber.Text(16), "notAfter", next.cert.NotAfter)
	return nil
}

// liveCross are the cross-certificates still worth serving: for the
// current CA's key, issued by a CA still in the bundle, not expired.
func (m *Manager) liveCross() []*x509.Certificate {
	var out []*x509.Certificate
	now := time.Now()
	for _, c := range m.cross {
		if !now.Before(c.NotAfter) || !c.IsCA || !m.ca.key.PublicKey.Equal(c.PublicKey) {
			continue
		}
		if slices.ContainsFunc(m.bundle[1:], func(b *x509.Certificate) bool { return c.CheckSignatureFrom(b) == nil }) {
			out = append(out, c)
		}
	}
	return out
}

// publish swaps in what m holds (m.mu held).
func (m *Manager) publish() {
	der := [][]byte{m.leaf.cert.Raw}
	for _, c := range m.chain {
		der = append(der, c.Raw)
	}
	m.cur.Store(&tls.Certificate{Certificate: der, PrivateKey: m.leaf.key, Leaf: m.leaf.cert})
	pool := x509.NewCertPool()
	for _, c := range m.bundle {
		pool.AddCert(c)
	}
	m.pool.Store(pool)
	b := certsPEM(m.bundle...)
	m.bundlePEM.Store(&b)
}

func (m *Manager) write(name string, perm os.FileMode, data []byte) error {
	path := filepath.Join(m.dir, name)
	err := atomicfile.Write(path, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
