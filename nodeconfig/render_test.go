package nodeconfig

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/nodeconfig/butane"
)

// The seed's own examples, as written, render without a diagnostic.
func TestRender_seedExamples(t *testing.T) {
	set, err := manifests.Load("../examples/host", manifests.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Diags) > 0 {
		t.Fatalf("manifests: %v", set.Diags)
	}
	h, diags := Render(set, "../examples/host", NodeFor(set, "n1", "intel"))
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	type fileSum struct{ Path, Mode, Contents, Object string }
	var files []fileSum
	for _, f := range h.Files {
		files = append(files, fileSum{f.Path, f.Mode.String(), string(f.Contents), f.Source.Object})
	}
	want := []fileSum{
		{"/etc/modprobe.d/vfio.conf", "-rw-r--r--", "options vfio-pci ids=10de:1eb8\n", "Butane 100-worker-vfiopci.bu"},
		{"/etc/modules-load.d/vfio-pci.conf", "-rw-r--r--", "vfio-pci", "Butane 100-worker-vfiopci.bu"},
		{"/etc/sysctl.d/90-nodevirt-vm.conf", "-rw-r--r--", "# Fewer swapped-out guest pages.\nvm.swappiness = 10\n", "Butane 90-sysctl.bu"},
	}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"intel_iommu=on"}, h.KernelArgValues()); diff != "" {
		t.Errorf("kernel arguments (-want +got):\n%s", diff)
	}
	u := h.Unit("hostpath-provisioner.service")
	if u == nil || u.Enabled == nil || !*u.Enabled || !strings.Contains(*u.Contents, "ExecStart=/usr/bin/chcon -Rt container_file_t /var/hpvolumes") {
		t.Fatalf("chcon unit = %+v", u)
	}
	if len(u.Dropins) != 1 || u.Dropins[0].Name != SELinuxGuardDropin || !strings.Contains(u.Dropins[0].Contents, "ConditionSecurity=selinux") {
		t.Errorf("chcon unit drop-ins = %+v, want the SELinux guard", u.Dropins)
	}
	// The HostPathProvisioner directory is labelled by the MachineConfig's
	// unit, so nodevirt generates none of its own.
	if len(h.Units) != 1 {
		t.Errorf("units = %d, want only the MachineConfig's", len(h.Units))
	}
	wantLabels := []LabelCheck{{Path: "/var/hpvolumes", Type: ContainerFileType, Unit: "hostpath-provisioner.service", Source: u.Source}}
	if diff := cmp.Diff(wantLabels, h.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(VFIO{IDs: []string{"10de:1eb8"}, ModulesLoad: true, IOMMU: []string{"intel_iommu=on"}}, h.VFIO); diff != "" {
		t.Errorf("vfio (-want +got):\n%s", diff)
	}
	var res []string
	for _, p := range h.PCI {
		res = append(res, p.Selector+"="+p.ResourceName)
	}
	if diff := cmp.Diff([]string{"10de:1eb8=nvidia.com/TU104GL_Tesla_T4", "8086:6f54=intel.com/qat"}, res); diff != "" {
		t.Errorf("PCI resources (-want +got):\n%s", diff)
	}
	// Merge order is MachineConfig name order, as the MCO sorts.
	var order []string
	for _, c := range h.Configs {
		order = append(order, c.Name)
	}
	if diff := cmp.Diff([]string{"100-worker-iommu", "100-worker-vfiopci", "50-set-selinux-for-hostpath-provisioner", "90-sysctl"}, order); diff != "" {
		t.Errorf("config order (-want +got):\n%s", diff)
	}
	// Sources point at the file and line the entry is written on.
	if s := h.Files[0].Source; s.File != "100-worker-vfiopci.bu" || s.Line != 11 || s.Path != "storage.files[0]" {
		t.Errorf("vfio.conf source = %+v", s)
	}
	if s := h.KernelArgs[0].Source; s.File != "100-worker-iommu.yaml" || s.Line != 15 || s.Path != "spec.kernelArguments[0]" {
		t.Errorf("kernel argument source = %+v", s)
	}
}

const vfioBu = `variant: openshift
version: %s
metadata:
  name: 100-worker-vfiopci
  labels:
    machineconfiguration.openshift.io/role: worker
storage:
  files:
  - path: /etc/modprobe.d/vfio.conf
    mode: 0644
    overwrite: true
    contents:
      inline: |
        options vfio-pci ids=10de:1eb8
openshift:
  kernel_arguments:
  - intel_iommu=on
  - hugepagesz=1G hugepages=4
`

// Every openshift version from 4.8 to 4.22 translates, kernel arguments
// included (Raw mode would drop them); fcos carries its own.
func TestRender_butaneVariants(t *testing.T) {
	for _, v := range []string{"4.8.0", "4.9.0", "4.13.0", "4.14.0", "4.18.0", "4.19.0", "4.22.0"} {
		t.Run("openshift-"+v, func(t *testing.T) {
			h, _ := render(t, Node{}, map[string]string{"vfio.bu": strings.Replace(vfioBu, "%s", v, 1)})
			if len(h.Diags) > 0 {
				t.Fatalf("diagnostics: %v", h.Diags)
			}
			if diff := cmp.Diff([]string{"intel_iommu=on", "hugepagesz=1G", "hugepages=4"}, h.KernelArgValues()); diff != "" {
				t.Errorf("kernel arguments (-want +got):\n%s", diff)
			}
			if len(h.Files) != 1 || string(h.Files[0].Contents) != "options vfio-pci ids=10de:1eb8\n" {
				t.Errorf("files = %+v", h.Files)
			}
		})
	}
	t.Run("fcos-1.6.0", func(t *testing.T) {
		h, _ := render(t, Node{}, map[string]string{"k.bu": `variant: fcos
version: 1.6.0
kernel_arguments:
  should_exist: [amd_iommu=on]
  should_not_exist: [quiet]
storage:
  files:
  - path: /etc/modules-load.d/vfio-pci.conf
    contents: {inline: vfio-pci}
systemd:
  units:
  - name: load-vfio.service
    enabled: true
    contents: |
      [Service]
      Type=oneshot
      ExecStart=/sbin/modprobe vfio-pci
      [Install]
      WantedBy=multi-user.target
`})
		if len(h.Diags) > 0 {
			t.Fatalf("diagnostics: %v", h.Diags)
		}
		if diff := cmp.Diff([]string{"amd_iommu=on"}, h.KernelArgValues()); diff != "" {
			t.Errorf("kernel arguments (-want +got):\n%s", diff)
		}
		if len(h.KernelArgsAbsent) != 1 || h.KernelArgsAbsent[0].Value != "quiet" {
			t.Errorf("absent = %+v", h.KernelArgsAbsent)
		}
		if h.Files[0].Mode != 0o644 || !h.VFIO.ModulesLoad || h.Unit("load-vfio.service") == nil {
			t.Errorf("files %+v units %+v", h.Files, h.Units)
		}
		if h.Configs[0].Roles != nil || !h.Configs[0].Applies {
			t.Errorf("an fcos file applies to every node: %+v", h.Configs[0])
		}
	})
}

// Bad input: a clear error naming the file, the object and the field; the
// config is invalid and contributes nothing.
func TestRender_badInput(t *testing.T) {
	mc := func(config string, extra string) string {
		return `apiVersion: machineconfiguration.openshift.io/v1
kind: MachineConfig
metadata:
  name: 99-bad
  labels:
    machineconfiguration.openshift.io/role: worker
spec:
` + extra + `  config:
    ignition:
      version: 3.2.0
` + config
	}
	for _, tc := range []struct {
		name, file, content string
		want                summary
		err                 error
		msg                 string
	}{
		{"butane-translate", "bad.bu", `variant: openshift
version: 4.14.0
metadata:
  name: 99-bad
  labels:
    machineconfiguration.openshift.io/role: worker
storage:
  files:
  - path: /etc/x
    contents:
      inline: a
      source: data:,b
`, summary{diag.Error, "bad.bu", 12, "Butane bad.bu", "storage.files[0].contents.source"}, butane.ErrButane, "only one of the following can be set"},
		{"butane-syntax", "bad.bu", "variant: fcos\nversion: 1.6.0\nstorage: {files: [\n", summary{diag.Error, "bad.bu", 3, "Butane bad.bu", ""}, butane.ErrButane, "YAML syntax"},
		{"butane-directories", "bad.bu", `variant: openshift
version: 4.22.0
metadata:
  name: 99-bad
  labels:
    machineconfiguration.openshift.io/role: worker
storage:
  directories:
  - path: /etc/d
`, summary{diag.Error, "bad.bu", 9, "Butane bad.bu", "storage.directories"}, butane.ErrButane, "not supported"},
		{"butane-experimental", "bad.bu", "variant: openshift\nversion: 4.23.0-experimental\nmetadata: {name: x}\n", summary{diag.Error, "bad.bu", 2, "Butane bad.bu", "version"}, butane.ErrVariant, "4.8.0 to 4.22.0"},
		{"butane-4.24", "bad.bu", "variant: openshift\nversion: 4.24.0\nmetadata: {name: x}\n", summary{diag.Error, "bad.bu", 2, "Butane bad.bu", "version"}, butane.ErrVariant, "4.8.0 to 4.22.0"},
		{"butane-flatcar", "bad.bu", "variant: flatcar\nversion: 1.1.0\n", summary{diag.Error, "bad.bu", 1, "Butane bad.bu", "variant"}, butane.ErrVariant, "openshift and fcos"},
		{"butane-path-outside", "bad.bu", "variant: fcos\nversion: 1.6.0\nstorage:\n  files:\n  - path: /usr/bin/evil\n    contents: {inline: x}\n",
			summary{diag.Error, "bad.bu", 5, "Butane bad.bu", "storage.files[0].path"}, ErrPathNotAllowed, "/usr/bin/evil"},
		{"mc-directories", "bad.yaml", mc("    storage:\n      directories:\n      - path: /etc/d\n", ""),
			summary{diag.Error, "bad.yaml", 12, "MachineConfig 99-bad", "spec.config.storage.directories"}, ErrUnsupported, "directories are refused"},
		{"mc-disks", "bad.yaml", mc("    storage:\n      disks:\n      - device: /dev/sdb\n        wipeTable: true\n", ""),
			summary{diag.Error, "bad.yaml", 12, "MachineConfig 99-bad", "spec.config.storage.disks"}, ErrUnsupported, "partitioning"},
		{"mc-append", "bad.yaml", mc("    storage:\n      files:\n      - path: /etc/x\n        append:\n        - source: data:,a\n", ""),
			summary{diag.Error, "bad.yaml", 14, "MachineConfig 99-bad", "spec.config.storage.files[0].append"}, ErrUnsupported, "appending"},
		{"mc-users", "bad.yaml", mc("    passwd:\n      users:\n      - name: core\n", ""),
			summary{diag.Error, "bad.yaml", 12, "MachineConfig 99-bad", "spec.config.passwd.users"}, ErrUnsupported, "users"},
		{"mc-path-outside", "bad.yaml", mc("    storage:\n      files:\n      - path: /boot/grub/grub.cfg\n        contents: {source: 'data:,x'}\n", ""),
			summary{diag.Error, "bad.yaml", 13, "MachineConfig 99-bad", "spec.config.storage.files[0].path"}, ErrPathNotAllowed, "/boot/grub/grub.cfg"},
		{"mc-http-source", "bad.yaml", mc("    storage:\n      files:\n      - path: /etc/x\n        contents: {source: 'https://example.com/x'}\n", ""),
			summary{diag.Error, "bad.yaml", 14, "MachineConfig 99-bad", "spec.config.storage.files[0].contents"}, ErrFileSource, "https"},
		{"mc-unit-name", "bad.yaml", mc("    systemd:\n      units:\n      - name: nosuffix\n        contents: \"[Service]\\nExecStart=/bin/true\\n\"\n", ""),
			summary{diag.Error, "bad.yaml", 13, "MachineConfig 99-bad", "spec.config.systemd.units[0].name"}, ErrIgnition, "unit extension"},
		{"mc-extensions", "bad.yaml", mc("", "  extensions: [usbguard]\n"),
			summary{diag.Error, "bad.yaml", 8, "MachineConfig 99-bad", "spec.extensions"}, ErrUnsupported, "rpm-ostree"},
		{"mc-ignition-version", "bad.yaml", strings.Replace(mc("", ""), "3.2.0", "9.9.9", 1),
			summary{diag.Error, "bad.yaml", 10, "MachineConfig 99-bad", "spec.config.ignition.version"}, ErrIgnition, "3.0.0 to 3.6.0"},
		{"mc-ignition-invalid-mode", "bad.yaml", mc("    storage:\n      files:\n      - path: /etc/x\n        mode: 99999\n", ""),
			summary{diag.Error, "bad.yaml", 14, "MachineConfig 99-bad", "spec.config.storage.files[0].mode"}, ErrIgnition, "mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := render(t, Node{}, map[string]string{tc.file: tc.content, "ok.yaml": `apiVersion: machineconfiguration.openshift.io/v1
kind: MachineConfig
metadata:
  name: 00-ok
  labels: {machineconfiguration.openshift.io/role: worker}
spec:
  kernelArguments: [iommu=pt]
`})
			errs := h.Diags.Errors()
			if len(errs) != 1 {
				t.Fatalf("want one error, got %v", h.Diags)
			}
			if diff := cmp.Diff(tc.want, summarize(errs)[0]); diff != "" {
				t.Errorf("diagnostic %q (-want +got):\n%s", errs[0].Error(), diff)
			}
			if !errors.Is(errs[0], tc.err) {
				t.Errorf("%q: want errors.Is %v", errs[0].Error(), tc.err)
			}
			if !strings.Contains(errs[0].Message, tc.msg) {
				t.Errorf("message %q does not say %q", errs[0].Message, tc.msg)
			}
			if diff := cmp.Diff([]string{tc.want.Object}, h.Invalid); diff != "" {
				t.Errorf("invalid (-want +got):\n%s", diff)
			}
			// The valid config still renders; the invalid one adds nothing.
			if diff := cmp.Diff([]string{"iommu=pt"}, h.KernelArgValues()); diff != "" {
				t.Errorf("kernel arguments (-want +got):\n%s", diff)
			}
			if len(h.Files) != 0 || len(h.Units) != 0 {
				t.Errorf("invalid config contributed files %v units %v", h.Files, h.Units)
			}
		})
	}
}

// A node has the roles of its Node manifest's labels; without any, worker.
func TestRender_roles(t *testing.T) {
	files := map[string]string{
		"node.yaml": `apiVersion: v1
kind: Node
metadata:
  name: cp1
  labels:
    node-role.kubernetes.io/master: ""
`,
		"w.yaml": `apiVersion: machineconfiguration.openshift.io/v1
kind: MachineConfig
metadata: {name: 50-w, labels: {machineconfiguration.openshift.io/role: worker}}
spec: {kernelArguments: [w=1]}
`,
		"m.yaml": `apiVersion: machineconfiguration.openshift.io/v1
kind: MachineConfig
metadata: {name: 50-m, labels: {machineconfiguration.openshift.io/role: master}}
spec: {kernelArguments: [m=1]}
`,
		"none.yaml": `apiVersion: machineconfiguration.openshift.io/v1
kind: MachineConfig
metadata: {name: 50-none}
spec: {kernelArguments: [none=1]}
`,
	}
	dir := t.TempDir()
	_ = dir
	h, set := render(t, Node{}, files)
	if diff := cmp.Diff([]string{"w=1"}, h.KernelArgValues()); diff != "" {
		t.Errorf("n1 (no Node manifest: worker) (-want +got):\n%s", diff)
	}
	var warned bool
	for _, d := range h.Diags {
		warned = warned || (errors.Is(d, ErrNoRole) && d.Object == "MachineConfig 50-none" && d.Path == "metadata.labels")
	}
	if !warned {
		t.Errorf("want an ErrNoRole warning for 50-none, got %v", h.Diags)
	}
	cp := NodeFor(set, "cp1", "")
	if diff := cmp.Diff([]string{"master"}, cp.Roles); diff != "" {
		t.Errorf("roles (-want +got):\n%s", diff)
	}
	h2 := RenderFrom(set, "", nil, cp)
	if diff := cmp.Diff([]string{"m=1"}, h2.KernelArgValues()); diff != "" {
		t.Errorf("cp1 (master) (-want +got):\n%s", diff)
	}
}

// Configs merge in name order: a later file replaces an earlier one (with a
// warning), unit fields merge, kernel arguments append without repeats.
func TestRender_mergeOrder(t *testing.T) {
	mc := func(name, body string) string {
		return "apiVersion: machineconfiguration.openshift.io/v1\nkind: MachineConfig\nmetadata: {name: " + name +
			", labels: {machineconfiguration.openshift.io/role: worker}}\nspec:\n" + body
	}
	h, _ := render(t, Node{}, map[string]string{
		"a.yaml": mc("10-a", `  kernelArguments: ["hugepagesz=1G hugepages=4", intel_iommu=on]
  config:
    ignition: {version: 3.2.0}
    storage:
      files:
      - {path: /etc/x.conf, contents: {source: "data:,first"}, mode: 0600}
    systemd:
      units:
      - {name: x.service, contents: "[Service]\nExecStart=/bin/true\n"}
`),
		"b.yaml": mc("20-b", `  kernelArguments: [intel_iommu=on, "hugepagesz=2M hugepages=4"]
  config:
    ignition: {version: 3.4.0}
    storage:
      files:
      - {path: /etc/x.conf, contents: {source: "data:,second"}}
    systemd:
      units:
      - name: x.service
        enabled: true
        dropins: [{name: 10-env.conf, contents: "[Service]\nEnvironment=A=1\n"}]
`),
	})
	if len(h.Files) != 1 || string(h.Files[0].Contents) != "second" || h.Files[0].Mode != 0o644 || h.Files[0].Source.Object != "MachineConfig 20-b" {
		t.Errorf("files = %+v", h.Files)
	}
	var overridden []string
	for _, d := range h.Diags {
		if errors.Is(d, ErrOverridden) {
			overridden = append(overridden, d.Object+" "+d.Path)
		}
	}
	if diff := cmp.Diff([]string{"MachineConfig 20-b spec.config.storage.files[0]"}, overridden); diff != "" {
		t.Errorf("override warnings (-want +got):\n%s", diff)
	}
	u := h.Unit("x.service")
	if u == nil || u.Contents == nil || u.Enabled == nil || !*u.Enabled || len(u.Dropins) != 1 {
		t.Errorf("merged unit = %+v", u)
	}
	if diff := cmp.Diff([]string{"hugepagesz=1G", "hugepages=4", "intel_iommu=on", "hugepagesz=2M", "hugepages=4"}, h.KernelArgValues()); diff != "" {
		t.Errorf("kernel arguments (-want +got):\n%s", diff)
	}
}

// A repo may hold x.bu and the x.yaml generated from it: the same content is
// one config; different content is an error on both.
func TestRender_butaneAndGeneratedMachineConfig(t *testing.T) {
	bu := `variant: openshift
version: 4.9.0
metadata:
  name: 100-worker-iommu
  labels:
    machineconfiguration.openshift.io/role: worker
openshift:
  kernel_arguments: [intel_iommu=on]
`
	gen := func(arg string) string {
		return `apiVersion: machineconfiguration.openshift.io/v1
kind: MachineConfig
metadata:
  labels:
    machineconfiguration.openshift.io/role: worker
  name: 100-worker-iommu
spec:
  config:
    ignition:
      version: 3.2.0
  kernelArguments:
  - ` + arg + "\n"
	}
	h, _ := render(t, Node{}, map[string]string{"iommu.bu": bu, "iommu.yaml": gen("intel_iommu=on")})
	if h.Diags.HasErrors() || len(h.Diags) != 1 || !errors.Is(h.Diags[0], ErrDuplicateConfig) || h.Diags[0].Severity != diag.Warning {
		t.Fatalf("same content: want one duplicate warning, got %v", h.Diags)
	}
	if diff := cmp.Diff([]string{"intel_iommu=on"}, h.KernelArgValues()); diff != "" {
		t.Errorf("kernel arguments (-want +got):\n%s", diff)
	}
	h, _ = render(t, Node{}, map[string]string{"iommu.bu": bu, "iommu.yaml": gen("amd_iommu=on")})
	if len(h.Diags.Errors()) != 2 || len(h.Invalid) != 2 {
		t.Fatalf("different content: want an error on both, got %v (invalid %v)", h.Diags, h.Invalid)
	}
}

const hc = `apiVersion: hco.kubevirt.io/v1beta1
kind: HyperConverged
metadata:
  name: kubevirt-hyperconverged
  namespace: openshift-cnv
  annotations:
    nodevirt.io/vfio-generate: "true"
    nodevirt.io/vfio-bind: "true"
spec:
  permittedHostDevices:
    pciHostDevices:
    - pciDeviceSelector: "10DE:1DB6"
      resourceName: "nvidia.com/GV100GL_Tesla_V100"
    - pciDeviceSelector: "8086:6F54"
      resourceName: "intel.com/qat"
      externalResourceProvider: true
`

// Opted in, nodevirt writes vfio.conf, the modules-load file and the IOMMU
// argument for the CPU vendor when no config does.
func TestRender_vfioGenerate(t *testing.T) {
	for vendor, arg := range map[string]string{"intel": "intel_iommu=on", "amd": "amd_iommu=on"} {
		h, _ := render(t, Node{CPUVendor: vendor}, map[string]string{"hc.yaml": hc})
		if len(h.Diags) > 0 {
			t.Fatalf("diagnostics: %v", h.Diags)
		}
		got := map[string]string{}
		for _, f := range h.Files {
			got[f.Path] = string(f.Contents)
		}
		want := map[string]string{VFIOConfPath: "options vfio-pci ids=10de:1db6\n", VFIOModulesLoadPath: "vfio-pci\n"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: files (-want +got):\n%s", vendor, diff)
		}
		if diff := cmp.Diff([]string{arg}, h.KernelArgValues()); diff != "" {
			t.Errorf("%s: kernel arguments (-want +got):\n%s", vendor, diff)
		}
		if !h.VFIO.Generate || !h.VFIO.Generated || !h.VFIO.Bind || h.VFIO.Source == nil || h.VFIO.Source.Object != "HyperConverged openshift-cnv/kubevirt-hyperconverged" {
			t.Errorf("%s: vfio = %+v", vendor, h.VFIO)
		}
	}
	// Unknown vendor: no guess, a warning.
	h, _ := render(t, Node{CPUVendor: ""}, map[string]string{"hc.yaml": hc})
	if len(h.KernelArgs) != 0 || len(h.Diags) != 1 || !errors.Is(h.Diags[0], ErrCPUVendor) {
		t.Errorf("unknown vendor: kargs %v diags %v", h.KernelArgs, h.Diags)
	}
	// A config that already sets vfio-pci ids: nodevirt says which are missing.
	h, _ = render(t, Node{CPUVendor: "intel"}, map[string]string{"hc.yaml": hc, "v.bu": strings.Replace(vfioBu, "%s", "4.9.0", 1)})
	var msgs []string
	for _, d := range h.Diags {
		msgs = append(msgs, d.Message)
	}
	if len(msgs) != 1 || !strings.Contains(msgs[0], "add 10de:1db6 there") {
		t.Errorf("want a warning naming the missing id, got %v", msgs)
	}
	if f := h.File(VFIOConfPath); f == nil || string(f.Contents) != "options vfio-pci ids=10de:1eb8\n" {
		t.Errorf("the config's vfio.conf must stay as written: %+v", f)
	}
}

func TestRender_permittedDevicesBadSelector(t *testing.T) {
	h, _ := render(t, Node{}, map[string]string{"hc.yaml": strings.Replace(hc, `"10DE:1DB6"`, `"10DE-1DB6"`, 1)})
	errs := h.Diags.Errors()
	if len(errs) != 1 || !errors.Is(errs[0], ErrSelector) || errs[0].Path != "spec.permittedHostDevices.pciHostDevices[0].pciDeviceSelector" || errs[0].Line != 12 {
		t.Fatalf("want ErrSelector at pciHostDevices[0], got %v", h.Diags)
	}
}

// HostPathProvisioner directories no unit labels get nodevirt's own oneshot
// chcon unit; SELinux-less hosts skip it through ConditionSecurity.
func TestRender_hostPathUnit(t *testing.T) {
	h, _ := render(t, Node{}, map[string]string{"hpp.yaml": `apiVersion: hostpathprovisioner.kubevirt.io/v1beta1
kind: HostPathProvisioner
metadata: {name: hostpath-provisioner}
spec:
  pathConfig: {path: /var/my volumes}
`})
	if len(h.Diags) > 0 {
		t.Fatalf("diagnostics: %v", h.Diags)
	}
	u := h.Unit(`nodevirt-selinux-var-my\x20volumes.service`)
	if u == nil {
		t.Fatalf("units = %+v", h.Units)
	}
	for _, want := range []string{"ConditionSecurity=selinux", "Type=oneshot", "RemainAfterExit=yes", `ExecStart=/usr/bin/chcon -Rt container_file_t "/var/my volumes"`, "WantedBy=multi-user.target"} {
		if !strings.Contains(*u.Contents, want) {
			t.Errorf("unit lacks %q:\n%s", want, *u.Contents)
		}
	}
	if len(h.Labels) != 1 || h.Labels[0].Path != "/var/my volumes" || h.Labels[0].Unit != u.Name {
		t.Errorf("labels = %+v", h.Labels)
	}
}

func TestParseRelabel(t *testing.T) {
	for _, tc := range []struct {
		cmd, typ string
		paths    []string
	}{
		{"/usr/bin/chcon -Rt container_file_t /var/hpvolumes", "container_file_t", []string{"/var/hpvolumes"}},
		{"-/usr/bin/chcon -t container_file_t -R /a /b/", "container_file_t", []string{"/a", "/b"}},
		{"chcon --type=svirt_image_t -R /var/lib/x", "svirt_image_t", []string{"/var/lib/x"}},
		{"chcon -u system_u -t x_t /p", "x_t", []string{"/p"}},
		{"/usr/sbin/restorecon -R /var/x", "", nil},
		{"/bin/true", "", nil},
	} {
		typ, paths, _ := parseRelabel(tc.cmd)
		if typ != tc.typ || !cmp.Equal(paths, tc.paths) {
			t.Errorf("parseRelabel(%q) = %q %v, want %q %v", tc.cmd, typ, paths, tc.typ, tc.paths)
		}
	}
}

func TestParseCPUInfo(t *testing.T) {
	c := ParseCPUInfo([]byte("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7763\nflags\t\t: fpu svm avx2\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n"))
	if c.Vendor != "amd" || c.Model != "AMD EPYC 7763" || !cmp.Equal(c.Flags, []string{"fpu", "svm", "avx2"}) {
		t.Errorf("%+v", c)
	}
	if ParseCPUInfo([]byte("vendor_id : GenuineIntel\n")).Vendor != "intel" {
		t.Error("intel")
	}
}

func TestVFIOIDs(t *testing.T) {
	got := VFIOIDs([]byte("# comment\noptions vfio-pci ids=10DE:1EB8,10de:1db6:ffff:ffff disable_vga=1\noptions vfio_pci ids=8086:6f54\noptions kvm nested=1\n"))
	if diff := cmp.Diff([]string{"10de:1eb8", "10de:1db6", "8086:6f54"}, got); diff != "" {
		t.Error(diff)
	}
}

// The seed's MachineConfig verbatim, placeholder and all: it applies, with
// a warning that the placeholder's label cannot be checked.
func TestRender_seedPlaceholder(t *testing.T) {
	h, _ := render(t, Node{}, map[string]string{"mc.yaml": `apiVersion: machineconfiguration.openshift.io/v1
kind: MachineConfig
metadata:
  name: 50-set-selinux-for-hostpath-provisioner
  labels:
    machineconfiguration.openshift.io/role: worker
spec:
  config:
    ignition:
      version: 3.2.0
    systemd:
      units:
        - contents: |
            [Unit]
            Description=Set SELinux chcon for hostpath provisioner
            Before=kubelet.service

            [Service]
            ExecStart=/usr/bin/chcon -Rt container_file_t <backing_directory_path>

            [Install]
            WantedBy=multi-user.target
          enabled: true
          name: hostpath-provisioner.service
`, "hpp.yaml": `apiVersion: hostpathprovisioner.kubevirt.io/v1beta1
kind: HostPathProvisioner
metadata: {name: hostpath-provisioner}
spec:
  pathConfig: {path: /var/hpvolumes}
  workload:
    nodeSelector: {kubernetes.io/os: linux}
`})
	if h.Diags.HasErrors() || len(h.Diags) != 1 || !strings.Contains(h.Diags[0].Message, "<backing_directory_path>") || h.Diags[0].Line != 13 {
		t.Fatalf("diagnostics: %v", h.Diags)
	}
	if h.Unit("hostpath-provisioner.service") == nil {
		t.Error("the seed's unit must apply")
	}
	// The HostPathProvisioner's directory (its nodeSelector matches every
	// Linux node) gets nodevirt's own unit, since the seed's does not name it.
	if h.Unit("nodevirt-selinux-var-hpvolumes.service") == nil || len(h.Labels) != 1 || h.Labels[0].Path != "/var/hpvolumes" {
		t.Errorf("units %v labels %v", h.Units, h.Labels)
	}
}
