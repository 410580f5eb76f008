package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/internal/nodedesc"
)

// render host: the files (path, mode, content), units and kernel arguments
// the seed's examples put on a worker.
func TestHostRender_examples(t *testing.T) {
	out, errOut, code := run(t, "host", "render", "--source", "../../examples/host", "--node", "n1", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var v struct {
		Node  struct{ Roles []string }
		Files []struct{ Path, Mode, Owner, Contents string }
		Units []struct {
			Name     string
			Enabled  *bool
			Contents string
			Dropins  []struct{ Name string }
		}
		KernelArgs  []string `json:"kernelArguments"`
		Diagnostics []any    `json:"diagnostics"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !cmp.Equal(v.Node.Roles, []string{"worker"}) || len(v.Diagnostics) != 0 {
		t.Errorf("roles %v diagnostics %v", v.Node.Roles, v.Diagnostics)
	}
	if len(v.Files) != 3 || v.Files[0].Path != "/etc/modprobe.d/vfio.conf" || v.Files[0].Mode != "0644" || v.Files[0].Owner != "root:root" ||
		v.Files[0].Contents != "options vfio-pci ids=10de:1eb8\n" {
		t.Errorf("files = %+v", v.Files)
	}
	if len(v.Units) != 1 || v.Units[0].Name != "hostpath-provisioner.service" || v.Units[0].Enabled == nil || !*v.Units[0].Enabled ||
		!strings.Contains(v.Units[0].Contents, "chcon -Rt container_file_t /var/hpvolumes") || len(v.Units[0].Dropins) != 1 {
		t.Errorf("units = %+v", v.Units)
	}
	if !cmp.Equal(v.KernelArgs, []string{"intel_iommu=on"}) {
		t.Errorf("kernel arguments = %v", v.KernelArgs)
	}
	out, _, code = run(t, "host", "render", "--source", "../../examples/host", "--node", "n1")
	for _, want := range []string{
		"/etc/modprobe.d/vfio.conf  mode 0644  owner root:root  from Butane 100-worker-vfiopci.bu (100-worker-vfiopci.bu:11) storage.files[0]",
		"    | options vfio-pci ids=10de:1eb8",
		"hostpath-provisioner.service  enabled  from MachineConfig 50-set-selinux-for-hostpath-provisioner",
		"intel_iommu=on  from MachineConfig 100-worker-iommu (100-worker-iommu.yaml:15) spec.kernelArguments[0]",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("table output lacks %q:\n%s", want, out)
		}
	}
}

// A Butane file that does not translate: exit 1, the error names file,
// line, object and field.
func TestHostRender_badButane(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "bad.bu", "variant: openshift\nversion: 4.14.0\nmetadata:\n  name: x\n  labels:\n    machineconfiguration.openshift.io/role: worker\nstorage:\n  files:\n  - path: /boot/evil\n    contents: {inline: x}\n")
	out, errOut, code := run(t, "host", "render", "--source", dir, "--node", "n1")
	if code != 1 || !strings.Contains(out, "bad.bu:9:5: Butane bad.bu: storage.files[0].path: path is outside the host paths nodevirt may write: /boot/evil") {
		t.Errorf("exit %d:\n%s%s", code, out, errOut)
	}
}

// fakeHost lays out a host root: CPU, memory, huge pages, /dev/kvm and a
// PCI bus with a GPU on vfio-pci and a QAT device on its own driver.
func fakeHost(t *testing.T) string {
	root := t.TempDir()
	files := map[string]string{
		"proc/cpuinfo": "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338\nflags\t\t: fpu vmx avx2\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n",
		"proc/meminfo": "MemTotal:       16777216 kB\n",
		"sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages":    "512\n",
		"sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages": "2\n",
		"dev/kvm":      "",
		"dev/net/tun":  "",
		"etc/hostname": "n1\n",
	}
	for addr, dev := range map[string][3]string{"0000:02:01.0": {"0x10de", "0x1eb8", "vfio-pci"}, "0000:04:00.0": {"0x8086", "0x6f54", "qat"}} {
		d := "sys/bus/pci/devices/" + addr + "/"
		files[d+"vendor"], files[d+"device"], files[d+"class"] = dev[0]+"\n", dev[1]+"\n", "0x030200\n"
		if err := os.MkdirAll(filepath.Join(root, "sys/bus/pci/drivers", dev[2]), 0o755); err != nil {
			t.Fatal(err)
		}
		defer func(d, driver string) {
			if err := os.Symlink("../../drivers/"+driver, filepath.Join(root, d, "driver")); err != nil {
				t.Fatal(err)
			}
		}(d, dev[2])
	}
	for p, c := range files {
		write(t, root, p, c)
	}
	return root
}

// node describe: capacity and allocatable like `oc describe node`, each
// permitted resource with its count, and 0 for one removed from the list.
func TestNodeDescribe(t *testing.T) {
	root := fakeHost(t)
	state := t.TempDir()
	write(t, state, "host/record.json", `{"version": 1, "resources": ["nvidia.com/GV100GL_Tesla_V100"]}`)
	out, errOut, code := run(t, "node", "describe", "--source", "../../examples/host", "--root", root, "--state", state, "--node", "n1", "--libvirt", "test:///default", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var nd nodedesc.Description
	if err := json.Unmarshal([]byte(out), &nd); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cpu":                           "2",
		"memory":                        "16Gi",
		"hugepages-2Mi":                 "1Gi",
		"hugepages-1Gi":                 "2Gi",
		"devices.kubevirt.io/kvm":       "110",
		"devices.kubevirt.io/tun":       "110",
		"devices.kubevirt.io/vhost-net": "0",
		"nvidia.com/TU104GL_Tesla_T4":   "1",
		"intel.com/qat":                 "1",
		"nvidia.com/GV100GL_Tesla_V100": "0",
	}
	if diff := cmp.Diff(want, nd.Capacity); diff != "" {
		t.Errorf("capacity (-want +got):\n%s", diff)
	}
	if nd.Allocatable["memory"] != "13Gi" || nd.Allocatable["nvidia.com/TU104GL_Tesla_T4"] != "1" {
		t.Errorf("allocatable = %v", nd.Allocatable)
	}
	for k, v := range map[string]string{"node-role.kubernetes.io/worker": "", "cpumanager": "false", "cpu-vendor.node.kubevirt.io/Intel": "true", "kubernetes.io/hostname": "n1"} {
		if got, ok := nd.Labels[k]; !ok || got != v {
			t.Errorf("label %s = %q (%v)", k, got, ok)
		}
	}
	if nd.CPU.Model != "Intel(R) Xeon(R) Gold 6338" || !cmp.Equal(nd.CPU.Features, []string{"fpu", "vmx", "avx2"}) {
		t.Errorf("cpu = %+v", nd.CPU)
	}
	if len(nd.Devices) != 2 || nd.Devices[0].Address != "0000:02:01.0" || nd.Devices[0].Driver != "vfio-pci" || !nd.Devices[0].Allocatable {
		t.Errorf("devices = %+v", nd.Devices)
	}
	out, _, _ = run(t, "node", "describe", "--source", "../../examples/host", "--root", root, "--state", state, "--node", "n1", "--libvirt", "test:///default")
	for _, want := range []string{"Capacity:", "  nvidia.com/TU104GL_Tesla_T4:   1", "  nvidia.com/GV100GL_Tesla_V100: 0", "Allocatable:", "0000:02:01.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// host apply, drift and heal on a temporary root without systemd or GRUB
// tools: units take effect at boot, kernel arguments go to the GRUB drop-in.
func TestHostApplyDrift(t *testing.T) {
	root := fakeHost(t)
	state := t.TempDir()
	write(t, root, "etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n")
	args := []string{"--source", "../../examples/host", "--root", root, "--state", state, "--node", "n1"}
	out, errOut, code := run(t, append([]string{"host", "apply"}, args...)...)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"stage-kargs", "at-boot", "Reboot required"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	dropin, err := os.ReadFile(filepath.Join(root, "etc/default/grub.d/nodevirt.cfg"))
	if err != nil || !strings.Contains(string(dropin), `GRUB_CMDLINE_LINUX_DEFAULT="${GRUB_CMDLINE_LINUX_DEFAULT} intel_iommu=on"`) {
		t.Errorf("drop-in = %q, %v", dropin, err)
	}
	if _, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/hostpath-provisioner.service")); err != nil {
		t.Errorf("unit not enabled offline: %v", err)
	}
	if _, _, code := run(t, append([]string{"host", "drift", "--exit-code"}, args...)...); code != 0 {
		t.Errorf("drift right after apply: exit %d", code)
	}
	write(t, root, "etc/modprobe.d/vfio.conf", "options vfio-pci ids=10de:1eb8,10de:1db6\n")
	out, _, code = run(t, append([]string{"host", "drift", "--exit-code"}, args...)...)
	if code != 2 || !strings.Contains(out, `DRIFTED         /etc/modprobe.d/vfio.conf`) ||
		!strings.Contains(out, "\n                contents: 41 bytes sha256:") ||
		!strings.Contains(out, "\n                  @@ -1 +1 @@\n                  -options vfio-pci ids=10de:1eb8,10de:1db6\n                  +options vfio-pci ids=10de:1eb8\n") {
		t.Errorf("drift: exit %d\n%s", code, out)
	}
	if _, _, code := run(t, append([]string{"host", "apply", "--self-heal=false"}, args...)...); code != 0 {
		t.Errorf("apply without self-heal: exit %d", code)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/modprobe.d/vfio.conf")); !strings.Contains(string(b), "1db6") {
		t.Error("self-heal off healed")
	}
	if _, _, code := run(t, append([]string{"host", "apply"}, args...)...); code != 0 {
		t.Errorf("heal: exit %d", code)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/modprobe.d/vfio.conf")); string(b) != "options vfio-pci ids=10de:1eb8\n" {
		t.Errorf("after heal: %q", b)
	}
}
