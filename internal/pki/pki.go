// Package pki keeps the agent's own certificate authority and serving
// certificate, rotated before expiry by the lifetimes of the HyperConverged
// spec.certConfig, the way KubeVirt's operator rotates kubevirt-ca and its
// leaves: ECDSA P-256, a trust bundle that keeps older CAs through the
// overlap, and new material swapped in without a restart.
//
// One deviation from KubeVirt, for clients that cannot reload their bundle:
// at a CA rotation the new CA is cross-signed by the old one and the
// cross-certificate is served as an intermediate, so a client that fetched
// the bundle before the rotation keeps completing handshakes until the old
// CA leaves the bundle (Let's Encrypt's cross-signing, on a small scale).
package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Lifetime is one certificate's validity and how long before its end it is
// replaced (certConfig.ca or certConfig.server).
type Lifetime struct {
	Duration    time.Duration
	RenewBefore time.Duration
}

// Lifetimes are the CA's and the serving certificate's lifetimes, the
// certConfig after defaulting; the caller converts from manifests.
type Lifetimes struct {
	CA     Lifetime `json:"ca"`
	Server Lifetime `json:"server"`
}

// DefaultLifetimes are HCO's field defaults for certConfig: CA 48h renewed
// 24h before its end, server 24h renewed 12h before.
func DefaultLifetimes() Lifetimes {
	return Lifetimes{
		CA:     Lifetime{Duration: 48 * time.Hour, RenewBefore: 24 * time.Hour},
		Server: Lifetime{Duration: 24 * time.Hour, RenewBefore: 12 * time.Hour},
	}
}

// minDuration keeps a certificate's lifetime above what x509's whole
// seconds and the rotation loop can honour; certConfig's own minimum (10m)
// is checked by the manifests long before.
const minDuration = time.Minute

// Validate checks what the rotation loop relies on: each duration at least a
// minute and each renewBefore between zero and its duration.
func (l Lifetimes) Validate() error {
	for _, f := range []struct {
		name string
		l    Lifetime
	}{{"ca", l.CA}, {"server", l.Server}} {
		if f.l.Duration < minDuration {
			return fmt.Errorf("certConfig.%s.duration: %s is shorter than %s", f.name, f.l.Duration, minDuration)
		}
		if f.l.RenewBefore < 0 || f.l.RenewBefore > f.l.Duration {
			return fmt.Errorf("certConfig.%s.renewBefore: %s is not between 0 and the duration %s", f.name, f.l.RenewBefore, f.l.Duration)
		}
	}
	return nil
}

// maxBundle bounds the trust bundle as KubeVirt's MergeCABundle does, so a
// rotation loop gone wrong cannot grow it without end.
const maxBundle = 50

// NextRotationDeadline is KubeVirt's formula: rotate now when cert is not
// signed by ca; otherwise at cert's NotAfter − renewBefore, unless ca
// expires first, then at ca's NotAfter − caRenewBefore/2. With a nil ca it
// is the CA's own deadline, NotAfter − renewBefore.
func NextRotationDeadline(cert, ca *x509.Certificate, renewBefore, caRenewBefore time.Duration) time.Time {
	if ca != nil && cert.CheckSignatureFrom(ca) != nil {
		return time.Now()
	}
	deadline := cert.NotAfter.Add(-renewBefore)
	if ca != nil && ca.NotAfter.Before(cert.NotAfter) {
		deadline = ca.NotAfter.Add(-caRenewBefore / 2)
	}
	return deadline
}

// MergeBundle returns the trust bundle after current became the CA: current
// first, then the older CAs of bundle in order while their successor is not
// older than overlap (ca.renewBefore: what they signed may still be in use)
// and they have not expired; at most maxBundle certificates.
func MergeBundle(current *x509.Certificate, bundle []*x509.Certificate, overlap time.Duration) []*x509.Certificate {
	now := time.Now()
	out := []*x509.Certificate{current}
	successor := current
	for _, c := range bundle {
		if len(out) == maxBundle {
			break
		}
		if c.Equal(current) {
			continue
		}
		if !now.Before(c.NotAfter) || !now.Before(successor.NotBefore.Add(overlap)) {
			break // every older one has an older successor still
		}
		out = append(out, c)
		successor = c
	}
	return out
}

// bundleChange is when MergeBundle next drops a certificate of bundle
// (bundle[0] is the current CA), or the zero time when it holds no old CA.
func bundleChange(bundle []*x509.Certificate, overlap time.Duration) time.Time {
	var at time.Time
	for i := 1; i < len(bundle); i++ {
		t := bundle[i-1].NotBefore.Add(overlap)
		if bundle[i].NotAfter.Before(t) {
			t = bundle[i].NotAfter
		}
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	return at
}

// keyPair is a certificate with its private key.
type keyPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// request says what to issue: a CA, or a serving certificate for dnsNames
// and ips.
type request struct {
	ca bool
	// client names a client certificate's holder ("" for the agent's own).
	client   string
	lifetime time.Duration
	dnsNames []string
	ips      []net.IP
}

// issue creates a key and a certificate signed by parent (self-signed when
// parent is nil). NotBefore is whole seconds, as x509 stores it, so a
// certificate's lifetime reads back exactly as it was asked.
func issue(r request, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    now,
		NotAfter:     now.Add(r.lifetime),
	}
	if r.ca {
		// A distinct subject per CA keeps old and new apart in chain
		// building, even for two forced rotations within one second.
		tmpl.Subject = pkix.Name{CommonName: fmt.Sprintf("nodevirt-ca@%d.%x", now.Unix(), serial.Uint64()&0xffffffff)}
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	} else if r.client != "" {
		tmpl.Subject = pkix.Name{CommonName: r.client}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.Subject = pkix.Name{CommonName: "nodevirt"}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames = r.dnsNames
		tmpl.IPAddresses = r.ips
	}
	signer, signerCert := key, tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse created certificate: %w", err)
	}
	return &keyPair{cert: cert, key: key}, nil
}

// crossSign certifies next's key and subject with prev, valid while both
// are, so a chain leaf → cross → prev verifies for clients that trust only
// prev.
func crossSign(next *x509.Certificate, prev *keyPair) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               next.Subject,
		SubjectKeyId:          next.SubjectKeyId,
		NotBefore:             next.NotBefore,
		NotAfter:              next.NotAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              next.KeyUsage,
	}
	if prev.cert.NotAfter.Before(tmpl.NotAfter) {
		tmpl.NotAfter = prev.cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, prev.cert, next.PublicKey, prev.key)
	if err != nil {
		return nil, fmt.Errorf("cross-sign CA: %w", err)
	}
	return x509.ParseCertificate(der)
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return s, nil
}

func certsPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

func keyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseCerts reads every CERTIFICATE block of b; anything else in b, or no
// certificate at all, is an error.
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(b)) != 0 {
		return nil, fmt.Errorf("trailing data after the certificates")
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no certificate")
	}
	return out, nil
}

func parseKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("no PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ECDSA", k)
	}
	return ek, nil
}
