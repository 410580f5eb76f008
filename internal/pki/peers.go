package pki

import (
	"crypto/tls"
)

// TLSConfigWithPeers is TLSConfig whose handshake also accepts client
// certificates signed by the CAs peers returns (PEM): other nodes' agents,
// whose CAs the fleet's status reports publish. Such a certificate is no
// credential for the API: the caller checks who signed it (see Pool) and
// lets peers reach only what is meant for them.
func (m *Manager) TLSConfigWithPeers(peers func() []byte) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: m.GetCertificate,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			pool := m.Pool()
			if extra := peers(); len(extra) > 0 {
				certs, err := parseCerts(extra)
				if err != nil {
					// One garbled report must not lock the node's own
					// clients out: the own bundle still verifies.
					m.log.Warn("peers' CAs unreadable; accepting the agent's own only", "error", err)
				} else {
					pool = pool.Clone()
					for _, c := range certs {
						pool.AddCert(c)
					}
				}
			}
			return &tls.Config{
				MinVersion:     tls.VersionTLS12,
				GetCertificate: m.GetCertificate,
				ClientCAs:      pool,
				ClientAuth:     tls.VerifyClientCertIfGiven,
			}, nil
		},
	}
}
