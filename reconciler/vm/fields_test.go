package vm

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nodevirt/nodevirt/reconciler/plan"
)

const wantXML = `<domain type="kvm">
  <name>default_web</name>
  <uuid>7c6b5d1e-0000-5000-8000-000000000001</uuid>
  <metadata><owner xmlns="https://nodevirt.io/xmlns/domain/1" kind="VirtualMachine" namespace="default" name="web" specHash="sha256:aa"></owner></metadata>
  <memory unit="KiB">262144</memory>
  <vcpu placement="static">1</vcpu>
  <os><type arch="x86_64" machine="q35">hvm</type></os>
  <features><acpi></acpi></features>
  <devices>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2"></driver>
      <source file="/var/lib/nodevirt/disks/default/web/data.qcow2"></source>
      <target dev="vda" bus="virtio"></target>
      <alias name="ua-data"></alias>
    </disk>
    <interface type="user">
      <mac address="52:54:00:12:34:56"></mac>
      <model type="virtio"></model>
      <alias name="ua-default"></alias>
    </interface>
  </devices>
</domain>`

// What libvirt hands back after defining wantXML: canonical machine type,
// PCI addresses, controllers, its own attributes, a different prefix for our metadata.
const libvirtXML = `<domain type='kvm'>
  <name>default_web</name>
  <uuid>7c6b5d1e-0000-5000-8000-000000000001</uuid>
  <metadata>
    <nodevirt:owner xmlns:nodevirt="https://nodevirt.io/xmlns/domain/1" kind="VirtualMachine" namespace="default" name="web" specHash="sha256:aa"/>
  </metadata>
  <memory unit='KiB'>262144</memory>
  <currentMemory unit='KiB'>262144</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/nodevirt/disks/default/web/data.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <alias name='ua-data'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <controller type='usb' index='0' model='qemu-xhci'/>
    <controller type='pci' index='0' model='pcie-root'/>
    <interface type='user'>
      <mac address='52:54:00:12:34:56'/>
      <model type='virtio'/>
      <alias name='ua-default'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </interface>
    <memballoon model='virtio'/>
  </devices>
</domain>`

func TestFields_noDriftAfterLibvirtFillsIn(t *testing.T) {
	got, err := Fields(wantXML, libvirtXML)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("a freshly defined domain must show no drift, got %v", got)
	}
}

func TestFields_changes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		observed func(string) string
		want     []plan.Change
	}{
		{
			name:     "memory changed by hand",
			observed: replace("<memory unit='KiB'>262144</memory>", "<memory unit='KiB'>524288</memory>"),
			want:     []plan.Change{{Path: "memory", From: "524288", To: "262144"}},
		},
		{
			name:     "vcpu changed by hand",
			observed: replace("<vcpu placement='static'>1</vcpu>", "<vcpu placement='static'>4</vcpu>"),
			want:     []plan.Change{{Path: "vcpu", From: "4", To: "1"}},
		},
		{
			name:     "disk source swapped",
			observed: replace("/var/lib/nodevirt/disks/default/web/data.qcow2", "/tmp/other.qcow2"),
			want:     []plan.Change{{Path: "devices.disk[vda].source@file", From: "/tmp/other.qcow2", To: "/var/lib/nodevirt/disks/default/web/data.qcow2"}},
		},
		{
			name: "disk attached by hand",
			observed: replace("<controller type='usb'", `<disk type='file' device='disk'><source file='/tmp/x.img'/><target dev='vdb' bus='virtio'/></disk>
    <controller type='usb'`),
			want: []plan.Change{{Path: "devices.disk[vdb]", From: "present", To: ""}},
		},
		{
			name:     "machine type changed",
			observed: replace("machine='pc-q35-7.2'", "machine='pc-i440fx-7.2'"),
			want:     []plan.Change{{Path: "os.type@machine", From: "pc-i440fx-7.2", To: "q35"}},
		},
		{
			name:     "interface removed",
			observed: cut("<interface type='user'>", "</interface>"),
			want: []plan.Change{
				{Path: "devices.interface[ua-default].mac@address", To: "52:54:00:12:34:56"},
				{Path: "devices.interface[ua-default].model@type", To: "virtio"},
				{Path: "devices.interface[ua-default]@type", To: "user"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Fields(wantXML, tc.observed(libvirtXML))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Fatalf("changes (-want +got):\n%s", d)
			}
		})
	}
}

func TestFields_badXML(t *testing.T) {
	if _, err := Fields(wantXML, "<domain><name>"); err == nil {
		t.Fatal("want an error for truncated observed XML")
	}
}

func replace(old, new string) func(string) string {
	return func(s string) string {
		if !strings.Contains(s, old) {
			panic("fixture does not contain " + old)
		}
		return strings.Replace(s, old, new, 1)
	}
}

func cut(from, to string) func(string) string {
	return func(s string) string {
		i, j := strings.Index(s, from), strings.Index(s, to)
		if i < 0 || j < 0 {
			panic("fixture does not contain " + from + " ... " + to)
		}
		return s[:i] + s[j+len(to):]
	}
}
