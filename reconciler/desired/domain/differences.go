package domain

import (
	"errors"
	"fmt"

	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// ErrDiffers marks a warning about something a guest moved from KubeVirt
// notices on nodevirt, although every field of its spec is mapped: a plain
// host has no pod network or cluster behind it.
var ErrDiffers = errors.New(differsFromKubeVirt)

const differsFromKubeVirt = "differs from KubeVirt"

// Why each difference exists, shared with the README's list of differences.
const (
	differsPodNetwork = "the pod network is QEMU user-mode networking: the guest gets 10.0.2.15/24 with gateway 10.0.2.2 and DNS 10.0.2.3 " +
		"(KubeVirt's masquerade gives 10.0.2.2 with gateway 10.0.2.1 and the cluster's DNS), and nothing outside can connect in; " +
		"a plain host has no pod network to plug into"
	differsCPUHotplug = "the guest sees only sockets × cores × threads possible CPUs and no hotplug memory: KubeVirt's live-update rollout gives a " +
		"VirtualMachine spare sockets (maxSockets) and memory (maxGuest) to hot-plug into, which nodevirt, changing VMs by restart, does not define"
)

// reportDifferences warns once per VM about each difference from KubeVirt
// its guest can notice, naming the field that brings it in. Only when the
// caller asks (validate): they describe the host, so there is nothing to fix
// in the manifest and the reconcile loop need not repeat them.
func reportDifferences(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	if !ctx.ReportDifferences {
		return
	}
	spec := in.Spec
	for i, iface := range spec.Domain.Devices.Interfaces {
		if iface.Masquerade != nil && onPodNetwork(spec, iface.Name) {
			out.add(diag.Warning, ErrDiffers, fmt.Sprintf("domain.devices.interfaces[%d].masquerade", i), differsFromKubeVirt+": "+differsPodNetwork)
			break
		}
	}
	// KubeVirt sets up hotplug slots for VirtualMachines only; the support
	// table already warns when maxSockets asks for more than sockets.
	if in.PathPrefix == vmPathPrefix {
		if c := spec.Domain.CPU; c == nil || c.MaxSockets == 0 {
			out.add(diag.Warning, ErrDiffers, "domain.cpu", differsFromKubeVirt+": "+differsCPUHotplug)
		}
	}
}

// vmPathPrefix is where a VirtualMachine holds its VMI spec.
const vmPathPrefix = "spec.template.spec"
