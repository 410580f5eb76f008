package virt

import (
	"context"
	"errors"
	"fmt"
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

// ErrCPUIncompatible marks a guest CPU the host cannot provide; the message
// is libvirt's, naming the missing features.
var ErrCPUIncompatible = errors.New("guest CPU is incompatible with this host")

// CompareCPU asks libvirt whether the hypervisor can give a guest the CPU
// described by cpuXML (a <cpu> element as in the domain); nil means it can.
// A driver without the comparison (the test driver) yields an error wrapping
// errors.ErrUnsupported, so callers can tell "unknown" from "incompatible".
func (d *Driver) CompareCPU(ctx context.Context, arch, virtType, cpuXML string) error {
	c, release, err := d.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	_, err = c.CompareHypervisorCPU("", arch, "", virtType, cpuXML, libvirt.CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE)
	if err == nil {
		return nil
	}
	var lerr libvirt.Error
	if errors.As(err, &lerr) {
		switch lerr.Code {
		case libvirt.ERR_NO_SUPPORT:
			return fmt.Errorf("compare CPU: %w", errors.ErrUnsupported)
		case libvirt.ERR_CPU_INCOMPATIBLE:
			return fmt.Errorf("%w: %s", ErrCPUIncompatible, lerr.Message)
		}
	}
	return wrapErr("compare CPU", arch, err)
}
