package domain

import (
	"errors"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// goldenCases are whole manifests converted end to end. Each writes
// testdata/<name>.golden.xml (the domain) and testdata/<name>.golden.txt
// (diagnostics and artifacts); wantErrors lists the paths that must carry
// error diagnostics, in report order (the support table's order, then the
// configurators'); none means the VM must convert cleanly.
var goldenCases = []struct {
	file       string
	wantErrors []string
	// networks stand in for the NetworkAttachmentDefinitions the caller resolves.
	networks map[string]NetworkAttachment
	// pins stand in for the dedicated CPUs the agent allocates.
	pins *Pinning
	// claims stand in for where storage keeps the claims' disks.
	claims map[string]ClaimDisk
}{
	{file: "corpus/vm-cirros.yaml"},
	{file: "corpus/vm-cirros-sata.yaml"},
	{file: "corpus/vm-alpine-multipvc.yaml"},
	{file: "corpus/vm-alpine-datavolume.yaml"},
	{file: "corpus/vm-priorityclass.yaml"},
	{file: "corpus/vmi-nocloud.yaml"},
	{file: "corpus/vmi-masquerade.yaml"},
	{file: "corpus/vmi-alpine-efi.yaml"},
	{file: "corpus/vmi-secureboot.yaml"},
	{file: "corpus/vmi-host-disk.yaml"},
	{file: "corpus/vmi-windows.yaml"},
	{file: "corpus/vmi-fedora-isolated.yaml"},
	{file: "corpus/vmi-gpu.yaml"},
	{file: "corpus/vmi-usb.yaml"},
	{file: "corpus/vmi-sriov.yaml", wantErrors: []string{"spec.domain.devices.interfaces[1].sriov"}},
	// Without the NetworkAttachmentDefinition ptp-conf (not in the corpus)
	// the bridge interface has no host bridge to plug into.
	{file: "corpus/vmi-multus-multiple-net.yaml", wantErrors: []string{"spec.networks[1].multus.networkName"}},
	{file: "corpus/vmi-kernel-boot.yaml"},
	{file: "vm-kitchen-sink.yaml"},
	{file: "vm-headless.yaml"},
	// Its configMap, secret and cloud-init secretRef volumes name sources
	// the case does not give: each is an error naming what is missing.
	{file: "vm-unsupported.yaml", wantErrors: []string{
		"spec.template.spec.domain.devices.interfaces[0].bridge",
		"spec.template.spec.volumes[0].ephemeral",
		"spec.template.spec.networks[1].multus.default",
		"spec.template.spec.volumes[2].configMap",
		"spec.template.spec.volumes[3].secret",
		"spec.template.spec.volumes[4].cloudInitNoCloud.secretRef",
		"spec.template.spec.volumes[5].cloudInitConfigDrive.secretRef",
	}},
	{file: "vm-block-lun.yaml", claims: map[string]ClaimDisk{
		"db-root":      {Path: "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", Block: true, VolumeMode: "Block"},
		"san-lun":      {Path: "/dev/disk/by-id/scsi-36001405e1c2f3a4b5c6d7e8f9a0b1c2d", Block: true, VolumeMode: "Block"},
		"cluster-data": {Path: "/dev/loop11", Block: true, VolumeMode: "Block"},
	}},
	{file: "vmi-lun-guide.yaml", claims: map[string]ClaimDisk{
		"mypvc": {Path: "/dev/loop12", Block: true, VolumeMode: "Block"},
	}},
	{file: "vm-resources.yaml"},
	{file: "vm-hugepages.yaml"},
	{file: "vm-configdrive.yaml"},
	{file: "vmi-smbios.yaml"},
	{file: "vmi-virtiofs.yaml"},
	{file: "vm-tpm-persistent.yaml"},
	{file: "vmi-legacy-guest.yaml"},
	// Two vCPUs on each of testContext's two host nodes: two guest cells.
	{file: "vmi-numa.yaml", pins: &Pinning{VCPUs: []uint{2, 3, 8, 9}}},
	{file: "vm-config-volumes.yaml"},
	{file: "vmi-configmap-disk.yaml"},
	{file: "vmi-cloudinit-secretref.yaml"},
	// Seed 8.14.6 as one VMI; the NetworkAttachmentDefinition pxe-net-conf
	// (cnv-bridge on br1, VLAN 1) is what reconciler/desired resolves.
	{file: "vmi-pxe-boot.yaml", networks: map[string]NetworkAttachment{
		"pxe-net": {Object: "NetworkAttachmentDefinition default/pxe-net-conf", Bridge: "br1", VLAN: 1},
	}},
	// Hyper-V and clock: every enlightenment, passthrough, every timer,
	// and a Windows 11 VM through the real windows.11 preference.
	{file: "vmi-hyperv.yaml"},
	{file: "vmi-hyperv-passthrough.yaml"},
	{file: "vmi-clock-timezone.yaml"},
	{file: "vm-windows11.yaml"},
}

func caseName(file string) string {
	return strings.TrimSuffix(filepath.Base(file), ".yaml")
}

func TestConvert_golden(t *testing.T) {
	requireVirtXMLValidate(t)
	for _, tc := range goldenCases {
		t.Run(caseName(tc.file), func(t *testing.T) {
			in := loadManifest(t, filepath.Join("testdata", tc.file))
			in.Networks = tc.networks
			in.Resources.Pins = tc.pins
			in.Resources.Claims = tc.claims
			res := Convert(in, testContext)

			xml, err := res.Domain.Marshal()
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			name := caseName(tc.file)
			assertGolden(t, name+".golden.xml", []byte(xml+"\n"))
			assertGolden(t, name+".golden.txt", render(res))
			assertSchemaValid(t, filepath.Join("testdata", name+".golden.xml"))
			assertLibvirtAccepts(t, xml)

			var gotErrors []string
			for _, d := range res.Diags.Errors() {
				gotErrors = append(gotErrors, d.Path)
			}
			if diff := cmp.Diff(tc.wantErrors, gotErrors); diff != "" {
				t.Errorf("error paths (-want +got):\n%s\n%s", diff, render(res))
			}
			for _, d := range res.Diags {
				if d.Object != in.Object {
					t.Errorf("diagnostic %q names object %q, want %q", d.Error(), d.Object, in.Object)
				}
				if !errors.Is(d, ErrUnsupported) && !errors.Is(d, ErrIgnored) && !errors.Is(d, ErrInvalid) && !errors.Is(d, ErrHostFileNotAllowed) && !errors.Is(d, ErrDiffers) {
					t.Errorf("diagnostic %q carries no sentinel", d.Error())
				}
			}
			assertPathsAreFields(t, in, res.Diags)
		})
	}
}

// TestConvert_deterministic converts every case twice: the XML and the
// artifacts must be byte-equal, or drift detection would see changes that
// never happened.
func TestConvert_deterministic(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(caseName(tc.file), func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			in1, in2 := loadManifest(t, path), loadManifest(t, path)
			in1.Networks, in2.Networks = tc.networks, tc.networks
			in1.Resources.Pins, in2.Resources.Pins = tc.pins, tc.pins
			in1.Resources.Claims, in2.Resources.Claims = tc.claims, tc.claims
			first := Convert(in1, testContext)
			second := Convert(in2, testContext)
			x1, err1 := first.Domain.Marshal()
			x2, err2 := second.Domain.Marshal()
			if err1 != nil || err2 != nil {
				t.Fatalf("marshal: %v, %v", err1, err2)
			}
			if x1 != x2 {
				t.Errorf("two conversions differ:\n%s", cmp.Diff(x1, x2))
			}
			if diff := cmp.Diff(first.Artifacts, second.Artifacts); diff != "" {
				t.Errorf("artifacts differ:\n%s", diff)
			}
			if diff := cmp.Diff(render(first), render(second)); diff != "" {
				t.Errorf("reports differ:\n%s", diff)
			}
		})
	}
}

// TestDerivedMAC_stable pins the MAC of an interface without macAddress: it
// must never change for the same VM and interface (the guest's DHCP lease,
// its udev names and drift checks depend on it).
func TestDerivedMAC_stable(t *testing.T) {
	const uuid = "0d3a1b7e-6f2c-4c1d-9a55-3e2f1f0c7a10"
	if got, want := derivedMAC(uuid, "default"), "52:54:00:ba:2c:1c"; got != want {
		t.Errorf("derivedMAC(%s, default) = %s, want %s (changing it re-addresses every VM)", uuid, got, want)
	}
	seen := map[string]string{}
	for _, u := range []string{uuid, "5d307ca9-b3ef-428c-8861-06e72d69f223"} {
		for _, name := range []string{"default", "lan", "storage"} {
			mac := derivedMAC(u, name)
			if mac != derivedMAC(u, name) {
				t.Errorf("derivedMAC(%s, %s) is not stable", u, name)
			}
			if !strings.HasPrefix(mac, "52:54:00:") || len(mac) != 17 {
				t.Errorf("derivedMAC(%s, %s) = %s, want 52:54:00:xx:xx:xx", u, name, mac)
			}
			if other, dup := seen[mac]; dup {
				t.Errorf("derivedMAC(%s, %s) = %s collides with %s", u, name, mac, other)
			}
			seen[mac] = u + "/" + name
		}
	}

	// Through Convert: the same manifest yields the same MACs every time.
	in := loadManifest(t, filepath.Join("testdata", "corpus", "vmi-masquerade.yaml"))
	var macs [][]string
	for range 2 {
		var got []string
		for _, nic := range Convert(in, testContext).Domain.Devices.Interfaces {
			got = append(got, nic.MAC.Address)
		}
		macs = append(macs, got)
	}
	if !slices.Equal(macs[0], macs[1]) || len(macs[0]) != 1 || macs[0][0] != derivedMAC(in.UUID, "testmasquerade") {
		t.Errorf("MACs across conversions = %v, want twice [%s]", macs, derivedMAC(in.UUID, "testmasquerade"))
	}
}

func TestConvert_nilSpec(t *testing.T) {
	res := Convert(Input{Object: "VirtualMachine lab/vm"}, testContext)
	if res.Domain == nil || !res.Diags.HasErrors() {
		t.Fatalf("Convert(nil spec) = %+v, want an empty domain and an error", res)
	}
}

func TestDomainName(t *testing.T) {
	if got := DomainName("lab", "vm-1"); got != "lab_vm-1" {
		t.Errorf("DomainName = %q, want lab_vm-1", got)
	}
}

// TestPackage_pure keeps Convert a pure function: the package's own files
// (tests excluded) import nothing that reads the host, the clock or a random
// source, and no runtime driver (see doc.go).
func TestPackage_pure(t *testing.T) {
	forbidden := []string{
		"os", "os/exec", "io/ioutil", "io/fs", "syscall", "net/http", "time",
		"math/rand", "math/rand/v2", "crypto/rand", "unsafe",
		"libvirt.org/go/libvirt", "github.com/nodevirt/nodevirt/runtime",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if p == bad || strings.HasPrefix(p, bad+"/") {
					t.Errorf("%s imports %s: the converter must stay pure (host facts come in Context)", file, p)
				}
			}
		}
	}
}
