package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
)

// run executes the CLI in-process and returns stdout, stderr and the exit code.
func run(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	// --config "": a config file on the machine running the tests is not
	// read; a test's own --config comes later and wins.
	cmd.SetArgs(append([]string{"--config", "", "--state", t.TempDir(), "--root", t.TempDir(), "--log-level", "error"}, args...))
	err := cmd.Execute()
	code := 0
	var ec exitCode
	switch {
	case errors.As(err, &ec):
		code = int(ec)
	case err != nil:
		errOut.WriteString(err.Error())
		code = 1
	}
	return out.String(), errOut.String(), code
}

// Every example passes validate --strict (what `make demo` applies).
func TestValidate_examplesStrict(t *testing.T) {
	out, errOut, code := run(t, "validate", "--strict", "--source", "../../examples")
	if code != 0 {
		t.Fatalf("examples must validate strictly (exit %d):\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, " files are valid (") {
		t.Fatalf("unexpected summary: %q", out)
	}
}

// Every error of the source at once, each with file:line, object and field path.
func TestValidate_reportsEveryErrorWithPosition(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "vms/bad.yaml", `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: bad, namespace: default}
spec:
  runStrategy: Sometimes
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          disks:
            - name: a
              disk: {bus: floppy}
      volumes:
        - {name: a, emptyDisk: {capacity: 1Gi}}
`)
	write(t, dir, "vms/typo.yaml", `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: typo}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memroy: {guest: 64Mi}
`)
	out, errOut, code := run(t, "validate", "--source", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"vms/bad.yaml:5:3: VirtualMachine default/bad: spec.runStrategy: runStrategy must be one of",
		"vms/bad.yaml:13:22: VirtualMachine default/bad: spec.template.spec.domain.devices.disks[0].disk.bus: bus must be one of",
		"vms/typo.yaml:9:9: VirtualMachine default/typo: spec.template.spec.domain.memroy:",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, errOut)
		}
	}
}

// render domain prints XML that libvirt's own schema accepts.
func TestRenderDomain_passesVirtXMLValidate(t *testing.T) {
	out, errOut, code := run(t, "render", "domain", "--source", "../../examples", "web")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "<name>default_web</name>") || !strings.Contains(out, "https://nodevirt.io/xmlns/domain/1") {
		t.Fatalf("unexpected XML:\n%s", out)
	}
	bin, err := exec.LookPath("virt-xml-validate")
	if err != nil {
		t.Fatal("virt-xml-validate is not installed; `make test` installs libvirt-clients")
	}
	f := filepath.Join(t.TempDir(), "web.xml")
	if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(bin, f, "domain").CombinedOutput(); err != nil {
		t.Fatalf("virt-xml-validate: %v\n%s", err, msg)
	}
	if _, errOut, code := run(t, "render", "domain", "--source", "../../examples", "nope"); code == 0 || !strings.Contains(errOut, "no VirtualMachine default/nope") {
		t.Fatalf("unknown VM: exit %d, %q", code, errOut)
	}
}

// The demo (make demo) goes through plan, apply, drift and heal on the test driver.
func TestDemo(t *testing.T) {
	out, errOut, code := run(t, "demo", "--source", "../../examples")
	if code != 0 {
		t.Fatalf("demo exit %d:\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"create  VirtualMachine default/web", "DRIFTED", "vcpu: host has 3, source wants", "is not nodevirt's", "No drift: 4 domains match the source."} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "DRIFTED"), strings.LastIndex(out, "No drift"); i < 0 || j < i {
		t.Errorf("drift must be reported before it is healed")
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// VM-10 through the CLI: the HyperConverged permits a GPU that the host's
// sysfs (under --root) shows bound to vfio-pci; the VM asking for it gets it
// as a <hostdev> with its address.
func TestApply_gpuPassthrough(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	dev := filepath.Join(root, "sys/bus/pci/devices/0000:3b:00.0")
	for name, content := range map[string]string{"vendor": "0x10de\n", "device": "0x20b5\n", "class": "0x030200\n", "driver_override": "(null)\n", "numa_node": "0\n"} {
		write(t, dev, name, content)
	}
	if err := os.MkdirAll(filepath.Join(root, "sys/bus/pci/drivers/vfio-pci"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../drivers/vfio-pci", filepath.Join(dev, "driver")); err != nil {
		t.Fatal(err)
	}
	write(t, src, "hco.yaml", `apiVersion: hco.kubevirt.io/v1beta1
kind: HyperConverged
metadata: {name: kubevirt-hyperconverged, namespace: openshift-cnv}
spec:
  permittedHostDevices:
    pciHostDevices:
      - {pciDeviceSelector: "10DE:20B5", resourceName: nvidia.com/GA100}
`)
	write(t, src, "vm.yaml", `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: gpu, namespace: default}
spec:
  runStrategy: Halted
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          gpus: [{name: gpu1, deviceName: nvidia.com/GA100}]
`)
	// test:///default keeps its state only while a connection is open.
	d, err := virt.Open(t.Context(), "test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"--state", t.TempDir(), "--root", root, "--log-level", "error", "--libvirt", "test:///default",
		"--source", src, "-o", "json", "apply"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("apply: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), `"action": "create"`) || strings.Contains(out.String(), "not permitted") {
		t.Fatalf("the VM must be created with its GPU:\n%s", out.String())
	}
	x := domainXML(t, d, "default_gpu")
	for _, want := range []string{"managed='no'", "bus='0x3b'", "ua-gpu-gpu1"} {
		if !strings.Contains(x, want) {
			t.Fatalf("defined domain lacks %s:\n%s", want, x)
		}
	}
}

// domainXML reads a domain's definition from the in-process test driver,
// whose state the connections of this test process share.
func domainXML(t *testing.T, d *virt.Driver, name string) string {
	t.Helper()
	doms, err := d.Domains(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, dom := range doms {
		if dom.Name == name {
			return dom.XML
		}
	}
	t.Fatalf("no domain %s on the test driver", name)
	return ""
}

func TestDomainType_flag(t *testing.T) {
	d, err := virt.Open(t.Context(), "test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	src := t.TempDir()
	b, err := os.ReadFile("../../examples/vms/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write(t, src, "web.yaml", string(b))
	out, errOut, code := run(t, "--libvirt", "test:///default", "--domain-type", "qemu", "--source", src, "apply")
	if code != 0 {
		t.Fatalf("apply: %s%s", out, errOut)
	}
	if x := domainXML(t, d, "default_web"); !strings.HasPrefix(x, "<domain type='qemu'") {
		t.Fatalf("--domain-type qemu must define TCG domains:\n%s", x)
	}
	if _, errOut, code := run(t, "--libvirt", "test:///default", "--domain-type", "xen", "--source", "../../examples", "plan"); code == 0 || !strings.Contains(errOut, "want auto, kvm or qemu") {
		t.Fatalf("a bad --domain-type must be refused: %d %s", code, errOut)
	}
}

// auto picks TCG on a host whose /dev/kvm is no hardware virtualization
// (no vmx/svm flag in cpuinfo), for render and apply alike; KVM with vmx.
func TestDomainType_autoWithoutVMX(t *testing.T) {
	d, err := virt.Open(t.Context(), "test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	src := t.TempDir()
	b, err := os.ReadFile("../../examples/vms/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write(t, src, "web.yaml", string(b))
	host := func(flags string) string {
		root := t.TempDir()
		write(t, root, "dev/kvm", "")
		write(t, root, "proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: "+flags+"\n")
		return root
	}
	for flags, want := range map[string]string{"fpu hypervisor": `<domain type="qemu"`, "fpu vmx": `<domain type="kvm"`} {
		// The test driver offers KVM domains, as libvirt on a KVM host
		// does: the host's cpuinfo decides, not this machine's libvirtd.
		out, errOut, code := run(t, "--root", host(flags), "--libvirt", "test:///default", "--source", src, "render", "domain", "web")
		if code != 0 || !strings.HasPrefix(out, want) {
			t.Errorf("render with flags %q: exit %d, want %s:\n%s%s", flags, code, want, out, errOut)
		}
	}
	out, errOut, code := run(t, "--root", host("fpu hypervisor"), "--libvirt", "test:///default", "--source", src, "apply")
	if code != 0 {
		t.Fatalf("apply: %s%s", out, errOut)
	}
	if x := domainXML(t, d, "default_web"); !strings.HasPrefix(x, "<domain type='qemu'") {
		t.Fatalf("auto without vmx/svm must define TCG domains:\n%s", x)
	}
}

// validate names each way a guest sees other hardware than under KubeVirt,
// once per VM, without failing --strict: there is nothing to fix.
func TestValidate_differencesFromKubeVirt(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "vms/web.yaml", `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: web, namespace: default}
spec:
  runStrategy: Halted
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          interfaces: [{name: default, masquerade: {}}]
      networks: [{name: default, pod: {}}]
`)
	_, errOut, code := run(t, "validate", "--strict", "--source", dir)
	if code != 0 {
		t.Fatalf("validate --strict: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{
		"spec.template.spec.domain.devices.interfaces[0].masquerade: differs from KubeVirt: the pod network is QEMU user-mode networking",
		"spec.template.spec.domain.cpu: differs from KubeVirt: the guest sees only sockets × cores × threads possible CPUs",
	} {
		if strings.Count(errOut, want) != 1 {
			t.Errorf("want once %q in\n%s", want, errOut)
		}
	}
}
