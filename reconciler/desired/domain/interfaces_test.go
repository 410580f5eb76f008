package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureInterfaces(t *testing.T) {
	const uuid = "0d3a1b7e-6f2c-4c1d-9a55-3e2f1f0c7a10"
	pod := kubevirtv1.NetworkSource{Pod: &kubevirtv1.PodNetwork{}}
	masq := kubevirtv1.InterfaceBindingMethod{Masquerade: &kubevirtv1.InterfaceMasquerade{}}
	user := &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}}
	noROM := &libvirtxml.DomainROM{Enabled: "no"}

	for _, tc := range []struct {
		name       string
		interfaces []kubevirtv1.Interface
		networks   []kubevirtv1.Network
		// attachments are the resolved NetworkAttachmentDefinitions (Input.Networks).
		attachments map[string]NetworkAttachment
		want        *libvirtxml.Domain
		diags       []diagLine
	}{
		{
			name:       "masquerade on the pod network",
			interfaces: []kubevirtv1.Interface{{Name: "default", InterfaceBindingMethod: masq}},
			networks:   []kubevirtv1.Network{{Name: "default", NetworkSource: pod}},
			want: &libvirtxml.Domain{Devices: &libvirtxml.DomainDeviceList{Interfaces: []libvirtxml.DomainInterface{{
				Source: user, MAC: &libvirtxml.DomainInterfaceMAC{Address: derivedMAC(uuid, "default")},
				Model: &libvirtxml.DomainInterfaceModel{Type: "virtio-non-transitional"}, ROM: noROM, Alias: userAlias("default"),
			}}}},
		},
		{
			name: "model, MAC, boot order, link down, ACPI index",
			interfaces: []kubevirtv1.Interface{{
				Name: "default", InterfaceBindingMethod: masq, Model: "e1000", MacAddress: "DE-AD-00-00-BE-AF",
				BootOrder: ptr(uint(1)), State: kubevirtv1.InterfaceStateLinkDown, ACPIIndex: 2,
			}},
			networks: []kubevirtv1.Network{{Name: "default", NetworkSource: pod}},
			want: &libvirtxml.Domain{Devices: &libvirtxml.DomainDeviceList{Interfaces: []libvirtxml.DomainInterface{{
				Source: user, MAC: &libvirtxml.DomainInterfaceMAC{Address: "de:ad:00:00:be:af"},
				Model: &libvirtxml.DomainInterfaceModel{Type: "e1000"}, Boot: &libvirtxml.DomainDeviceBoot{Order: 1},
				Link: &libvirtxml.DomainInterfaceLink{State: "down"}, ACPI: &libvirtxml.DomainDeviceACPI{Index: 2},
				Alias: userAlias("default"),
			}}}},
		},
		{
			name:       "absent interface is left out",
			interfaces: []kubevirtv1.Interface{{Name: "default", InterfaceBindingMethod: masq, State: kubevirtv1.InterfaceStateAbsent}},
			networks:   []kubevirtv1.Network{{Name: "default", NetworkSource: pod}},
			want:       &libvirtxml.Domain{},
		},
		{
			// Bridge on the pod network, a multus default network and SR-IOV
			// are refused by the support table; this configurator only skips them.
			name: "refused bindings and networks are skipped",
			interfaces: []kubevirtv1.Interface{
				{Name: "default", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Bridge: &kubevirtv1.InterfaceBridge{}}},
				{Name: "lan", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Bridge: &kubevirtv1.InterfaceBridge{}}},
				{Name: "vf", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{SRIOV: &kubevirtv1.InterfaceSRIOV{}}},
			},
			networks: []kubevirtv1.Network{
				{Name: "default", NetworkSource: pod},
				{Name: "lan", NetworkSource: kubevirtv1.NetworkSource{Multus: &kubevirtv1.MultusNetwork{NetworkName: "br", Default: true}}},
				{Name: "vf", NetworkSource: kubevirtv1.NetworkSource{Multus: &kubevirtv1.MultusNetwork{NetworkName: "sriov"}}},
			},
			want: &libvirtxml.Domain{},
		},
		{
			// Seed 8.14.6: cnv-bridge on br1 with VLAN 1, a given MAC and
			// the first boot order; the MTU comes from the plugin's mtu.
			name: "bridge on a multus network",
			interfaces: []kubevirtv1.Interface{{
				Name: "pxe-net", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Bridge: &kubevirtv1.InterfaceBridge{}},
				MacAddress: "de:00:00:00:00:de", BootOrder: ptr(uint(1)),
			}},
			networks: []kubevirtv1.Network{
				{Name: "pxe-net", NetworkSource: kubevirtv1.NetworkSource{Multus: &kubevirtv1.MultusNetwork{NetworkName: "pxe-net-conf"}}},
			},
			attachments: map[string]NetworkAttachment{"pxe-net": {Bridge: "br1", VLAN: 1, MTU: 9000}},
			want: &libvirtxml.Domain{Devices: &libvirtxml.DomainDeviceList{Interfaces: []libvirtxml.DomainInterface{{
				Source: &libvirtxml.DomainInterfaceSource{Bridge: &libvirtxml.DomainInterfaceSourceBridge{Bridge: "br1"}},
				MAC:    &libvirtxml.DomainInterfaceMAC{Address: "de:00:00:00:00:de"},
				Model:  &libvirtxml.DomainInterfaceModel{Type: "virtio-non-transitional"}, Boot: &libvirtxml.DomainDeviceBoot{Order: 1},
				VLan:  &libvirtxml.DomainInterfaceVLan{Tags: []libvirtxml.DomainInterfaceVLanTag{{ID: 1}}},
				MTU:   &libvirtxml.DomainInterfaceMTU{Size: 9000},
				Alias: userAlias("pxe-net"),
			}}}},
		},
		{
			name: "bridge on a multus network, untagged, derived MAC",
			interfaces: []kubevirtv1.Interface{{
				Name: "lan", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Bridge: &kubevirtv1.InterfaceBridge{}}, Model: "e1000",
			}},
			networks: []kubevirtv1.Network{
				{Name: "lan", NetworkSource: kubevirtv1.NetworkSource{Multus: &kubevirtv1.MultusNetwork{NetworkName: "infra/lan"}}},
			},
			attachments: map[string]NetworkAttachment{"lan": {Bridge: "br0"}},
			want: &libvirtxml.Domain{Devices: &libvirtxml.DomainDeviceList{Interfaces: []libvirtxml.DomainInterface{{
				Source: &libvirtxml.DomainInterfaceSource{Bridge: &libvirtxml.DomainInterfaceSourceBridge{Bridge: "br0"}},
				MAC:    &libvirtxml.DomainInterfaceMAC{Address: derivedMAC(uuid, "lan")},
				Model:  &libvirtxml.DomainInterfaceModel{Type: "e1000"}, ROM: noROM, Alias: userAlias("lan"),
			}}}},
		},
		{
			// The caller resolves every bridge-bound multus network or
			// reports why not; a missing entry is a caller bug, not silence.
			name: "unresolved multus network",
			interfaces: []kubevirtv1.Interface{{
				Name: "lan", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Bridge: &kubevirtv1.InterfaceBridge{}},
			}},
			networks: []kubevirtv1.Network{
				{Name: "lan", NetworkSource: kubevirtv1.NetworkSource{Multus: &kubevirtv1.MultusNetwork{NetworkName: "lan"}}},
			},
			want:  &libvirtxml.Domain{},
			diags: []diagLine{{"error", "spec.template.spec.networks[0].multus.networkName", `invalid: NetworkAttachmentDefinition "lan" was not resolved to a host bridge`}},
		},
		{
			name: "invalid input",
			interfaces: []kubevirtv1.Interface{
				{Name: "nowhere", InterfaceBindingMethod: masq},
				{Name: "default"},
				{Name: "bad-mac", InterfaceBindingMethod: masq, MacAddress: "00:00:00:00:fe:80:00:00"},
			},
			networks: []kubevirtv1.Network{{Name: "default", NetworkSource: pod}, {Name: "bad-mac", NetworkSource: pod}},
			want:     &libvirtxml.Domain{},
			diags: []diagLine{
				{"error", "spec.template.spec.domain.devices.interfaces[0].name", `invalid: no network named "nowhere"`},
				{"error", "spec.template.spec.domain.devices.interfaces[1]", "invalid: no binding method; nodevirt supports masquerade on the pod network and bridge on multus networks"},
				{"error", "spec.template.spec.domain.devices.interfaces[2].macAddress", `invalid: "00:00:00:00:fe:80:00:00" is not a 48-bit MAC address`},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := kubevirtv1.VirtualMachineInstanceSpec{Networks: tc.networks}
			spec.Domain.Devices.Interfaces = tc.interfaces
			in := testInput(spec)
			in.Networks = tc.attachments
			dom, out := run(configureInterfaces, in)
			if diff := cmp.Diff(tc.want, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.diags, diagLines(out)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}
