package virt

import (
	"errors"
	"fmt"
	"testing"

	"libvirt.org/go/libvirt"

	"github.com/nodevirt/nodevirt/runtime/hv"
)

// Errors of the link to libvirtd match hv.ErrUnavailable through every
// wrapping; errors of the operation itself do not.
func TestConnectionLost(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  libvirt.Error
		lost bool
	}{
		{"daemon not listening", libvirt.Error{Code: libvirt.ERR_SYSTEM_ERROR, Domain: libvirt.FROM_RPC, Message: "Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory"}, true},
		{"EOF mid-call", libvirt.Error{Code: libvirt.ERR_SYSTEM_ERROR, Domain: libvirt.FROM_RPC, Message: "End of file while reading data: Input/output error"}, true},
		{"socket closed", libvirt.Error{Code: libvirt.ERR_INTERNAL_ERROR, Domain: libvirt.FROM_RPC, Message: "client socket is closed"}, true},
		{"no connection", libvirt.Error{Code: libvirt.ERR_NO_CONNECT, Domain: libvirt.FROM_NONE}, true},
		{"QEMU cannot open a disk", libvirt.Error{Code: libvirt.ERR_SYSTEM_ERROR, Domain: libvirt.FROM_QEMU, Message: "Cannot access storage file"}, false},
		{"domain already exists", libvirt.Error{Code: libvirt.ERR_OPERATION_FAILED, Domain: libvirt.FROM_DOMAIN}, false},
	} {
		err := fmt.Errorf("start x: %w", fmt.Errorf("domain %q: %w", "x", wrapErr("connect to", "qemu:///system", tc.err)))
		if got := errors.Is(err, hv.ErrUnavailable); got != tc.lost {
			t.Errorf("%s: errors.Is(err, hv.ErrUnavailable) = %v, want %v", tc.name, got, tc.lost)
		}
	}
}
