package domain

import (
	"fmt"

	"libvirt.org/go/libvirtxml"
)

// checkAccessCredentials reports the accessCredentials nodevirt cannot
// deliver. Keys propagated through cloud-init are written by the seed
// images (cloudinit.go); this configurator owns no element.
func checkAccessCredentials(in Input, _ Context, _ *libvirtxml.Domain, out *output) {
	var noCloud, configDrive bool
	for _, v := range in.Spec.Volumes {
		noCloud = noCloud || v.CloudInitNoCloud != nil
		configDrive = configDrive || v.CloudInitConfigDrive != nil
	}
	for i, c := range in.Spec.AccessCredentials {
		rel := fmt.Sprintf("accessCredentials[%d]", i)
		if c.UserPassword != nil {
			out.refuse(rel+".userPassword", "KubeVirt sets passwords through the qemu guest agent while the guest runs, "+
				"which nodevirt does not drive; set them in cloud-init user-data (chpasswd) instead")
		}
		k := c.SSHPublicKey
		if k == nil {
			if c.UserPassword == nil {
				// KubeVirt's admission asks for exactly one of them.
				out.invalid(rel, "sets neither sshPublicKey nor userPassword")
			}
			continue
		}
		if k.Source.Secret == nil || k.Source.Secret.SecretName == "" {
			out.invalid(rel+".sshPublicKey.source", "names no secret")
		}
		m := k.PropagationMethod
		if m.QemuGuestAgent != nil {
			out.refuse(rel+".sshPublicKey.propagationMethod.qemuGuestAgent", "KubeVirt writes these keys through the qemu guest agent while the guest runs, "+
				"which nodevirt does not drive; use propagationMethod noCloud or configDrive")
		}
		// KubeVirt's admission asks the same: the keys ride on the seed image.
		if m.NoCloud != nil && !noCloud {
			out.invalid(rel+".sshPublicKey.propagationMethod.noCloud", "needs a cloudInitNoCloud volume to carry the keys")
		}
		if m.ConfigDrive != nil && !configDrive {
			out.invalid(rel+".sshPublicKey.propagationMethod.configDrive", "needs a cloudInitConfigDrive volume to carry the keys")
		}
		if m.NoCloud == nil && m.ConfigDrive == nil && m.QemuGuestAgent == nil {
			out.invalid(rel+".sshPublicKey.propagationMethod", "names no method: use noCloud or configDrive")
		}
	}
}
