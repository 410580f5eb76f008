package virt

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const sourcesXML = `<domain type='kvm'>
  <name>web</name>
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/nodevirt/disks/ns/web/root.qcow2'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/var/lib/nodevirt/images//base.qcow2'/>
        <backingStore type='block'>
          <format type='raw'/>
          <source dev='/dev/mapper/golden'/>
          <backingStore/>
        </backingStore>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='block' device='disk'>
      <source dev='/dev/loop7'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='network' device='disk'>
      <source protocol='nbd' name='x'><host name='h' port='1'/></source>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='hdc' bus='ide'/>
    </disk>
    <filesystem type='mount'>
      <source dir='/srv/share/'/>
      <target dir='share'/>
    </filesystem>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x1'/></source>
    </hostdev>
    <hostdev mode='capabilities' type='storage'>
      <source><block>/dev/sdf1</block></source>
    </hostdev>
  </devices>
</domain>`

func TestHostPaths(t *testing.T) {
	got, err := HostPaths(sourcesXML)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/var/lib/nodevirt/disks/ns/web/root.qcow2", "/var/lib/nodevirt/images/base.qcow2", "/dev/mapper/golden",
		"/dev/loop7", "/srv/share", "/dev/sdf1",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("HostPaths (-want +got):\n%s", d)
	}
	if _, err := HostPaths("<domain"); err == nil {
		t.Fatal("HostPaths of broken XML: no error")
	}
}

func TestUses(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/var/lib/nodevirt/disks/ns/web/root.qcow2", true},
		{"/var/lib/nodevirt/disks/ns/web/../web/root.qcow2", true},
		{"/var/lib/nodevirt/images/base.qcow2", true}, // a backing file
		{"/dev/mapper/golden", true},
		{"/dev/loop7", true},
		{"/dev/loop", false},                     // a prefix of a name is not the file
		{"/dev/loop70", false},                   // nor is a longer name
		{"/var/lib/nodevirt/disks/ns/web", true}, // the directory holding a disk
		{"/var/lib/nodevirt/disks/ns/we", false},
		{"/srv/share/file", false},
		{"/dev/sdf1", true},
		{"/x", false},
	} {
		got, err := Uses(sourcesXML, tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("Uses(%s) = %v, want %v", tc.path, got, tc.want)
		}
	}
	// The old substring search took a path quoted anywhere (a description,
	// metadata) for a disk.
	noted := `<domain type='kvm'><name>n</name><description>'/dev/loop7'</description><devices/></domain>`
	if used, err := Uses(noted, "/dev/loop7"); err != nil || used {
		t.Fatalf("a path in the description: used=%v err=%v", used, err)
	}
}

func TestHostdevPCIAddresses(t *testing.T) {
	got, err := HostdevPCIAddresses(sourcesXML)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"0000:3b:00.1"}, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
}

// InUse asks the hypervisor: defined and running domains both count;
// RunningUses counts the running ones only.
func TestDriver_InUse(t *testing.T) {
	disk := func(path string) string {
		return fmt.Sprintf(`<devices><disk type='file' device='disk'><source file='%s'/><target dev='vda' bus='virtio'/></disk></devices>`, path)
	}
	d := openTest(t,
		testDomain("running", "6695eb01-f6a4-8304-79aa-97f2502e193f", disk("/data/running/disk.img")),
		testDomain("defined", "6695eb01-f6a4-8304-79aa-97f2502e1940", `<test:runstate>5</test:runstate>`+disk("/data/defined/disk.img")))
	for path, want := range map[string]bool{
		"/data/running/disk.img": true,
		"/data/defined/disk.img": true,
		"/data/defined":          true,
		"/data/gone/disk.img":    false,
	} {
		got, err := d.InUse(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("InUse(%s) = %v, want %v", path, got, want)
		}
		running, err := d.RunningUses(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		if wantRunning := want && !strings.HasPrefix(path, "/data/defined"); running != wantRunning {
			t.Errorf("RunningUses(%s) = %v, want %v", path, running, wantRunning)
		}
	}
}
