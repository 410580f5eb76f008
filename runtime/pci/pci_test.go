package pci

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeSysfs builds <root>/sys/bus/pci with devices as the kernel lays them
// out: attribute files and driver and iommu_group symlinks.
type fakeSysfs struct {
	t    *testing.T
	root string
}

func newFakeSysfs(t *testing.T) *fakeSysfs {
	f := &fakeSysfs{t: t, root: t.TempDir()}
	for _, d := range []string{"sys/bus/pci/devices", "sys/bus/pci/drivers/nvidia", "sys/bus/pci/drivers/vfio-pci", "sys/kernel/iommu_groups"} {
		f.mkdir(d)
	}
	return f
}

func (f *fakeSysfs) mkdir(p string) {
	if err := os.MkdirAll(filepath.Join(f.root, p), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeSysfs) file(p, content string) {
	f.mkdir(filepath.Dir(p))
	if err := os.WriteFile(filepath.Join(f.root, p), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeSysfs) link(p, target string) {
	_ = os.Remove(filepath.Join(f.root, p))
	if err := os.Symlink(target, filepath.Join(f.root, p)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeSysfs) device(addr, vendor, device, class, driver, group string) {
	dir := "sys/bus/pci/devices/" + addr
	f.file(dir+"/vendor", vendor+"\n")
	f.file(dir+"/device", device+"\n")
	f.file(dir+"/class", class+"\n")
	f.file(dir+"/driver_override", "(null)\n")
	f.file(dir+"/numa_node", "0\n")
	if driver != "" {
		f.link(dir+"/driver", "../../drivers/"+driver)
	}
	if group != "" {
		f.mkdir("sys/kernel/iommu_groups/" + group + "/devices")
		f.link(dir+"/iommu_group", "../../../../kernel/iommu_groups/"+group)
	}
}

func TestSysfs_List(t *testing.T) {
	f := newFakeSysfs(t)
	f.device("0000:02:01.0", "0x10de", "0x1eb8", "0x030200", "nvidia", "14")
	f.device("0000:00:03.0", "0x1af4", "0x1000", "0x020000", "", "")
	// Without vendor/device files, uevent's PCI_ID is read (as KubeVirt does).
	f.file("sys/bus/pci/devices/0000:03:00.0/uevent", "DRIVER=vfio-pci\nPCI_ID=8086:6F54\n")
	s := New(f.root, nil)
	devs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
		{Address: "0000:00:03.0", Vendor: "1af4", Device: "1000", Class: "020000", NUMANode: 0},
		{Address: "0000:02:01.0", Vendor: "10de", Device: "1eb8", Class: "030200", Driver: "nvidia", IOMMUGroup: "14", NUMANode: 0},
		{Address: "0000:03:00.0", Vendor: "8086", Device: "6f54", NUMANode: -1},
	}
	if diff := cmp.Diff(want, devs); diff != "" {
		t.Errorf("devices (-want +got):\n%s", diff)
	}
	if devs[1].ID() != "10de:1eb8" || !s.IOMMUEnabled() {
		t.Errorf("ID %s, IOMMU %v", devs[1].ID(), s.IOMMUEnabled())
	}
	if d, _ := New(t.TempDir(), nil).List(); d != nil {
		t.Errorf("a root without sysfs has no devices: %v", d)
	}
}

// Bind writes driver_override, unbinds the current driver and probes; the
// fake kernel (a FIFO reader on drivers_probe) then binds the driver the
// override names.
func TestSysfs_Bind(t *testing.T) {
	f := newFakeSysfs(t)
	addr := "0000:02:01.0"
	f.device(addr, "0x10de", "0x1eb8", "0x030200", "nvidia", "14")
	f.file("sys/bus/pci/drivers/nvidia/unbind", "")
	probe := filepath.Join(f.root, "sys/bus/pci/drivers_probe")
	if err := syscall.Mkfifo(probe, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan string, 1)
	go func() {
		p, err := os.Open(probe)
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(p)
		p.Close()
		over, _ := os.ReadFile(filepath.Join(f.root, "sys/bus/pci/devices", addr, "driver_override"))
		f.link("sys/bus/pci/devices/"+addr+"/driver", "../../drivers/"+strings.TrimSpace(string(over)))
		done <- string(b)
	}()
	s := New(f.root, nil)
	if err := s.Bind(context.Background(), addr, "vfio-pci"); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got != addr {
		t.Errorf("drivers_probe got %q", got)
	}
	unbound, _ := os.ReadFile(filepath.Join(f.root, "sys/bus/pci/drivers/nvidia/unbind"))
	if string(unbound) != addr {
		t.Errorf("unbind got %q", unbound)
	}
	d, _ := s.Get(addr)
	if d.Driver != "vfio-pci" || d.DriverOverride != "vfio-pci" {
		t.Errorf("after bind: %+v", d)
	}
	// Already bound: nothing to do.
	if err := s.Bind(context.Background(), addr, "vfio-pci"); err != nil {
		t.Error(err)
	}
}

func TestSysfs_BindNeedsTheDriver(t *testing.T) {
	f := newFakeSysfs(t)
	f.device("0000:02:01.0", "0x10de", "0x1eb8", "0x030200", "nvidia", "")
	err := New(f.root, nil).Bind(context.Background(), "0000:02:01.0", "not-loaded")
	if err == nil || !strings.Contains(err.Error(), "not loaded") {
		t.Errorf("want a missing-driver error, got %v", err)
	}
}

// This machine's own PCI bus, read-only.
func TestSysfs_realBus(t *testing.T) {
	if _, err := os.Stat("/sys/bus/pci/devices"); err != nil {
		t.Skip("no PCI bus here")
	}
	devs, err := New("/", nil).List()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if len(d.Vendor) != 4 || len(d.Device) != 4 {
			t.Errorf("%s: id %q", d.Address, d.ID())
		}
	}
}
