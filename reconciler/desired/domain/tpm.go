package domain

import (
	"libvirt.org/go/libvirtxml"
)

// configureTPM owns <devices><tpm>: a TPM 2.0 emulated by swtpm, which
// libvirt starts beside QEMU and whose state it keeps per domain UUID under
// /var/lib/libvirt/swtpm (libvirt 9 cannot put it elsewhere).
//
// As KubeVirt: tpm-tis by default; a persistent TPM is tpm-crb, the model
// KubeVirt introduced together with persistence, with persistent_state=yes.
// Because nodevirt's domains are persistent, libvirt keeps even a
// non-persistent TPM's state across restarts; the runtime clears it before
// each start, so such a TPM starts empty as in a new virt-launcher pod.
func configureTPM(in Input, _ Context, dom *libvirtxml.Domain, _ *output) {
	t := in.Spec.Domain.Devices.TPM
	if t == nil || !enabled(t.Enabled) {
		return
	}
	tpm := libvirtxml.DomainTPM{
		Model:   "tpm-tis",
		Backend: &libvirtxml.DomainTPMBackend{Emulator: &libvirtxml.DomainTPMBackendEmulator{Version: "2.0"}},
	}
	if isTrue(t.Persistent) {
		tpm.Model = "tpm-crb"
		tpm.Backend.Emulator.PersistentState = "yes"
	}
	devs := devices(dom)
	devs.TPMs = append(devs.TPMs, tpm)
}
