package diskmove

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nodevirt/nodevirt/internal/fleet"
	"github.com/nodevirt/nodevirt/internal/pki"
)

// Origin is the node that holds a volume's data, where to reach it and
// the CA its serving certificate chains to.
type Origin struct {
	Node string
	URL  string // the agent's API, https://host:port
	CA   []byte // PEM
}

// kindPV is how a report lists a PersistentVolume.
const kindPV = "PersistentVolume"

// Locate finds the other node whose fresh report lists PersistentVolume
// pv with data: where a volume just placed on self must be pulled from.
// No such node (found false) is a fresh volume, made here as any other.
// Two holders, or one that cannot be reached, is an error: pulling the
// wrong copy is worse than waiting.
func Locate(reports []fleet.Report, self, pv string, maxAge time.Duration, now time.Time) (o Origin, found bool, err error) {
	var holders []fleet.Report
	for _, r := range reports {
		if r.Node == self {
			continue
		}
		if slices.ContainsFunc(r.Volumes, func(v fleet.Volume) bool {
			return v.Kind == kindPV && v.Name == pv && v.Phase != "" && v.Phase != "Pending" && v.Phase != "Failed"
		}) {
			holders = append(holders, r)
		}
	}
	switch {
	case len(holders) == 0:
		return Origin{}, false, nil
	case len(holders) > 1:
		var names []string
		for _, h := range holders {
			names = append(names, h.Node)
		}
		return Origin{}, true, fmt.Errorf("PersistentVolume %s is reported by nodes %s: not pulling from either", pv, strings.Join(names, ", "))
	}
	h := holders[0]
	if maxAge > 0 && now.Sub(h.Time) > maxAge {
		return Origin{}, true, fmt.Errorf("PersistentVolume %s is on node %s, whose last report (%s) is older than %s", pv, h.Node, h.Time.Format(time.RFC3339), maxAge)
	}
	if h.API == "" || h.CA == "" {
		return Origin{}, true, fmt.Errorf("PersistentVolume %s is on node %s, which publishes no API address and CA: it serves no disks", pv, h.Node)
	}
	return Origin{Node: h.Node, URL: h.API, CA: []byte(h.CA)}, true, nil
}

// Released says whether the copy of a volume that moved to node to may be
// deleted here: only once to's report shows the VM that uses it running,
// never before (the new copy may yet fail). The reason says what it waits
// for, as plan and status show it.
func Released(reports []fleet.Report, to, namespace, vm string) (bool, string) {
	wait := fmt.Sprintf("kept until node %s runs vm %s/%s", to, namespace, vm)
	for _, r := range reports {
		if r.Node != to {
			continue
		}
		for _, v := range r.VMs {
			if v.Namespace == namespace && v.Name == vm && v.Running {
				return true, ""
			}
		}
	}
	return false, wait
}

// Client is the HTTPS client self pulls from origin with: a client
// certificate of self's own CA (in pkiDir) naming self, valid for
// lifetime, and trust in origin's CA only.
func Client(pkiDir, self string, origin Origin, lifetime time.Duration) (*http.Client, error) {
	certPEM, keyPEM, err := pki.IssueClient(pkiDir, self, lifetime)
	if err != nil {
		return nil, fmt.Errorf("client certificate for %s: %w", self, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(origin.CA) {
		return nil, errors.New("CA of node " + origin.Node + ": no certificate in its report")
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		ResponseHeaderTimeout: 5 * time.Minute, // a 64 MiB chunk is hashed before its first byte
	}}, nil
}
