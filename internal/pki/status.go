package pki

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ReadStatus is Manager.Status for a directory no Manager holds here (the
// agent runs in another process, or not at all): it reads the bundle and
// the serving certificate, never their keys, and creates or rotates
// nothing. What it cannot see is a forced rotation or changed SANs that a
// running Manager would act on at once.
func ReadStatus(dir string, l Lifetimes) (Status, error) {
	if err := l.Validate(); err != nil {
		return Status{}, err
	}
	read := func(name string) ([]*x509.Certificate, error) {
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		cs, err := parseCerts(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return cs, nil
	}
	bundle, err := read(BundleFile)
	if err == nil && !bundle[0].IsCA {
		err = fmt.Errorf("%s: the first certificate is not a CA", filepath.Join(dir, BundleFile))
	}
	var leaf []*x509.Certificate
	if err == nil {
		leaf, err = read(CertFile)
	}
	if errors.Is(err, os.ErrNotExist) {
		return Status{}, fmt.Errorf("no certificates in %s yet: they are made when `nodevirt run` starts its API", dir)
	}
	if err != nil {
		return Status{}, err
	}
	return statusOf(l, bundle, leaf[0], false, false), nil
}

// statusOf is the status of a trust bundle (bundle[0] the current CA) and a
// serving certificate under l; forceCA and forceLeaf say a rotation is due
// now whatever the dates say.
func statusOf(l Lifetimes, bundle []*x509.Certificate, leaf *x509.Certificate, forceCA, forceLeaf bool) Status {
	ca := bundle[0]
	st := Status{
		Lifetimes: l,
		CA:        certStatus(ca, caDue(ca, l, forceCA)),
		Server:    certStatus(leaf, leafDue(leaf, ca, l, forceLeaf)),
		Previous:  []CertStatus{},
	}
	for i := 1; i < len(bundle); i++ {
		at := bundle[i-1].NotBefore.Add(l.CA.RenewBefore)
		if bundle[i].NotAfter.Before(at) {
			at = bundle[i].NotAfter
		}
		st.Previous = append(st.Previous, certStatus(bundle[i], at))
	}
	return st
}

// caDue is the CA's next rotation: KubeVirt's formula, or now for a CA
// that outlives the lifetime asked for (a shortened certConfig) or whose
// rotation was forced.
func caDue(ca *x509.Certificate, l Lifetimes, force bool) time.Time {
	if force || lifetime(ca) > l.CA.Duration {
		return time.Now()
	}
	return due(ca, nil, l.CA, 0)
}

// leafDue is the serving certificate's next rotation, by the same rules.
func leafDue(leaf, ca *x509.Certificate, l Lifetimes, force bool) time.Time {
	if force || lifetime(leaf) > l.Server.Duration {
		return time.Now()
	}
	return due(leaf, ca, l.Server, l.CA.RenewBefore)
}

// lifetimeJSON spells durations as certConfig does ("48h0m0s"), not in
// nanoseconds.
type lifetimeJSON struct {
	Duration    string `json:"duration"`
	RenewBefore string `json:"renewBefore"`
}

func (l Lifetime) MarshalJSON() ([]byte, error) {
	return json.Marshal(lifetimeJSON{Duration: l.Duration.String(), RenewBefore: l.RenewBefore.String()})
}

func (l *Lifetime) UnmarshalJSON(b []byte) error {
	var j lifetimeJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	d, err := time.ParseDuration(j.Duration)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	r, err := time.ParseDuration(j.RenewBefore)
	if err != nil {
		return fmt.Errorf("renewBefore: %w", err)
	}
	*l = Lifetime{Duration: d, RenewBefore: r}
	return nil
}
