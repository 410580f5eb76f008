package domain

import (
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// walkedTypes are the spec types whose fields the support table lists one by
// one; a field of any other type is covered by a single row.
var walkedTypes = map[reflect.Type]bool{}

func init() {
	for _, v := range []any{
		kubevirtv1.VirtualMachineInstanceSpec{}, kubevirtv1.DomainSpec{}, kubevirtv1.ResourceRequirements{},
		kubevirtv1.CPU{}, kubevirtv1.Memory{}, kubevirtv1.Machine{}, kubevirtv1.Firmware{},
		kubevirtv1.Bootloader{}, kubevirtv1.BIOS{}, kubevirtv1.EFI{}, kubevirtv1.Features{},
		kubevirtv1.Devices{}, kubevirtv1.Disk{}, kubevirtv1.DiskDevice{}, kubevirtv1.DiskTarget{},
		kubevirtv1.CDRomTarget{}, kubevirtv1.Watchdog{}, kubevirtv1.WatchdogDevice{}, kubevirtv1.Input{},
		kubevirtv1.Interface{}, kubevirtv1.InterfaceBindingMethod{}, kubevirtv1.Volume{},
		kubevirtv1.VolumeSource{}, kubevirtv1.CloudInitNoCloudSource{}, kubevirtv1.ContainerDiskSource{},
		kubevirtv1.Network{}, kubevirtv1.NetworkSource{}, kubevirtv1.PodNetwork{},
		kubevirtv1.CloudInitConfigDriveSource{}, kubevirtv1.MultusNetwork{},
		kubevirtv1.KernelBoot{}, kubevirtv1.KernelBootContainer{},
		kubevirtv1.GPU{}, kubevirtv1.HostDevice{}, kubevirtv1.Filesystem{},
	} {
		walkedTypes[reflect.TypeOf(v)] = true
	}
}

// TestFields_coverSpec checks the support table against kubevirt.io/api: every
// field of the walked types has a row (or is itself walked), and every row
// names a real field. A kubevirt.io/api upgrade that adds a field fails here
// until someone decides what nodevirt does with it.
func TestFields_coverSpec(t *testing.T) {
	rows := map[string]Field{}
	for _, f := range fields {
		if _, dup := rows[f.Path]; dup {
			t.Errorf("row %q appears twice", f.Path)
		}
		rows[f.Path] = f
		switch f.Support {
		case Mapped, Ignored, Refused, Elsewhere:
		default:
			t.Errorf("row %q has support %q", f.Path, f.Support)
		}
		if f.Note == "" {
			t.Errorf("row %q has no note", f.Path)
		}
		if f.find != nil && f.Support != Ignored && f.Support != Refused {
			t.Errorf("row %q has a finder but is %s: only ignored and refused rows are reported", f.Path, f.Support)
		}
	}
	visited := map[string]bool{}
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for i := 0; i < typ.NumField(); i++ {
			sf := typ.Field(i)
			name, opts, _ := strings.Cut(sf.Tag.Get("json"), ",")
			ft := sf.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if name == "" && (sf.Anonymous || strings.Contains(opts, "inline")) {
				walk(ft, prefix)
				continue
			}
			if name == "" || name == "-" {
				continue
			}
			p := name
			if prefix != "" {
				p = prefix + "." + name
			}
			visited[p] = true
			elem, inner := ft, p
			if ft.Kind() == reflect.Slice {
				elem, inner = ft.Elem(), p+"[*]"
				for elem.Kind() == reflect.Pointer {
					elem = elem.Elem()
				}
			}
			_, hasRow := rows[p]
			switch {
			case walkedTypes[elem]:
				walk(elem, inner)
			case !hasRow:
				t.Errorf("spec field %s has no row in the support table (support.go): map it, or list it as ignored, refused or elsewhere", p)
			}
		}
	}
	walk(reflect.TypeOf(kubevirtv1.VirtualMachineInstanceSpec{}), "")
	for p := range rows {
		if !visited[p] {
			t.Errorf("support table row %q names no field of the spec", p)
		}
	}
}

func TestReportUnmapped(t *testing.T) {
	spec := kubevirtv1.VirtualMachineInstanceSpec{
		Networks: []kubevirtv1.Network{
			{Name: "default", NetworkSource: kubevirtv1.NetworkSource{Pod: &kubevirtv1.PodNetwork{VMNetworkCIDR: "10.1.0.0/24"}}},
			{Name: "lan", NetworkSource: kubevirtv1.NetworkSource{Multus: &kubevirtv1.MultusNetwork{NetworkName: "br", Default: true}}},
		},
		Volumes: []kubevirtv1.Volume{
			{Name: "root", VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "i", ImagePullSecret: "pull"}}},
			{Name: "sa", VolumeSource: kubevirtv1.VolumeSource{ServiceAccount: &kubevirtv1.ServiceAccountVolumeSource{}}},
		},
	}
	d := &spec.Domain
	d.CPU = &kubevirtv1.CPU{Sockets: 2, MaxSockets: 8}
	d.Memory = &kubevirtv1.Memory{Guest: qty("1Gi"), MaxGuest: qty("1Gi")}
	d.Devices.AutoattachVSOCK = ptr(false)                     // false: nothing to ignore
	d.Devices.TPM = &kubevirtv1.TPMDevice{Enabled: ptr(false)} // disabled: nothing to ignore
	d.Devices.Sound = &kubevirtv1.SoundDevice{Name: "audio"}
	d.Devices.Disks = []kubevirtv1.Disk{{Name: "root", BlockSize: &kubevirtv1.BlockSize{}}}
	d.Devices.Interfaces = []kubevirtv1.Interface{
		{Name: "default", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Masquerade: &kubevirtv1.InterfaceMasquerade{}}, DHCPOptions: &kubevirtv1.DHCPOptions{}},
		// Bridge on a multus network: not refused by the bridge row.
		{Name: "lan", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Bridge: &kubevirtv1.InterfaceBridge{}}},
	}

	spec.Hostname = "db" // without cloud-init: warned
	dom, out := run(reportUnmapped, testInput(spec))
	if diff := cmp.Diff(&libvirtxml.Domain{}, dom); diff != "" {
		t.Errorf("reportUnmapped touched the domain:\n%s", diff)
	}
	p := "spec.template.spec."
	want := []diagLine{
		{"warning", p + "domain.cpu.maxSockets", "ignored: not supported yet; no vCPU hotplug slots; the VM has sockets, not maxSockets"},
		{"warning", p + "domain.devices.disks[0].blockSize", "ignored: not supported yet; the guest sees QEMU's default 512-byte sectors"},
		{"warning", p + "domain.devices.interfaces[0].dhcpOptions", "ignored: not supported yet; QEMU's DHCP server sends no extra options"},
		{"error", p + "volumes[0].containerDisk.imagePullSecret", "unsupported: registry credentials for image pulls are not read yet; pull with credentials outside nodevirt or use a local image"},
		{"error", p + "volumes[1].serviceAccount", "unsupported: service account volumes need Kubernetes"},
		{"warning", p + "networks[0].pod.vmNetworkCIDR", "ignored: not supported yet; QEMU user networking uses 10.0.2.0/24"},
		{"error", p + "networks[1].multus.default", "unsupported: a multus network cannot replace the pod network without Kubernetes; attach it as a secondary network"},
		{"warning", p + "hostname", "ignored: not supported yet; the guest learns its hostname from cloud-init meta-data only, and the VM has no cloudInitNoCloud or cloudInitConfigDrive volume"},
	}
	if diff := cmp.Diff(want, diagLines(out)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	assertPathsAreFields(t, testInput(spec), out.diags)
}

func TestFields_returnsACopy(t *testing.T) {
	f := Fields()
	f[0].Support = "changed"
	if fields[0].Support == "changed" {
		t.Error("Fields exposes the table itself")
	}
}
