package domain

import (
	"crypto/sha256"
	"fmt"
	"net"

	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// configureInterfaces owns the <interface> elements.
//
// The pod network with masquerade becomes QEMU user-mode networking
// (<interface type="user">): like KubeVirt's masquerade it gives the guest
// outbound NAT and DHCP without any host bridge. Unlike it, the addresses are
// QEMU's (guest 10.0.2.15, gateway 10.0.2.2) and nothing is forwarded inbound.
//
// A multus network with the bridge binding (SPEC VM-5, seed 8.14.6) becomes
// <interface type="bridge"> on the host bridge its NetworkAttachmentDefinition
// names (in.Networks), with its VLAN tag and MTU: the guest is on that L2
// segment as it would be behind cnv-bridge. Bridge on the pod network, SR-IOV
// and binding plugins are refused in the support table and skipped here.
func configureInterfaces(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	spec := in.Spec
	networks := make(map[string]int, len(spec.Networks))
	for i, n := range spec.Networks {
		networks[n.Name] = i
	}
	for i, iface := range spec.Domain.Devices.Interfaces {
		rel := fmt.Sprintf("domain.devices.interfaces[%d]", i)
		if iface.State == kubevirtv1.InterfaceStateAbsent {
			// "absent" is how a user unplugs an interface: no device at all.
			continue
		}
		ni, ok := networks[iface.Name]
		if !ok {
			out.invalid(rel+".name", "no network named %q", iface.Name)
			continue
		}
		network := spec.Networks[ni]
		var source *libvirtxml.DomainInterfaceSource
		var attachment *NetworkAttachment
		switch {
		case network.Pod != nil && iface.Masquerade != nil:
			source = &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}}
		case network.Multus != nil && iface.Bridge != nil && !network.Multus.Default:
			nad, ok := in.Networks[network.Name]
			if !ok || nad.Bridge == "" {
				out.invalid(fmt.Sprintf("networks[%d].multus.networkName", ni),
					"NetworkAttachmentDefinition %q was not resolved to a host bridge", network.Multus.NetworkName)
				continue
			}
			attachment = &nad
			source = &libvirtxml.DomainInterfaceSource{Bridge: &libvirtxml.DomainInterfaceSourceBridge{Bridge: nad.Bridge}}
		default:
			if !hasBinding(iface) {
				out.invalid(rel, "no binding method; nodevirt supports masquerade on the pod network and bridge on multus networks")
			}
			continue
		}

		mac := derivedMAC(in.UUID, iface.Name)
		if iface.MacAddress != "" {
			hw, err := net.ParseMAC(iface.MacAddress)
			if err != nil || len(hw) != 6 {
				out.invalid(rel+".macAddress", "%q is not a 48-bit MAC address", iface.MacAddress)
				continue
			}
			// Lower-case with colons, as libvirt writes it back.
			mac = hw.String()
		}
		model := iface.Model
		if model == "" || model == "virtio" {
			// KubeVirt names virtio NICs by transitional model too.
			model = virtioModel(in.Spec)
		}
		nic := libvirtxml.DomainInterface{
			Source: source,
			MAC:    &libvirtxml.DomainInterfaceMAC{Address: mac},
			Model:  &libvirtxml.DomainInterfaceModel{Type: model},
			Alias:  userAlias(iface.Name),
		}
		if attachment != nil {
			if attachment.VLAN > 0 {
				// An access port: untagged for the guest, tagged on the bridge.
				// libvirt (9.0) defines it on any bridge but starts it only on
				// an Open vSwitch one ("vlan tag not supported for this
				// connection type" on a Linux bridge, where the CNI bridge
				// plugin uses the kernel's VLAN filtering on the port instead).
				nic.VLan = &libvirtxml.DomainInterfaceVLan{Tags: []libvirtxml.DomainInterfaceVLanTag{{ID: attachment.VLAN}}}
			}
			if attachment.MTU > 0 {
				nic.MTU = &libvirtxml.DomainInterfaceMTU{Size: attachment.MTU}
			}
		}
		if iface.BootOrder != nil {
			nic.Boot = &libvirtxml.DomainDeviceBoot{Order: *iface.BootOrder}
		} else {
			// Without a boot order the NIC never boots, so its iPXE option
			// ROM would only cost boot time (KubeVirt does the same).
			nic.ROM = &libvirtxml.DomainROM{Enabled: "no"}
		}
		if iface.State == kubevirtv1.InterfaceStateLinkDown {
			nic.Link = &libvirtxml.DomainInterfaceLink{State: "down"}
		}
		if iface.ACPIIndex > 0 {
			nic.ACPI = &libvirtxml.DomainDeviceACPI{Index: uint(iface.ACPIIndex)}
		}
		devices(dom).Interfaces = append(devices(dom).Interfaces, nic)
	}
}

// hasBinding reports whether the interface names any binding method.
func hasBinding(iface kubevirtv1.Interface) bool {
	b := iface.InterfaceBindingMethod
	return b.Bridge != nil || b.Masquerade != nil || b.SRIOV != nil || b.DeprecatedSlirp != nil ||
		b.DeprecatedMacvtap != nil || b.DeprecatedPasst != nil || b.PasstBinding != nil || iface.Binding != nil
}

// derivedMAC is the MAC of an interface without macAddress. It must not be
// random: libvirt would otherwise generate one per define and the persistent
// XML would drift from ours on every reconcile. 52:54:00 is the prefix QEMU
// and libvirt use for the MACs they make up; it is a locally administered
// unicast prefix. The rest is a hash of the firmware UUID and the interface
// name, so it is stable per VM and differs between its interfaces.
func derivedMAC(uuid, iface string) string {
	h := sha256.Sum256([]byte(uuid + "/" + iface))
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", h[0], h[1], h[2])
}
