package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The files of the directory a Manager keeps.
const (
	BundleFile = "ca.crt"  // the trust bundle: current CA first, then older ones
	CAKeyFile  = "ca.key"  // the current CA's key
	CertFile   = "tls.crt" // the serving certificate, then its intermediates
	KeyFile    = "tls.key" // the serving certificate's key
)

// retryAfter is how long a failed rotation (a full disk, say) waits before
// the next try; the current certificates keep being served meanwhile.
const retryAfter = time.Minute

// Options configure a Manager.
type Options struct {
	Dir       string // <state>/pki; created when missing
	Lifetimes Lifetimes
	DNSNames  []string // the serving certificate's DNS SANs
	IPs       []net.IP // the serving certificate's IP SANs
	Log       *slog.Logger
}

// Manager keeps a CA, its trust bundle and a serving certificate in a
// directory and rotates them by their lifetimes. Its methods are safe for
// concurrent use; Run is the one goroutine that rotates on time.
type Manager struct {
	dir      string
	dnsNames []string
	ips      []net.IP
	log      *slog.Logger
	wake     chan struct{}

	mu        sync.Mutex
	lifetimes Lifetimes
	ca        *keyPair            // nil until issued or loaded
	bundle    []*x509.Certificate // bundle[0] is ca.cert once ca is set
	leaf      *keyPair
	cross     []*x509.Certificate // ca cross-signed by its predecessor
	chain     []*x509.Certificate // the intermediates served after leaf, as tls.crt holds them
	forceCA   bool
	forceLeaf bool

	cur       atomic.Pointer[tls.Certificate]
	pool      atomic.Pointer[x509.CertPool]
	bundlePEM atomic.Pointer[[]byte]
}

// New loads the directory's certificates and issues whatever is missing,
// garbled or due, so GetCertificate serves at once. It fails only when the
// directory cannot be written.
func New(o Options) (*Manager, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := o.Lifetimes.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("certificate directory: %w", err)
	}
	m := &Manager{
		dir:       o.Dir,
		dnsNames:  slices.Clone(o.DNSNames),
		ips:       slices.Clone(o.IPs),
		log:       o.Log,
		wake:      make(chan struct{}, 1),
		lifetimes: o.Lifetimes,
	}
	m.load()
	if _, err := m.step(); err != nil {
		return nil, err
	}
	return m, nil
}

// load reads what the directory holds. Anything unreadable is logged and
// left unset, so step issues it anew.
func (m *Manager) load() {
	bad := func(file string, err error) {
		if !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("unusable certificate file, issuing anew", "file", filepath.Join(m.dir, file), "err", err)
		}
	}
	b, err := os.ReadFile(filepath.Join(m.dir, BundleFile))
	if err == nil {
		m.bundle, err = parseCerts(b)
	}
	if err != nil {
		bad(BundleFile, err)
	}
	if b, err = os.ReadFile(filepath.Join(m.dir, CAKeyFile)); err == nil {
		var key *ecdsa.PrivateKey
		key, err = parseKey(b)
		if err == nil && len(m.bundle) > 0 && m.bundle[0].IsCA && key.PublicKey.Equal(m.bundle[0].PublicKey) {
			m.ca = &keyPair{cert: m.bundle[0], key: key}
		} else if err == nil {
			err = fmt.Errorf("key does not match the first certificate of %s", BundleFile)
		}
	}
	if err != nil {
		bad(CAKeyFile, err)
	}
	certPEM, err := os.ReadFile(filepath.Join(m.dir, CertFile))
	if err != nil {
		bad(CertFile, err)
		return
	}
	keyB, err := os.ReadFile(filepath.Join(m.dir, KeyFile))
	if err != nil {
		bad(KeyFile, err)
		return
	}
	pair, err := tls.X509KeyPair(certPEM, keyB)
	if err == nil {
		err = m.adoptLeaf(pair)
	}
	if err != nil {
		bad(CertFile, err)
	}
}

func (m *Manager) adoptLeaf(pair tls.Certificate) error {
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("key is %T, want ECDSA", pair.PrivateKey)
	}
	var chain []*x509.Certificate
	for _, der := range pair.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		chain = append(chain, c)
	}
	m.leaf = &keyPair{cert: pair.Leaf, key: key}
	m.chain, m.cross = chain, chain
	return nil
}

// SetLifetimes applies a changed certConfig: deadlines are recomputed at
// once, and a certificate that lives longer than its new duration rotates
// now. Invalid lifetimes are refused and the current ones kept.
func (m *Manager) SetLifetimes(l Lifetimes) error {
	if err := l.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	m.lifetimes = l
	m.mu.Unlock()
	m.poke()
	return nil
}

// RotateNow replaces the serving certificate, and with ca the CA too, at
// the next turn of Run (an administrator's forced rotation).
func (m *Manager) RotateNow(ca bool) {
	m.mu.Lock()
	m.forceLeaf = true
	m.forceCA = m.forceCA || ca
	m.mu.Unlock()
	m.poke()
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run rotates each certificate at its deadline until ctx ends. A failed
// rotation is logged and retried; the current material keeps being served.
func (m *Manager) Run(ctx context.Context) error {
	for {
		next, err := m.step()
		if err != nil {
			m.log.Error("certificate rotation failed, serving the current certificates", "err", err, "retry", retryAfter)
			next = time.Now().Add(retryAfter)
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-m.wake:
			t.Stop()
		}
	}
}

// GetCertificate serves the current certificate (tls.Config.GetCertificate).
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.cur.Load(), nil
}

// Pool is the trust bundle as a pool: clients' RootCAs, or the ClientCAs
// that client certificates are verified against.
func (m *Manager) Pool() *x509.CertPool { return m.pool.Load() }

// Bundle is the trust bundle in PEM, as ca.crt holds it.
func (m *Manager) Bundle() []byte { return slices.Clone(*m.bundlePEM.Load()) }

// TLSConfig is a server configuration on the rotating material: TLS 1.2 or
// later, the current certificate per handshake, and client certificates,
// when given, verified against the current bundle (KubeVirt's
// GetConfigForClient, optional because bearer tokens are the other way in).
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: m.GetCertificate,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return &tls.Config{
				MinVersion:     tls.VersionTLS12,
				GetCertificate: m.GetCertificate,
				ClientCAs:      m.Pool(),
				ClientAuth:     tls.VerifyClientCertIfGiven,
			}, nil
		},
	}
}

// CertStatus is one certificate as `certs status` shows it.
type CertStatus struct {
	Subject   string    `json:"subject"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// NextRotation is when the certificate is replaced; for an older CA of
	// the bundle, when it leaves the bundle.
	NextRotation time.Time `json:"nextRotation"`
}

// Status is the manager's material and deadlines.
type Status struct {
	Lifetimes Lifetimes  `json:"lifetimes"`
	CA        CertStatus `json:"ca"`
	Server    CertStatus `json:"server"`
	// Previous are the older CAs still in the bundle, newest first.
	Previous []CertStatus `json:"previous"`
}

// Status reports every certificate and when it rotates.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return statusOf(m.lifetimes, m.bundle, m.leaf.cert, m.forceCA, m.forceLeaf || !m.leafSANsMatch())
}

func certStatus(c *x509.Certificate, next time.Time) CertStatus {
	return CertStatus{
		Subject:      c.Subject.CommonName,
		Serial:       c.SerialNumber.Text(16),
		NotBefore:    c.NotBefore,
		NotAfter:     c.NotAfter,
		NextRotation: next,
	}
}

// caDeadline is the CA's next rotation (m.mu held, m.ca set): KubeVirt's
// formula, or now for a CA that outlives the lifetime asked for (a
// shortened certConfig) or whose rotation was forced.
func (m *Manager) caDeadline() time.Time {
	return caDue(m.ca.cert, m.lifetimes, m.forceCA)
}

// leafDeadline is the serving certificate's next rotation (m.mu held,
// m.ca and m.leaf set), by the same rules; new SANs rotate it too.
func (m *Manager) leafDeadline() time.Time {
	return leafDue(m.leaf.cert, m.ca.cert, m.lifetimes, m.forceLeaf || !m.leafSANsMatch())
}

// due is NextRotationDeadline, but never before the certificate has lived a
// tenth of its lifetime: with renewBefore equal to the duration (which the
// certConfig rules allow) the formula says "now" for a certificate just
// issued, and the loop would never rest.
func due(c, ca *x509.Certificate, l Lifetime, caRenewBefore time.Duration) time.Time {
	if ca != nil && c.CheckSignatureFrom(ca) != nil {
		return time.Now()
	}
	at := NextRotationDeadline(c, ca, l.RenewBefore, caRenewBefore)
	if floor := c.NotBefore.Add(lifetime(c) / 10); at.Before(floor) {
		at = floor
	}
	return at
}

func lifetime(c *x509.Certificate) time.Duration { return c.NotAfter.Sub(c.NotBefore) }

func (m *Manager) leafSANsMatch() bool {
	c := m.leaf.cert
	return slices.Equal(c.DNSNames, m.dnsNames) &&
		slices.EqualFunc(c.IPAddresses, m.ips, func(a, b net.IP) bool { return a.Equal(b) })
}
