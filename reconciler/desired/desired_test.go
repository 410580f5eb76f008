package desired

import (
	"errors"
	"flag"
	"fmt"
	"github.com/nodevirt/nodevirt/internal/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"libvirt.org/go/libvirt"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

var update = flag.Bool("update", false, "rewrite testdata/**/*.golden.* from the current output")

var testOptions = Options{
	Node:       "node-1",
	NodeLabels: map[string]string{"cpumanager": "true"},
	Context: domain.Context{
		Type:      "kvm",
		Arch:      "x86_64",
		DiskDir:   "/var/lib/nodevirt/disks",
		VolumeDir: "/var/lib/nodevirt/volumes",
	},
}

// assertGolden compares got with testdata/name, or rewrites it under -update.
func assertGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v; run `go test ./reconciler/desired -update` to create it", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s\nIf the change is intended, run `go test ./reconciler/desired -update`.", p, diff)
	}
}

// assertDomainValid runs virt-xml-validate on a golden (failing, never
// skipping, without it) and defines the XML on libvirt's test driver.
func assertDomainValid(t *testing.T, golden, xml string) {
	t.Helper()
	bin, err := exec.LookPath("virt-xml-validate")
	if err != nil {
		t.Fatalf("virt-xml-validate is not installed; it comes with the libvirt-clients package, which `make test` installs (hack/setup.sh)")
	}
	if out, err := exec.Command(bin, filepath.Join("testdata", golden), "domain").CombinedOutput(); err != nil {
		t.Errorf("virt-xml-validate %s: %v\n%s", golden, err, out)
	}
	conn, err := libvirt.NewConnect("test:///default")
	if err != nil {
		t.Fatalf("open test:///default: %v", err)
	}
	defer conn.Close()
	dom, err := conn.DomainDefineXMLFlags(xml, libvirt.DOMAIN_DEFINE_VALIDATE)
	if err != nil {
		t.Errorf("libvirt rejects the domain: %v", err)
		return
	}
	defer dom.Free()
	if err := dom.Undefine(); err != nil {
		t.Errorf("undefine: %v", err)
	}
}

func build(t *testing.T, dir string) (*manifests.Set, *State) {
	t.Helper()
	set, err := manifests.Load(dir, manifests.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return set, Build(set, "main@sha1:0123456789abcdef", testOptions)
}

// seedOutcome says what Build must make of one seed VM: a domain, or the
// errors (path → message prefix) that keep it from being one.
var seedOutcomes = map[string]map[string]string{}

// TestBuild_seed renders every VM of the seed fixtures
// (manifests/testdata/seed, one file per 8.14 section): each becomes a domain
// that passes virt-xml-validate and libvirt's own checks, or fails only as
// seedOutcomes says.
func TestBuild_seed(t *testing.T) {
	set, st := build(t, filepath.Join("..", "..", "manifests", "testdata", "seed"))
	byObject := map[string]diag.List{}
	for _, d := range st.Diags {
		if d.Severity == diag.Warning {
			continue
		}
		byObject[d.Object] = append(byObject[d.Object], d)
	}
	var vms int
	for _, o := range set.Objects {
		if o.Ref.Kind != "VirtualMachine" && o.Ref.Kind != "VirtualMachineInstance" {
			continue
		}
		vms++
		name := domain.DomainName(o.Ref.Namespace, o.Ref.Name)
		t.Run(name, func(t *testing.T) {
			if want, failing := seedOutcomes[name]; failing {
				got := map[string]string{}
				for _, d := range byObject[o.Ref.String()] {
					got[d.Path] = d.Message
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("errors (-want +got):\n%s", diff)
				}
				if st.Lookup(name) != nil {
					t.Error("rendered, want it refused")
				}
				return
			}
			for _, d := range byObject[o.Ref.String()] {
				t.Errorf("%v", d)
			}
			vm := st.Lookup(name)
			if vm == nil {
				t.Fatalf("not rendered")
			}
			golden := filepath.Join("seed", name+".golden.xml")
			assertGolden(t, golden, []byte(vm.XML+"\n"))
			assertDomainValid(t, golden, vm.XML)
		})
	}
	if vms != 11 {
		t.Errorf("%d VMs in the seed fixtures, want 11", vms)
	}
}

// The seed's PXE example end to end: the NetworkAttachmentDefinition is
// found by name in the VM's namespace and becomes a bridge interface with
// the VLAN tag; cnv-tuning (there for custom MACs) draws no warning.
func TestBuild_seedPXE(t *testing.T) {
	_, st := build(t, filepath.Join("..", "..", "manifests", "testdata", "seed"))
	vm := st.Lookup("default_vmi-pxe-boot")
	if vm == nil {
		t.Fatalf("vmi-pxe-boot not rendered: %v", st.Diags.Err())
	}
	for _, want := range []string{
		`<interface type="bridge">`, `<mac address="de:00:00:00:00:de"></mac>`, `<source bridge="br1"></source>`,
		`<boot order="1"></boot>`, `<tag id="1"></tag>`, `<boot order="2"></boot>`,
	} {
		if !strings.Contains(vm.XML, want) {
			t.Errorf("domain lacks %s:\n%s", want, vm.XML)
		}
	}
	if strings.Contains(vm.XML, `<boot dev=`) {
		t.Error("per-device boot orders must replace <os><boot dev>")
	}
	for _, d := range st.Diags {
		if strings.Contains(d.Object, "pxe") {
			t.Errorf("unexpected diagnostic %v", d)
		}
	}
}

const nadVM = `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: vm
  namespace: lab
spec:
  runStrategy: Halted
  template:
    spec:
      domain:
        memory: {guest: 1Gi}
        devices:
          interfaces:
          - {name: default, masquerade: {}}
          - {name: lan, bridge: {}}
      networks:
      - {name: default, pod: {}}
      - {name: lan, multus: {networkName: NETWORK}}
`

func nadDoc(namespace, name, config string) string {
	return "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: " + name +
		"\n  namespace: " + namespace + "\nspec:\n  config: '" + config + "'\n"
}

func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Each way a multus network resolves or fails, with the exact diagnostics.
func TestBuild_networks(t *testing.T) {
	type line struct{ Severity, Object, Path, Message string }
	const vmPath = "spec.template.spec.networks[1].multus.networkName"
	for _, tc := range []struct {
		name     string
		network  string
		nads     map[string]string
		iface    string // the interface the domain must hold, "" for none
		diags    []line
		sentinel error
	}{
		{
			name: "plain bridge plugin, name in the VM's namespace", network: "lan",
			nads:  map[string]string{"nad.yaml": nadDoc("lab", "lan", `{"cniVersion": "0.3.1", "type": "bridge", "bridge": "br0", "mtu": 9000}`)},
			iface: `<source bridge="br0"></source>`,
		},
		{
			name: "namespace/name and the CNI default bridge", network: "infra/lan",
			nads:  map[string]string{"nad.yaml": nadDoc("infra", "lan", `{"type": "cnv-bridge"}`)},
			iface: `<source bridge="cni0"></source>`,
		},
		{
			name: "settings without a host-side meaning are ignored with a warning", network: "lan",
			nads: map[string]string{"nad.yaml": nadDoc("lab", "lan",
				`{"plugins": [{"type": "cnv-bridge", "bridge": "br1", "vlan": 100, "ipam": {}}, {"type": "tuning", "sysctl": {}}, {"type": "portmap"}]}`)},
			iface: `<tag id="100"></tag>`,
			diags: []line{
				{"warning", "NetworkAttachmentDefinition lab/lan", "spec.config", `ignored: CNI cnv-bridge setting "ipam" has no effect on a host bridge`},
				{"warning", "NetworkAttachmentDefinition lab/lan", "spec.config", `ignored: CNI tuning settings "sysctl" (plugins[1]) have no effect on a host bridge; only custom MAC addresses are honoured, through interfaces[].macAddress`},
				{"warning", "NetworkAttachmentDefinition lab/lan", "spec.config", `ignored: chained CNI plugin "portmap" (plugins[2]) has no effect on a host bridge`},
			},
		},
		{
			name: "tuning that only enables MACs is silent", network: "lan",
			nads:  map[string]string{"nad.yaml": nadDoc("lab", "lan", `{"plugins": [{"type": "bridge", "bridge": "br1"}, {"type": "tuning", "capabilities": {"mac": true}}]}`)},
			iface: `<source bridge="br1"></source>`,
		},
		{
			name: "missing", network: "lan",
			diags:    []line{{"error", "VirtualMachine lab/vm", vmPath, "the NetworkAttachmentDefinition is not in the repository: NetworkAttachmentDefinition lab/lan"}},
			sentinel: ErrNADNotFound,
		},
		{
			name: "in another namespace than the VM's", network: "lan",
			nads:     map[string]string{"nad.yaml": nadDoc("infra", "lan", `{"type": "bridge"}`)},
			diags:    []line{{"error", "VirtualMachine lab/vm", vmPath, "the NetworkAttachmentDefinition is not in the repository: NetworkAttachmentDefinition lab/lan"}},
			sentinel: ErrNADNotFound,
		},
		{
			name: "unsupported plugin", network: "lan",
			nads:     map[string]string{"nad.yaml": nadDoc("lab", "lan", `{"type": "macvlan", "master": "eth0"}`)},
			diags:    []line{{"error", "VirtualMachine lab/vm", vmPath, `unsupported: NetworkAttachmentDefinition lab/lan uses CNI plugin "macvlan"; nodevirt maps bridge and cnv-bridge (a host bridge)`}},
			sentinel: domain.ErrUnsupported,
		},
		{
			name: "VLAN out of range", network: "lan",
			nads:     map[string]string{"nad.yaml": nadDoc("lab", "lan", `{"type": "bridge", "vlan": 5000}`)},
			diags:    []line{{"error", "VirtualMachine lab/vm", vmPath, `unsupported: NetworkAttachmentDefinition lab/lan has a "vlan" that is not a VLAN ID (0-4094)`}},
			sentinel: domain.ErrUnsupported,
		},
		{
			name: "invalid definition", network: "lan",
			nads: map[string]string{"nad.yaml": nadDoc("lab", "lan", `{"type": `)},
			diags: []line{
				{"error", "NetworkAttachmentDefinition lab/lan", "spec.config", "spec.config must be a JSON CNI network configuration: unexpected end of JSON input"},
				{"error", "VirtualMachine lab/vm", vmPath, "the NetworkAttachmentDefinition has errors of its own: NetworkAttachmentDefinition lab/lan (nad.yaml:1)"},
			},
			sentinel: ErrNADInvalid,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"vm.yaml": strings.Replace(nadVM, "NETWORK", tc.network, 1)}
			for k, v := range tc.nads {
				files[k] = v
			}
			_, st := build(t, writeRepo(t, files))
			var got []line
			for _, d := range st.Diags {
				got = append(got, line{string(d.Severity), d.Object, d.Path, d.Message})
				if d.Object == "VirtualMachine lab/vm" && d.Severity == diag.Error && !errors.Is(d, tc.sentinel) {
					t.Errorf("%v does not match %v", d, tc.sentinel)
				}
			}
			if diff := cmp.Diff(tc.diags, got); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			vm := st.Lookup("lab_vm")
			switch {
			case tc.iface == "" && vm != nil:
				t.Errorf("rendered, want the VM invalid")
			case tc.iface == "" && st.Invalid["lab_vm"] == "":
				t.Errorf("the VM is not marked invalid, so its last good state would not be kept")
			case tc.iface != "" && vm == nil:
				t.Fatalf("not rendered")
			case tc.iface != "" && !strings.Contains(vm.XML, tc.iface):
				t.Errorf("domain lacks %s:\n%s", tc.iface, vm.XML)
			}
		})
	}
}

// Only bridge-bound multus networks need a definition: an SR-IOV interface
// is refused by the converter with its own reason, not for a missing NAD.
func TestBuild_networksOnlyForBridge(t *testing.T) {
	vm := strings.Replace(strings.Replace(nadVM, "NETWORK", "sriov/vfs", 1), "{name: lan, bridge: {}}", "{name: lan, sriov: {}}", 1)
	_, st := build(t, writeRepo(t, map[string]string{"vm.yaml": vm}))
	errs := st.Diags.Errors()
	if len(errs) != 1 || errs[0].Path != "spec.template.spec.domain.devices.interfaces[1].sriov" || !errors.Is(errs[0], domain.ErrUnsupported) {
		t.Errorf("errors %v, want only the SR-IOV refusal", errs.Err())
	}
}

// The corpus's instancetype example, without the memory.guest KubeVirt
// itself rejects (manifests.TestExpand_conflictIsKubeVirtsError), renders
// with what clarge and windows provide.
func TestBuild_instancetypeAndPreference(t *testing.T) {
	dir := testenv.KubeVirtExamples(t)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("corpus missing (it is part of the project's shared tree): %v", err)
		}
		return string(b)
	}
	vmDoc := strings.Replace(read("vm-windows-clarge-windows.yaml"), "        memory:\n          guest: 128Mi\n", "", 1)
	_, st := build(t, writeRepo(t, map[string]string{
		"vm.yaml": vmDoc, "clarge.yaml": read("clarge.yaml"), "windows.yaml": read("windows.yaml"),
	}))
	if errs := st.Diags.Errors(); len(errs) > 0 {
		t.Fatalf("errors:\n%v", errs.Err())
	}
	vm := st.Lookup("default_vm-windows-clarge-windows")
	if vm == nil {
		t.Fatal("not rendered")
	}
	golden := "vm-windows-clarge-windows.golden.xml"
	assertGolden(t, golden, []byte(vm.XML+"\n"))
	assertDomainValid(t, golden, vm.XML)
	var warnings []string
	for _, d := range st.Diags {
		warnings = append(warnings, d.Path)
	}
	// windows.yaml asks for nothing nodevirt does not map.
	var want []string
	if diff := cmp.Diff(want, warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// Dedicated CPUs are allocated from the pool before conversion: the
// converter writes one <vcpupin> per vCPU (and the emulator pin), the hash
// covers them, a persisted allocation that still fits is kept, and without a
// pool the VM is rendered unpinned and says why it waits.
func TestBuild_dedicatedCPUPins(t *testing.T) {
	set, err := manifests.Load(filepath.Join("..", "..", "manifests", "testdata", "seed"), manifests.Options{})
	if err != nil {
		t.Fatal(err)
	}
	withPool := func(held map[string]domain.Pinning, pool ...uint) *VM {
		t.Helper()
		opt := testOptions
		opt.Resources = Resources{CPUPool: pool, CPUs: held}
		vm := Build(set, "r1", opt).Lookup("default_dedicated")
		if vm == nil || vm.Dedicated == nil {
			t.Fatalf("seed VM default_dedicated must need dedicated CPUs: %+v", vm)
		}
		return vm
	}
	vm := withPool(nil, 8, 9, 10, 11, 12, 13, 14, 15)
	if vm.Pins == nil || len(vm.Pins.VCPUs) != vm.Dedicated.VCPUs || vm.Unschedulable != "" {
		t.Fatalf("pins %+v for %+v (unschedulable %q)", vm.Pins, vm.Dedicated, vm.Unschedulable)
	}
	for i := range vm.Dedicated.VCPUs {
		want := fmt.Sprintf(`<vcpupin vcpu="%d" cpuset="%d"></vcpupin>`, i, 8+i)
		if !strings.Contains(vm.XML, want) {
			t.Fatalf("missing %s in\n%s", want, vm.XML)
		}
	}
	if vm.Dedicated.EmulatorThread {
		if want := fmt.Sprintf(`<emulatorpin cpuset="%d">`, 8+vm.Dedicated.VCPUs); !strings.Contains(vm.XML, want) {
			t.Fatalf("missing %s in\n%s", want, vm.XML)
		}
	}
	if o, ok := OwnerOf(vm.XML); !ok || o.SpecHash != vm.SpecHash {
		t.Fatalf("owner metadata must carry the hash: %+v", o)
	}
	// Another pool gives other CPUs and another hash.
	other := withPool(nil, 20, 21, 22, 23, 24, 25, 26, 27)
	if other.SpecHash == vm.SpecHash {
		t.Fatal("pins must change the spec hash")
	}
	// A persisted allocation that still fits is kept, even where the
	// first free CPUs differ.
	kept := withPool(map[string]domain.Pinning{"default_dedicated": *other.Pins}, 8, 9, 10, 11, 12, 13, 14, 15, 20, 21, 22, 23, 24, 25, 26, 27)
	if kept.XML != other.XML {
		t.Fatalf("persisted pins not kept: %+v, want %+v", kept.Pins, other.Pins)
	}
	// Another domain's allocation is never given away.
	held := map[string]domain.Pinning{"default_other": {VCPUs: []uint{8, 9}}}
	if p := withPool(held, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17).Pins; p == nil || slices.Contains(p.CPUs(), 8) || slices.Contains(p.CPUs(), 9) {
		t.Fatalf("took another domain's CPUs: %+v", p)
	}
	// Too small a pool: unpinned, waiting, saying so.
	small := withPool(nil, 8)
	if small.Pins != nil || strings.Contains(small.XML, "vcpupin") || !strings.Contains(small.Unschedulable, "CPU-manager pool 8 has 1 free") {
		t.Fatalf("pins %+v, unschedulable %q", small.Pins, small.Unschedulable)
	}
	none := withPool(nil)
	if none.Unschedulable != ReasonNoCPUPool {
		t.Fatalf("without a pool: %q", none.Unschedulable)
	}
}

// Host devices are allocated from the permitted ones before conversion and
// written as <hostdev>; persisted allocations are kept; a resource that is not
// permitted leaves the VM waiting with the reason.
func TestBuild_hostDevices(t *testing.T) {
	set := manifests.Parse("vm.yaml", []byte(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: gpu, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          gpus: [{name: g1, deviceName: nvidia.com/T4}]
          hostDevices: [{name: nic, deviceName: intel.com/x710}]
`), manifests.Options{})
	build := func(res Resources) *VM {
		t.Helper()
		opt := testOptions
		opt.Resources = res
		st := Build(set, "r1", opt)
		vm := st.Lookup("default_gpu")
		if vm == nil {
			t.Fatalf("not rendered: %v", st.Diags)
		}
		return vm
	}
	devs := map[string][]string{"nvidia.com/T4": {"0000:3b:00.0", "0000:3c:00.0"}, "intel.com/x710": {"0000:5e:00.1"}}
	vm := build(Resources{Devices: devs})
	for _, want := range []string{
		`<hostdev mode="subsystem" type="pci" managed="no">`,
		`<address domain="0x0000" bus="0x3b" slot="0x00" function="0x0"></address>`,
		`<alias name="ua-gpu-g1"></alias>`,
		`<address domain="0x0000" bus="0x5e" slot="0x00" function="0x1"></address>`,
		`<alias name="ua-hostdevice-nic"></alias>`,
	} {
		if !strings.Contains(vm.XML, want) {
			t.Errorf("missing %s in\n%s", want, vm.XML)
		}
	}
	if len(vm.Devices) != 2 || vm.Unschedulable != "" {
		t.Fatalf("devices %+v, unschedulable %q", vm.Devices, vm.Unschedulable)
	}
	held := []domain.AssignedDevice{{Name: "g1", Resource: "nvidia.com/T4", GPU: true, Address: "0000:3c:00.0"}, vm.Devices[1]}
	kept := build(Resources{Devices: devs, HostDevices: map[string][]domain.AssignedDevice{"default_gpu": held}})
	if !strings.Contains(kept.XML, `bus="0x3c"`) || kept.SpecHash == vm.SpecHash {
		t.Fatalf("persisted device not kept, or hash unchanged:\n%s", kept.XML)
	}
	denied := build(Resources{Devices: map[string][]string{"nvidia.com/T4": {"0000:3b:00.0"}}})
	if strings.Contains(denied.XML, "<hostdev") || !strings.Contains(denied.Unschedulable, "resource intel.com/x710 is not permitted") {
		t.Fatalf("unschedulable %q\n%s", denied.Unschedulable, denied.XML)
	}
}

// Claim disks point where storage keeps them (a Filesystem claim's disk.img,
// a Block claim's device as <disk type='block'>), decided before conversion;
// unknown claims keep their default path; the hash covers the result.
func TestBuild_claimDisks(t *testing.T) {
	set := manifests.Parse("vm.yaml", []byte(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: db, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          disks: [{name: root, disk: {bus: virtio}}, {name: data, disk: {bus: virtio}}, {name: other, disk: {bus: virtio}}]
      volumes:
        - {name: root, dataVolume: {name: db-root}}
        - {name: data, persistentVolumeClaim: {claimName: db-data}}
        - {name: other, persistentVolumeClaim: {claimName: unknown}}
`), manifests.Options{})
	plain := Build(set, "r1", testOptions).Lookup("default_db")
	opt := testOptions
	opt.Resources.Claims = map[string]domain.ClaimDisk{
		"default/db-root": {Path: "/var/hpvolumes/db-root/disk.img"},
		"default/db-data": {Path: "/dev/loop7", Block: true},
		"other/unknown":   {Path: "/elsewhere/disk.img"},
	}
	st := Build(set, "r1", opt)
	got := st.Lookup("default_db")
	if got == nil || plain == nil {
		t.Fatalf("not rendered: %v", st.Diags)
	}
	for _, want := range []string{`<source file="/var/hpvolumes/db-root/disk.img">`, `<disk type="block" device="disk" model="virtio-non-transitional">`, `cache="none" error_policy="stop" io="native"`, `<source dev="/dev/loop7">`, "/volumes/default/unknown/disk.img"} {
		if !strings.Contains(got.XML, want) {
			t.Errorf("missing %s in\n%s", want, got.XML)
		}
	}
	if got.SpecHash == plain.SpecHash {
		t.Error("claim disks must change the hash")
	}
	if o, _ := OwnerOf(got.XML); o.SpecHash != got.SpecHash {
		t.Error("owner metadata must carry the hash")
	}
	if got.Artifacts[1].Path != "/dev/loop7" {
		t.Errorf("artifact path: %+v", got.Artifacts[1])
	}
}

// A VM this node cannot take says which label or flag it lacks.
func TestBuild_unschedulableReasons(t *testing.T) {
	set := manifests.Parse("vm.yaml", []byte(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: pinned, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        cpu: {cores: 2, dedicatedCpuPlacement: true}
        memory: {guest: 64Mi}
---
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: gpu-box, namespace: default}
spec:
  nodeSelector: {gpu: "true"}
  domain:
    memory: {guest: 64Mi}
`), manifests.Options{})
	opt := testOptions
	opt.NodeLabels = nil
	st := Build(set, "r1", opt)
	for name, want := range map[string][2]string{
		"default_pinned":  {"VirtualMachine default/pinned: ", ". On node node-1: " + ReasonNoCPUPool},
		"default_gpu-box": {"VirtualMachineInstance default/gpu-box: ", ". On node node-1: nodeSelector gpu=true, but the node has no label gpu"},
	} {
		if got := st.Unschedulable[name]; !strings.HasPrefix(got, want[0]) || !strings.HasSuffix(got, want[1]) {
			t.Errorf("%s: %q\nwant %q…%q", name, got, want[0], want[1])
		}
	}
}

// VM-3 / F-1: with Node manifests, each agent renders only the VMs placed on
// its node, and every agent computes the same placement.
func TestBuild_placement(t *testing.T) {
	doc := func(name, selector string) string {
		return `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: ` + name + `, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      nodeSelector: {` + selector + `}
      domain:
        memory: {guest: 64Mi}
        devices: {}
`
	}
	src := strings.Join([]string{
		"apiVersion: v1\nkind: Node\nmetadata: {name: node-1, labels: {zone: a}}\n",
		"apiVersion: v1\nkind: Node\nmetadata: {name: node-2, labels: {zone: b}}\nspec:\n  taints: [{key: dedicated, value: db, effect: NoSchedule}]\n",
		doc("in-a", "zone: a"),
		doc("in-b", "zone: b"),
		doc("nowhere", "zone: c"),
	}, "---\n")
	set := manifests.Parse("fleet.yaml", []byte(src), manifests.Options{})
	for node, want := range map[string]string{"node-1": "default_in-a", "node-2": ""} {
		opt := testOptions
		opt.Node = node
		st := Build(set, "r1", opt)
		var got []string
		for _, vm := range st.VMs {
			got = append(got, vm.DomainName)
		}
		if strings.Join(got, ",") != want {
			t.Errorf("%s renders %v, want %q", node, got, want)
		}
		why := st.Unschedulable["default_nowhere"]
		if !strings.Contains(why, "0/2 nodes are available") {
			t.Errorf("%s: nowhere must be unschedulable with the scheduler's message, got %q", node, why)
		}
		// in-b selects node-2, whose NoSchedule taint it does not tolerate.
		if !strings.Contains(st.Unschedulable["default_in-b"], "untolerated taint") {
			t.Errorf("%s: in-b: %q", node, st.Unschedulable["default_in-b"])
		}
	}
}

// A hotpluggable volume on the SCSI bus is a live disk: adding it leaves
// the hash alone (no restart), while a cold volume changes it.
func TestBuild_liveVolumesLeaveTheHash(t *testing.T) {
	vm := func(disks, volumes string) *VM {
		t.Helper()
		set := manifests.Parse("vm.yaml", []byte(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: db, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          disks: [{name: root, disk: {bus: virtio}}`+disks+`]
      volumes:
        - {name: root, dataVolume: {name: db-root}}
`+volumes), manifests.Options{})
		v := Build(set, "r1", testOptions).Lookup("default_db")
		if v == nil {
			t.Fatal("not rendered")
		}
		return v
	}
	plain := vm("", "")
	hot := vm(", {name: data, disk: {bus: scsi}}", "        - {name: data, dataVolume: {name: db-data, hotpluggable: true}}\n")
	cold := vm(", {name: data, disk: {bus: scsi}}", "        - {name: data, dataVolume: {name: db-data}}\n")
	if hot.SpecHash != plain.SpecHash {
		t.Error("a live volume changed the hash")
	}
	if cold.SpecHash == plain.SpecHash {
		t.Error("a cold volume must change the hash")
	}
	if len(hot.HotplugDisks) != 1 || hot.HotplugDisks[0].Alias != "ua-data" || !strings.Contains(hot.XML, `<alias name="ua-data">`) {
		t.Errorf("live disk: %+v", hot.HotplugDisks)
	}
	if d := cmpSlices(hot.Hotpluggable, []string{"data"}) + cmpSlices(hot.Volumes, []string{"root", "data"}); d != "" {
		t.Error(d)
	}
}

func cmpSlices(got, want []string) string {
	if strings.Join(got, ",") != strings.Join(want, ",") {
		return "got " + strings.Join(got, ",") + ", want " + strings.Join(want, ",") + "; "
	}
	return ""
}

// The VMI's annotations reach the converter: a VM's template annotations
// (KubeVirt copies them to the VMI), with warnings at their own line.
func TestBuild_templateAnnotations(t *testing.T) {
	doc := `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: board
  annotations:
    smbios.vm.kubevirt.io/baseBoardManufacturer: "on the VM, not the VMI: unused"
spec:
  runStrategy: Halted
  template:
    metadata:
      annotations:
        smbios.vm.kubevirt.io/baseBoardManufacturer: Radical Edward
        smbios.vm.kubevirt.io/baseBoardSerial: "42"
    spec:
      domain:
        memory: {guest: 64Mi}
`
	st := Build(manifests.Parse("vm.yaml", []byte(doc), manifests.Options{}), "r1", testOptions)
	if len(st.VMs) != 1 {
		t.Fatalf("VMs = %d, diags:\n%v", len(st.VMs), st.Diags)
	}
	if !strings.Contains(st.VMs[0].XML, "<entry name=\"manufacturer\">Radical Edward</entry>") {
		t.Errorf("the template's base board manufacturer is not in the domain:\n%s", st.VMs[0].XML)
	}
	var warned []string
	for _, d := range st.Diags {
		warned = append(warned, fmt.Sprintf("%s:%d %s", d.File, d.Line, d.Path))
	}
	want := []string{`vm.yaml:13 spec.template.metadata.annotations["smbios.vm.kubevirt.io/baseBoardSerial"]`}
	if diff := cmp.Diff(want, warned); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
}

// The KubeVirt CR's smbios configuration is what every guest sees in SMBIOS
// type 1, as under KubeVirt; its other fields are warned as unused.
func TestBuild_clusterSMBIOS(t *testing.T) {
	vm := `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: web}
spec:
  runStrategy: Halted
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
`
	kv := `---
apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata: {name: kubevirt-kubevirt-hyperconverged, namespace: openshift-cnv}
spec:
  configuration:
    smbios:
      manufacturer: Red Hat
      product: OpenShift Virtualization
      version: "4.14.0"
      family: Red Hat
    developerConfiguration: {featureGates: [Sidecar]}
`
	system := func(xml string) string {
		i, j := strings.Index(xml, "<system>"), strings.Index(xml, "</system>")
		if i < 0 || j < 0 {
			t.Fatalf("no <system> in\n%s", xml)
		}
		return xml[i : j+len("</system>")]
	}
	plain := Build(manifests.Parse("vm.yaml", []byte(vm), manifests.Options{}), "r1", testOptions)
	if got := system(plain.VMs[0].XML); !strings.Contains(got, `<entry name="manufacturer">KubeVirt</entry>`) {
		t.Errorf("without a KubeVirt CR, want KubeVirt's defaults:\n%s", got)
	}
	st := Build(manifests.Parse("vm.yaml", []byte(vm+kv), manifests.Options{}), "r1", testOptions)
	if len(st.VMs) != 1 {
		t.Fatalf("VMs = %d, diags:\n%v", len(st.VMs), st.Diags)
	}
	got := system(st.VMs[0].XML)
	for _, want := range []string{
		`<entry name="manufacturer">Red Hat</entry>`, `<entry name="product">OpenShift Virtualization</entry>`,
		`<entry name="version">4.14.0</entry>`, `<entry name="family">Red Hat</entry>`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in\n%s", want, got)
		}
	}
	if strings.Contains(got, `name="sku"`) {
		t.Errorf("an unset sku is written:\n%s", got)
	}
	if st.VMs[0].SpecHash == plain.VMs[0].SpecHash {
		t.Error("the cluster's SMBIOS values must change the hash")
	}
	var warned []string
	for _, d := range st.Diags {
		warned = append(warned, d.Path)
	}
	if diff := cmp.Diff([]string{"spec.configuration.developerConfiguration"}, warned); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s\n%v", diff, st.Diags)
	}
}
