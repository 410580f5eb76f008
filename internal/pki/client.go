package pki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// IssueClient signs a client certificate for name with the current CA of
// dir: as good as a bearer token for the agent's API, for as long as the CA
// that signed it stays in the bundle. Its lifetime is capped at the CA's
// remaining one, since a chain is no longer valid than its root.
func IssueClient(dir, name string, lifetime time.Duration) (cert, key []byte, err error) {
	if name == "" {
		return nil, nil, errors.New("a client certificate needs a name")
	}
	b, err := os.ReadFile(filepath.Join(dir, BundleFile))
	if err != nil {
		return nil, nil, fmt.Errorf("no CA in %s yet (it is made when `nodevirt run` starts its API): %w", dir, err)
	}
	bundle, err := parseCerts(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, BundleFile), err)
	}
	kb, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, nil, err
	}
	caKey, err := parseKey(kb)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, CAKeyFile), err)
	}
	if len(bundle) == 0 || !bundle[0].IsCA || !caKey.PublicKey.Equal(bundle[0].PublicKey) {
		return nil, nil, fmt.Errorf("%s does not match the first certificate of %s", CAKeyFile, BundleFile)
	}
	ca := &keyPair{cert: bundle[0], key: caKey}
	if rest := time.Until(ca.cert.NotAfter); lifetime > rest {
		lifetime = rest
	}
	kp, err := issue(request{client: name, lifetime: lifetime}, ca)
	if err != nil {
		return nil, nil, err
	}
	if key, err = keyPEM(kp.key); err != nil {
		return nil, nil, err
	}
	return certsPEM(kp.cert), key, nil
}
