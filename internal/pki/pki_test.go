package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"testing"
	"testing/synctest"
	"time"
)

// mkCert makes a certificate valid from nb to na, signed by parent
// (self-signed CA when parent is nil).
func mkCert(t *testing.T, name string, parent *keyPair, nb, na time.Time) *keyPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(nb.Unix()), Subject: pkix.Name{CommonName: name},
		NotBefore: nb, NotAfter: na, IsCA: parent == nil, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	signer, signerCert := key, tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &keyPair{cert: c, key: key}
}

func TestNextRotationDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		ca := mkCert(t, "ca", nil, h(0), h(48))
		other := mkCert(t, "other", nil, h(0), h(48))
		leaf := mkCert(t, "leaf", ca, h(0), h(24))
		late := mkCert(t, "late", ca, h(40), h(64)) // outlives its CA
		for _, tc := range []struct {
			name           string
			cert, ca       *x509.Certificate
			renew, caRenew time.Duration
			want           time.Time
		}{
			{"leaf of the current CA: NotAfter - renewBefore", leaf.cert, ca.cert, 12 * time.Hour, 24 * time.Hour, h(12)},
			{"leaf of another CA: now", leaf.cert, other.cert, 12 * time.Hour, 24 * time.Hour, t0},
			{"CA expires first: caNotAfter - caRenewBefore/2", late.cert, ca.cert, 12 * time.Hour, 24 * time.Hour, h(36)},
			{"the CA itself: NotAfter - renewBefore", ca.cert, nil, 20 * time.Hour, 0, h(28)},
		} {
			if got := NextRotationDeadline(tc.cert, tc.ca, tc.renew, tc.caRenew); !got.Equal(tc.want) {
				t.Errorf("%s: deadline %v, want %v", tc.name, got.Sub(t0), tc.want.Sub(t0))
			}
		}
	})
}

func TestMergeBundle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		// Each CA was issued 24h after its predecessor; now is t0.
		c := mkCert(t, "c", nil, h(-1), h(47))   // current, 1h old
		b := mkCert(t, "b", nil, h(-25), h(23))  // successor c is 1h old: kept
		a := mkCert(t, "a", nil, h(-49), h(-1))  // expired: dropped
		b2 := mkCert(t, "b2", nil, h(-25), h(1)) // like b
		names := func(cs []*x509.Certificate) string {
			s := ""
			for _, c := range cs {
				s += c.Subject.CommonName + " "
			}
			return s
		}
		for _, tc := range []struct {
			name    string
			bundle  []*x509.Certificate
			overlap time.Duration
			want    string
		}{
			{"fresh successor keeps the old CA", []*x509.Certificate{b.cert}, 24 * time.Hour, "c b "},
			{"current not repeated", []*x509.Certificate{c.cert, b.cert}, 24 * time.Hour, "c b "},
			{"expired dropped", []*x509.Certificate{b.cert, a.cert}, 24 * time.Hour, "c b "},
			{"successor older than the overlap drops it", []*x509.Certificate{b.cert}, 30 * time.Minute, "c "},
			{"successor's age is per entry", []*x509.Certificate{b.cert, b2.cert}, 24 * time.Hour, "c b "},
		} {
			if got := names(MergeBundle(c.cert, tc.bundle, tc.overlap)); got != tc.want {
				t.Errorf("%s: bundle %q, want %q", tc.name, got, tc.want)
			}
		}
		var many []*x509.Certificate
		for i := range 60 {
			many = append(many, mkCert(t, fmt.Sprint(i), nil, h(-1), h(47)).cert)
		}
		if got := len(MergeBundle(c.cert, many, 24*time.Hour)); got != maxBundle {
			t.Errorf("bundle of %d, want at most %d", got, maxBundle)
		}
		if at := bundleChange([]*x509.Certificate{c.cert, b.cert}, 24*time.Hour); !at.Equal(h(23)) {
			t.Errorf("bundle changes at %v, want 23h", at.Sub(t0))
		}
	})
}
