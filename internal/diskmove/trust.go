// Package diskmove moves a local disk from one node to another: the old
// node serves the file by chunks over mutual TLS to the one node its
// applied commit now places the volume on, and the new node pulls the
// chunks, checks each against its SHA-256 and resumes from a journal after
// an interruption. Trust comes from git: each agent publishes its CA in its
// status report, and a peer is believed only for the node name its own CA
// vouches for.
package diskmove

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/nodevirt/nodevirt/internal/fleet"
)

// Peers are the CAs of the other nodes of a fleet, each trusted for its own
// node's name only: a node cannot vouch for another.
type Peers struct {
	pools map[string]*x509.CertPool
}

// PeersFrom reads the CAs of reports written no earlier than now − maxAge,
// skipping self's: a node gone quiet, or a report without a CA, is no peer.
// A CA that does not parse is an error naming its node.
func PeersFrom(reports []fleet.Report, self string, maxAge time.Duration, now time.Time) (Peers, error) {
	p := Peers{pools: map[string]*x509.CertPool{}}
	var errs []error
	for _, r := range reports {
		if r.Node == self || r.CA == "" || (maxAge > 0 && now.Sub(r.Time) > maxAge) {
			continue
		}
		pool := x509.NewCertPool()
		if err := appendPEM(pool, []byte(r.CA)); err != nil {
			errs = append(errs, fmt.Errorf("CA of node %s: %w", r.Node, err))
			continue
		}
		p.pools[r.Node] = pool
	}
	return p, errors.Join(errs...)
}

func appendPEM(pool *x509.CertPool, b []byte) error {
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return fmt.Errorf("unexpected PEM block %q", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return err
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return errors.New("no certificate in PEM")
	}
	return nil
}

// ErrUntrusted is a client certificate no peer's CA vouches for.
var ErrUntrusted = errors.New("client certificate not trusted")

// Node verifies a client's chain (leaf first, as tls.ConnectionState's
// PeerCertificates) and returns the node it names: its common name, and
// only if that node's own CA signed it for client authentication.
func (p Peers) Node(chain []*x509.Certificate) (string, error) {
	if len(chain) == 0 {
		return "", fmt.Errorf("%w: no client certificate given", ErrUntrusted)
	}
	leaf := chain[0]
	node := leaf.Subject.CommonName
	pool, ok := p.pools[node]
	if !ok {
		return "", fmt.Errorf("%w: no fresh status report of node %q publishes a CA", ErrUntrusted, node)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", fmt.Errorf("%w: node %q: %w", ErrUntrusted, node, err)
	}
	return node, nil
}
