package manifests

import (
	"encoding/json"
	"net"
	"regexp"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

var ifaceName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// networks checks networks and interfaces, which pair up by name.
func (v *validator) networks(spec *kubevirtv1.VirtualMachineInstanceSpec, p string) {
	np := p + ".networks"
	ip := p + ".domain.devices.interfaces"
	nets := map[string]int{}
	pod := -1
	for i, n := range spec.Networks {
		at := joinIndex(np, i)
		if j, dup := nets[n.Name]; dup {
			v.failf(at+".name", ErrNetworkNameDuplicate, "%q is also networks[%d]", n.Name, j)
		} else {
			nets[n.Name] = i
		}
		if c := countSet(n.NetworkSource); c != 1 {
			v.failf(at, ErrNetworkSource, "%d set", c)
		}
		if n.Pod != nil {
			if pod >= 0 {
				v.failf(at+".pod", ErrMultiplePodNetworks, "networks[%d] is one already", pod)
			} else {
				pod = i
			}
		}
	}
	ifaces := map[string]int{}
	for i, iface := range spec.Domain.Devices.Interfaces {
		at := joinIndex(ip, i)
		if j, dup := ifaces[iface.Name]; dup {
			v.failf(at+".name", ErrInterfaceNameDuplicate, "%q is also interfaces[%d]", iface.Name, j)
		} else {
			ifaces[iface.Name] = i
		}
		if !ifaceName.MatchString(iface.Name) {
			v.failf(at+".name", ErrInterfaceName, "got %q", iface.Name)
		}
		if _, ok := nets[iface.Name]; !ok {
			v.failf(at+".name", ErrInterfaceNoNetwork, "%q", iface.Name)
		}
		if countSet(iface.InterfaceBindingMethod)+count(iface.Binding != nil) > 1 {
			v.fail(at, ErrInterfaceBinding)
		}
		switch iface.Model {
		case "", "e1000", "e1000e", "igb", "ne2k_pci", "pcnet", "rtl8139", "virtio":
		default:
			v.failf(at+".model", ErrInterfaceModel, "got %q", iface.Model)
		}
		if iface.Masquerade != nil {
			if ni, ok := nets[iface.Name]; ok && spec.Networks[ni].Pod == nil {
				v.fail(at+".masquerade", ErrMasqueradeNotPod)
			}
		}
		if iface.PciAddress != "" && !pciAddress.MatchString(iface.PciAddress) {
			v.failf(at+".pciAddress", ErrPCIAddress, "got %q", iface.PciAddress)
		}
		ports := map[string]int{}
		for j, port := range iface.Ports {
			pp := joinIndex(at+".ports", j)
			if port.Name != "" {
				if k, dup := ports[port.Name]; dup {
					v.failf(pp+".name", ErrPortName, "%q is also ports[%d]", port.Name, k)
				} else {
					ports[port.Name] = j
				}
			}
			switch port.Protocol {
			case "", "TCP", "UDP":
			default:
				v.failf(pp+".protocol", ErrPortProtocol, "got %q", port.Protocol)
			}
			if port.Port < 1 || port.Port > 65535 {
				v.failf(pp+".port", ErrPortNumber, "got %d", port.Port)
			}
		}
		if iface.MacAddress != "" {
			if mac, err := net.ParseMAC(iface.MacAddress); err != nil || len(mac) != 6 {
				v.failf(at+".macAddress", ErrMACAddress, "got %q", iface.MacAddress)
			}
		}
	}
	for i, n := range spec.Networks {
		if _, ok := ifaces[n.Name]; !ok {
			v.failf(joinIndex(np, i)+".name", ErrNetworkNoInterface, "%q", n.Name)
		}
	}
}

// validateNAD checks that a NetworkAttachmentDefinition's config is JSON; what
// its plugins mean is decided where a VM uses it.
func validateNAD(o *Object, nad *nadv1.NetworkAttachmentDefinition) diag.List {
	v := &validator{o: o}
	if nad.Spec.Config == "" {
		// Multus then reads the config from a file named after the NAD on
		// every node, which a plain host does not have.
		v.failf("spec.config", ErrNADConfig, "it is empty")
		return v.diags
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(nad.Spec.Config), &obj); err != nil {
		v.failf("spec.config", ErrNADConfig, "%v", err)
	}
	return v.diags
}
