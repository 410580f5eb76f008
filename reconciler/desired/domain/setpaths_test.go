package domain

import (
	"reflect"
	"testing"

	kubevirtv1 "kubevirt.io/api/core/v1"
)

// setPaths names each set field by its concrete path: list indexes, and the
// fields before and after a list, spelled out.
func TestSetPaths_concretePaths(t *testing.T) {
	var size uint = 512
	spec := &kubevirtv1.VirtualMachineInstanceSpec{
		Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{
			Disks: []kubevirtv1.Disk{
				{Name: "a"},
				{Name: "b", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{PciAddress: "0000:00:05.0"}}, BlockSize: &kubevirtv1.BlockSize{Custom: &kubevirtv1.CustomBlockSize{Logical: size, Physical: size}}},
				{Name: "c", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{PciAddress: "0000:00:06.0"}}},
			},
			Interfaces: []kubevirtv1.Interface{{Name: "x"}, {Name: "y", Ports: []kubevirtv1.Port{{Port: 80}}}},
		}},
		Networks: []kubevirtv1.Network{
			{Name: "x", NetworkSource: kubevirtv1.NetworkSource{Pod: &kubevirtv1.PodNetwork{}}},
			{Name: "y", NetworkSource: kubevirtv1.NetworkSource{Pod: &kubevirtv1.PodNetwork{VMNetworkCIDR: "10.1.0.0/24"}}},
		},
		Volumes: []kubevirtv1.Volume{{Name: "a"}, {Name: "b", VolumeSource: kubevirtv1.VolumeSource{Ephemeral: &kubevirtv1.EphemeralVolumeSource{}}}},
	}
	for pattern, want := range map[string][]string{
		"domain.devices.disks[*].disk.pciAddress":  {"domain.devices.disks[1].disk.pciAddress", "domain.devices.disks[2].disk.pciAddress"},
		"domain.devices.disks[*].blockSize":        {"domain.devices.disks[1].blockSize"},
		"domain.devices.gpus[*].claimName":         nil,
		"domain.devices.interfaces[*].ports":       {"domain.devices.interfaces[1].ports"},
		"networks[*].pod.vmNetworkCIDR":            {"networks[1].pod.vmNetworkCIDR"},
		"volumes[*].ephemeral":                     {"volumes[1].ephemeral"},
		"volumes[*].containerDisk.imagePullSecret": nil,
	} {
		if _, ok := compiledPaths()[pattern]; !ok {
			t.Fatalf("%s is not a path setPaths reads", pattern)
		}
		if got := setPaths(compiledPaths()[pattern])(spec); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %q, want %q", pattern, got, want)
		}
	}
}
