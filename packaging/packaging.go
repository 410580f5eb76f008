// Package packaging holds the files that make nodevirt a service on a
// host, embedded so that `nodevirt install` writes exactly what is
// shipped and tested here.
package packaging

import _ "embed"

//go:embed nodevirt.service
var unit string

// Unit is the systemd unit, installed as
// /etc/systemd/system/nodevirt.service.
func Unit() string { return unit }
