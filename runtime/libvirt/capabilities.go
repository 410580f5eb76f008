package virt

import (
	"context"
	"errors"
	"strings"

	"libvirt.org/go/libvirt"
)

// DomainType returns the domain type this hypervisor can run: "kvm" when
// libvirt reports KVM domain capabilities for arch, "qemu" (TCG) otherwise.
// A /dev/kvm that exists but that QEMU's user cannot open counts as no KVM,
// which is why this asks libvirt rather than looking at the device node.
//
// The test driver has no domain capabilities before libvirt 9.8; it accepts
// kvm domains, so "kvm" is returned for it to keep its XML like production's.
func (d *Driver) DomainType(ctx context.Context, arch string) (string, error) {
	if strings.HasPrefix(d.uri, "test:") {
		return "kvm", nil
	}
	c, release, err := d.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	if _, err := c.GetDomainCapabilities("", arch, "", "kvm", 0); err != nil {
		var lerr libvirt.Error
		if errors.As(err, &lerr) {
			return "qemu", nil
		}
		return "", wrapErr("domain capabilities", arch, err)
	}
	return "kvm", nil
}
