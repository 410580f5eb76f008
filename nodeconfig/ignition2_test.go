package nodeconfig

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// The hostpath provisioner operator's own SELinux MachineConfig is Ignition
// spec 2.2.0: it translates to spec 3 as the Machine Config Operator
// translates it, its unit is installed and enabled on the role it names,
// and the label it sets is checked.
func TestRender_spec2HostPathProvisionerSELinux(t *testing.T) {
	h, _ := render(t, Node{}, map[string]string{"hpp-selinux.yaml": readTestdata(t, "spec2/machineconfig-selinux-hpp.yaml")})
	if len(h.Diags) > 0 {
		t.Fatalf("diagnostics: %v", h.Diags)
	}
	u := h.Unit("hostpath-provisioner.service")
	if u == nil {
		t.Fatalf("no unit: %+v", h.Units)
	}
	if u.Enabled == nil || !*u.Enabled || u.Contents == nil || !strings.Contains(*u.Contents, "ExecStart=/usr/bin/chcon -Rt container_file_t /var/hpvolumes\n") {
		t.Errorf("unit %+v", u)
	}
	// The worker's config (the second document) applies; the master's not.
	want := Source{Object: "MachineConfig 50-set-selinux-for-hostpath-provisioner-worker", File: "hpp-selinux.yaml", Line: 44, Path: "spec.config.systemd.units[0]"}
	if diff := cmp.Diff(want, u.Source); diff != "" {
		t.Errorf("source (-want +got):\n%s", diff)
	}
	if len(h.Labels) != 1 || h.Labels[0].Path != "/var/hpvolumes" || h.Labels[0].Type != "container_file_t" || h.Labels[0].Unit != u.Name {
		t.Errorf("labels %+v", h.Labels)
	}
	var applies []string
	for _, c := range h.Configs {
		if c.Applies {
			applies = append(applies, c.Object)
		}
	}
	if diff := cmp.Diff([]string{want.Object}, applies); diff != "" {
		t.Errorf("applying configs (-want +got):\n%s", diff)
	}

	master, _ := render(t, Node{Name: "m1", Roles: []string{"master"}}, map[string]string{"hpp-selinux.yaml": readTestdata(t, "spec2/machineconfig-selinux-hpp.yaml")})
	if u := master.Unit("hostpath-provisioner.service"); u == nil || u.Source.Object != "MachineConfig 50-set-selinux-for-hostpath-provisioner-master" || u.Source.Line != 16 {
		t.Errorf("master unit %+v", u)
	}
}

// A spec 2.2.0 MachineConfig as OpenShift 4.1 printed it (empty sections,
// filesystem: root, a decimal mode) writes its file.
func TestRender_spec2Chrony(t *testing.T) {
	h, _ := render(t, Node{}, map[string]string{"chrony.yaml": readTestdata(t, "spec2/chrony-openshift-4.1.yaml")})
	if len(h.Diags) > 0 {
		t.Fatalf("diagnostics: %v", h.Diags)
	}
	f := h.File("/etc/chrony.conf")
	if f == nil {
		t.Fatalf("files %+v", h.Files)
	}
	if f.Mode != 0o644 || !strings.HasPrefix(string(f.Contents), "server clock.redhat.com iburst\n") || f.Source.Line != 23 || f.Source.Path != "spec.config.storage.files[0]" {
		t.Errorf("file %s mode %v source %+v: %q", f.Path, f.Mode, f.Source, f.Contents)
	}
}

// Spec 2.0, 2.1, 2.3 and 2.4 read too; a unit's deprecated `enable` counts
// as `enabled`, as the converter reads it.
func TestRender_spec2Versions(t *testing.T) {
	for _, v := range []string{"2.0.0", "2.1.0", "2.2.0", "2.3.0", "2.4.0"} {
		t.Run(v, func(t *testing.T) {
			h, _ := render(t, Node{}, map[string]string{"mc.yaml": spec2MC(v, `    systemd:
      units:
      - name: a.service
        enable: true
        contents: "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
`)})
			if len(h.Diags) > 0 {
				t.Fatalf("diagnostics: %v", h.Diags)
			}
			if u := h.Unit("a.service"); u == nil || u.Enabled == nil || !*u.Enabled {
				t.Errorf("unit %+v", u)
			}
		})
	}
}

// Spec 2 allowed a path or unit twice; the Machine Config Operator keeps the
// last entry (a unit's drop-ins merge), and so does nodevirt. Sources name
// the entry that was kept.
func TestRender_spec2Duplicates(t *testing.T) {
	h, _ := render(t, Node{}, map[string]string{"mc.yaml": spec2MC("2.2.0", `    storage:
      files:
      - path: /etc/a
        filesystem: root
        contents: {source: "data:,first"}
      - path: /etc/b
        filesystem: root
        contents: {source: "data:,b"}
      - path: /etc/a
        filesystem: root
        contents: {source: "data:,second"}
    systemd:
      units:
      - name: a.service
        dropins: [{name: one.conf, contents: "[Unit]\n"}]
      - name: a.service
        mask: true
        dropins: [{name: two.conf, contents: "[Unit]\n"}]
`)})
	if len(h.Diags) > 0 {
		t.Fatalf("diagnostics: %v", h.Diags)
	}
	a := h.File("/etc/a")
	if a == nil || string(a.Contents) != "second" || a.Source.Path != "spec.config.storage.files[2]" || a.Source.Line != 19 {
		t.Errorf("file %+v", a)
	}
	if b := h.File("/etc/b"); b == nil || b.Source.Path != "spec.config.storage.files[1]" || b.Source.Line != 16 {
		t.Errorf("file %+v", b)
	}
	u := h.Unit("a.service")
	if u == nil || u.Mask == nil || !*u.Mask || u.Source.Path != "spec.config.systemd.units[1]" {
		t.Fatalf("unit %+v", u)
	}
	var dropins []string
	for _, d := range u.Dropins {
		dropins = append(dropins, d.Name)
	}
	if diff := cmp.Diff([]string{"two.conf", "one.conf"}, dropins); diff != "" {
		t.Errorf("drop-ins (-want +got):\n%s", diff)
	}
}

// What spec 3 (or nodevirt) cannot express is refused by MachineConfig,
// field and why, at the line the user wrote.
func TestRender_spec2Refused(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         []summary
		err          error
		msg          string
	}{
		{"networkd", `    networkd:
      units:
      - name: 10-eth0.network
        contents: "[Match]\nName=eth0\n"
`, []summary{{diag.Error, "mc.yaml", 12, "MachineConfig 99-spec2", "spec.config.networkd.units"}}, ErrSpec2, "/etc/systemd/network"},
		{"other-filesystem", `    storage:
      filesystems:
      - name: data
        mount: {device: /dev/sdb, format: xfs}
      files:
      - path: /x
        filesystem: data
        contents: {source: "data:,x"}
`, []summary{
			{diag.Error, "mc.yaml", 13, "MachineConfig 99-spec2", "spec.config.storage.filesystems[0].name"},
			{diag.Error, "mc.yaml", 17, "MachineConfig 99-spec2", "spec.config.storage.files[0].filesystem"},
		}, ErrSpec2, `file system "data"`},
		{"filesystem-create", `    storage:
      filesystems:
      - name: root
        mount:
          device: /dev/sdb
          format: xfs
          create: {force: true}
`, []summary{{diag.Error, "mc.yaml", 17, "MachineConfig 99-spec2", "spec.config.storage.filesystems[0].mount.create"}}, ErrSpec2, "create object (deprecated in spec 2) has no spec 3 form"},
		{"root-filesystem-format", `    storage:
      filesystems:
      - name: root
        mount: {device: /dev/sda4, format: xfs, wipeFilesystem: true}
`, []summary{{diag.Error, "mc.yaml", 14, "MachineConfig 99-spec2", "spec.config.storage.filesystems[0].mount"}}, ErrSpec2, "converter would drop it"},
		{"append", `    storage:
      files:
      - path: /etc/hosts
        filesystem: root
        append: true
        contents: {source: "data:,10.0.0.2%20myname"}
`, []summary{{diag.Error, "mc.yaml", 15, "MachineConfig 99-spec2", "spec.config.storage.files[0].append"}}, ErrUnsupported, "appending to files is refused"},
		{"core-user-ssh-keys", `    passwd:
      users:
      - name: core
        sshAuthorizedKeys:
        - ssh-rsa AAAAB3NzaC1yc2E example
`, []summary{{diag.Error, "mc.yaml", 12, "MachineConfig 99-spec2", "spec.config.passwd.users"}}, ErrUnsupported, "nodevirt does not manage users"},
		{"relative-path", `    storage:
      files:
      - path: etc/x
        filesystem: root
        contents: {source: "data:,x"}
`, []summary{{diag.Error, "mc.yaml", 13, "MachineConfig 99-spec2", "spec.config.storage.files[0].path"}}, ErrIgnition, "path not absolute"},
		{"remote-config", `      config:
        append:
        - source: https://example.com/extra.ign
`, []summary{{diag.Error, "mc.yaml", 12, "MachineConfig 99-spec2", "spec.config.ignition.config.append"}}, ErrUnsupported, "remote configs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content := spec2MC("2.2.0", tc.config)
			if tc.name == "remote-config" { // under spec.config.ignition
				content = spec2MC("2.2.0", "")
				content = strings.Replace(content, "      version: 2.2.0\n", "      version: 2.2.0\n"+tc.config, 1)
			}
			h, _ := render(t, Node{}, map[string]string{"mc.yaml": content})
			errs := h.Diags.Errors()
			if diff := cmp.Diff(tc.want, summarize(errs)); diff != "" {
				t.Fatalf("errors %v (-want +got):\n%s", errs, diff)
			}
			for _, e := range errs {
				if !errors.Is(e, tc.err) {
					t.Errorf("%q: want errors.Is %v", e.Error(), tc.err)
				}
			}
			if !strings.Contains(errs[0].Message, tc.msg) {
				t.Errorf("message %q does not say %q", errs[0].Message, tc.msg)
			}
			if !h.IsInvalid("MachineConfig 99-spec2") || len(h.Files)+len(h.Units) > 0 {
				t.Errorf("an invalid config adds nothing: invalid %v files %+v units %+v", h.Invalid, h.Files, h.Units)
			}
		})
	}
}

// A spec 2 version Ignition never had is refused at ignition.version, with
// the versions nodevirt reads.
func TestRender_spec2UnknownVersion(t *testing.T) {
	h, _ := render(t, Node{}, map[string]string{"mc.yaml": spec2MC("2.9.0", "")})
	errs := h.Diags.Errors()
	want := []summary{{diag.Error, "mc.yaml", 10, "MachineConfig 99-spec2", "spec.config.ignition.version"}}
	if diff := cmp.Diff(want, summarize(errs)); diff != "" {
		t.Fatalf("errors %v (-want +got):\n%s", errs, diff)
	}
	if !strings.Contains(errs[0].Message, "2.9.0") || !strings.Contains(errs[0].Message, "2.0.0 to 2.4.0 and 3.0.0 to 3.6.0") {
		t.Errorf("message %q", errs[0].Message)
	}
}

func TestJSONLinePaths(t *testing.T) {
	src := "{\n  \"a\": {\n    \"b\\\"c\": [\n      1,\n      {\n        \"d\": true\n      }\n    ],\n    \"e\": {}\n  }\n}"
	want := []string{"", "a", "a.b\"c", "a.b\"c[0]", "a.b\"c[1]", "a.b\"c[1].d", "a.b\"c[1]", "a.b\"c", "a.e", "a", ""}
	if diff := cmp.Diff(want, jsonLinePaths([]byte(src))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// spec2MC is a worker MachineConfig with an Ignition config of version v;
// config is indented under spec.config (line 11 is its first line).
func spec2MC(v, config string) string {
	return `apiVersion: machineconfiguration.openshift.io/v1
kind: MachineConfig
metadata:
  name: 99-spec2
  labels:
    machineconfiguration.openshift.io/role: worker
spec:
  config:
    ignition:
      version: ` + v + `
` + config
}

// The Compliance Operator's documented remediation MachineConfig (spec
// 2.2.0): an empty data URL, an octal mode, and kernelArguments holding one
// empty string.
func TestRender_spec2ComplianceRemediation(t *testing.T) {
	h, _ := render(t, Node{}, map[string]string{"securetty.yaml": `apiVersion: machineconfiguration.openshift.io/v1
kind: MachineConfig
metadata:
  name: 75-workers-scan-no-direct-root-logins
  labels:
    machineconfiguration.openshift.io/role: worker
spec:
  fips: false
  osImageURL: ""
  kernelArguments:
    - ""
  config:
    ignition:
      version: 2.2.0
    storage:
      files:
      - contents:
          source: data:,
        filesystem: root
        mode: 0600
        path: /etc/securetty
`})
	if len(h.Diags) > 0 {
		t.Fatalf("diagnostics: %v", h.Diags)
	}
	f := h.File("/etc/securetty")
	if f == nil || f.Mode != 0o600 || len(f.Contents) != 0 || f.Source.Line != 17 {
		t.Errorf("file %+v", f)
	}
	if len(h.KernelArgs) != 0 {
		t.Errorf("kernel arguments %+v", h.KernelArgs)
	}
}

// A spec 2 config refused for what spec 3 cannot say still gets nodevirt's
// own checks on the rest, in the same pass; entries on a file system that
// has no spec 3 path are not checked as if they were on root.
func TestRender_spec2AllErrorsAtOnce(t *testing.T) {
	h, _ := render(t, Node{}, map[string]string{"mc.yaml": spec2MC("2.2.0", `    networkd:
      units:
      - name: 10-eth0.network
        contents: "[Match]\nName=eth0\n"
    storage:
      files:
      - path: /x
        filesystem: oem
        contents: {source: "data:,x"}
      - path: /boot/x
        filesystem: root
        contents: {source: "data:,x"}
      - path: /etc/ok
        filesystem: root
        contents: {source: "https://example.com/ok"}
`)})
	want := []summary{
		{diag.Error, "mc.yaml", 12, "MachineConfig 99-spec2", "spec.config.networkd.units"},
		{diag.Error, "mc.yaml", 18, "MachineConfig 99-spec2", "spec.config.storage.files[0].filesystem"},
		{diag.Error, "mc.yaml", 20, "MachineConfig 99-spec2", "spec.config.storage.files[1].path"},
		{diag.Error, "mc.yaml", 25, "MachineConfig 99-spec2", "spec.config.storage.files[2].contents"},
	}
	errs := h.Diags.Errors()
	if diff := cmp.Diff(want, summarize(errs)); diff != "" {
		t.Errorf("errors %v (-want +got):\n%s", errs, diff)
	}
	for i, e := range []error{ErrSpec2, ErrSpec2, ErrPathNotAllowed, ErrFileSource} {
		if i < len(errs) && !errors.Is(errs[i], e) {
			t.Errorf("%q: want errors.Is %v", errs[i].Error(), e)
		}
	}
}

// overwrite: false (spec 2 or 3) is read but not honoured, as by the
// Machine Config Daemon: a warning says so at the field.
func TestRender_overwriteFalseWarns(t *testing.T) {
	h, _ := render(t, Node{}, map[string]string{"mc.yaml": spec2MC("2.2.0", `    storage:
      files:
      - path: /etc/keep
        filesystem: root
        overwrite: false
        contents: {source: "data:,x"}
`)})
	want := []summary{{diag.Warning, "mc.yaml", 15, "MachineConfig 99-spec2", "spec.config.storage.files[0].overwrite"}}
	if diff := cmp.Diff(want, summarize(h.Diags)); diff != "" {
		t.Errorf("diagnostics %v (-want +got):\n%s", h.Diags, diff)
	}
	if f := h.File("/etc/keep"); f == nil || string(f.Contents) != "x" {
		t.Errorf("the file is still written: %+v", f)
	}
}

// The kernel-argument MachineConfig of the OpenShift 4.x documentation, in
// its spec 2.2.0 form: an empty Ignition config next to kernelArguments.
func TestRender_spec2KernelArguments(t *testing.T) {
	h, _ := render(t, Node{}, map[string]string{"karg.yaml": `apiVersion: machineconfiguration.openshift.io/v1
kind: MachineConfig
metadata:
  labels:
    machineconfiguration.openshift.io/role: worker
  name: 05-worker-kernelarg-selinuxpermissive
spec:
  config:
    ignition:
      version: 2.2.0
  kernelArguments:
    - enforcing=0
`})
	if len(h.Diags) > 0 {
		t.Fatalf("diagnostics: %v", h.Diags)
	}
	if diff := cmp.Diff([]string{"enforcing=0"}, h.KernelArgValues()); diff != "" {
		t.Errorf("kernel arguments (-want +got):\n%s", diff)
	}
}
