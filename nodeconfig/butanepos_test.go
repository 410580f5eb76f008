package nodeconfig

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// An error on what Butane made from a field names the field the user wrote
// and its line, never a path of Butane's output the file does not have:
// boot_device sugar, storage.trees, storage.files and systemd.units.
func TestRender_butaneErrorsAtUserField(t *testing.T) {
	type want struct {
		line   int
		path   string
		err    error
		saying string
	}
	for _, tc := range []struct {
		name, content string
		want          []want
	}{
		{"boot_device.luks", `variant: fcos
version: 1.6.0
storage:
  files:
  - path: /etc/ok
    contents: {inline: x}
boot_device:
  luks:
    tpm2: true
`, []want{
			{7, "boot_device", ErrUnsupported, "creating file systems is refused, as by the Machine Config Daemon (Butane makes storage.filesystems from boot_device)"},
			{8, "boot_device.luks", ErrUnsupported, "LUKS volumes are refused, as by the Machine Config Daemon (Butane makes storage.luks from boot_device.luks)"},
		}},
		{"boot_device.mirror", `variant: openshift
version: 4.22.0
metadata:
  name: 99-mirror
  labels:
    machineconfiguration.openshift.io/role: worker
boot_device:
  layout: x86_64
  mirror:
    devices:
    - /dev/sda
    - /dev/sdb
`, []want{
			{7, "boot_device", ErrUnsupported, "creating file systems is refused"},
			{9, "boot_device.mirror", ErrUnsupported, "RAID arrays are refused, as by the Machine Config Daemon (Butane makes storage.raid from boot_device.mirror)"},
			{10, "boot_device.mirror.devices", ErrUnsupported, "partitioning disks is refused, as by the Machine Config Daemon (Butane makes storage.disks from boot_device.mirror.devices)"},
		}},
		{"storage.files", `variant: fcos
version: 1.6.0
storage:
  trees:
  - local: tree
    path: /etc/tree
  files:
  - path: /etc/ok
    contents: {inline: x}
  - path: /boot/loader/entries/x.conf
    contents: {inline: x}
`, []want{
			{10, "storage.files[1].path", ErrPathNotAllowed, "/boot/loader/entries/x.conf"},
		}},
		{"storage.trees", `variant: fcos
version: 1.6.0
storage:
  files:
  - path: /etc/ok
    contents: {inline: x}
  trees:
  - local: tree
    path: /usr/lib/tree
`, []want{
			{8, "storage.trees[0]", ErrPathNotAllowed, "/usr/lib/tree/a (nodevirt writes under"},
		}},
		{"systemd.units", `variant: openshift
version: 4.22.0
metadata:
  name: 99-units
  labels:
    machineconfiguration.openshift.io/role: worker
storage:
  trees:
  - local: tree
    path: /etc/tree
systemd:
  units:
  - name: ok.service
    contents: "[Service]\nExecStart=/bin/true\n"
  - name: bad name.service
    contents: "[Service]\nExecStart=/bin/true\n"
  - name: dropin.service
    dropins:
    - name: ../x.conf
      contents: "[Unit]\n"
`, []want{
			{15, "systemd.units[1].name", ErrUnitName, `"bad name.service"`},
			{19, "systemd.units[2].dropins[0].name", ErrUnitName, `drop-in "../x.conf"`},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := render(t, Node{}, map[string]string{"x.bu": tc.content, "tree/a": "x"})
			errs := h.Diags.Errors()
			if len(errs) != len(tc.want) {
				t.Fatalf("want %d errors, got %v", len(tc.want), errs)
			}
			for i, w := range tc.want {
				e := errs[i]
				got := summary{e.Severity, e.File, e.Line, e.Object, e.Path}
				if diff := cmp.Diff(summary{diag.Error, "x.bu", w.line, "Butane x.bu", w.path}, got); diff != "" {
					t.Errorf("%q (-want +got):\n%s", e.Error(), diff)
				}
				if !errors.Is(e, w.err) || !strings.Contains(e.Message, w.saying) {
					t.Errorf("%q: want errors.Is %v and %q", e.Error(), w.err, w.saying)
				}
			}
		})
	}
}

// One pass shows all of a config's errors: those Ignition or Butane finds
// and those nodevirt's own rules find on the same config, each field once.
func TestRender_allErrorsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name, file, content string
		want                []summary
	}{
		{"MachineConfig", "mc.yaml", `apiVersion: machineconfiguration.openshift.io/v1
kind: MachineConfig
metadata:
  name: 99-many
  labels:
    machineconfiguration.openshift.io/role: worker
spec:
  config:
    ignition:
      version: 3.2.0
    storage:
      disks:
      - device: /dev/sdb
      files:
      - path: /etc/x
        mode: 99999
      - path: /boot/x
        contents: {source: "data:,x"}
    systemd:
      units:
      - name: bad name.service
`, []summary{
			{diag.Error, "mc.yaml", 12, "MachineConfig 99-many", "spec.config.storage.disks"},
			{diag.Error, "mc.yaml", 16, "MachineConfig 99-many", "spec.config.storage.files[0].mode"},
			{diag.Error, "mc.yaml", 17, "MachineConfig 99-many", "spec.config.storage.files[1].path"},
			{diag.Error, "mc.yaml", 21, "MachineConfig 99-many", "spec.config.systemd.units[0].name"},
		}},
		{"Butane", "x.bu", `variant: fcos
version: 1.6.0
boot_device:
  luks:
    tpm2: true
storage:
  files:
  - path: /etc/x
    contents:
      inline: a
      source: data:,b
  - path: /usr/bin/x
    contents: {inline: x}
`, []summary{
			{diag.Error, "x.bu", 3, "Butane x.bu", "boot_device"},
			{diag.Error, "x.bu", 4, "Butane x.bu", "boot_device.luks"},
			{diag.Error, "x.bu", 11, "Butane x.bu", "storage.files[0].contents.source"},
			{diag.Error, "x.bu", 12, "Butane x.bu", "storage.files[1].path"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := render(t, Node{}, map[string]string{tc.file: tc.content})
			errs := h.Diags.Errors()
			if diff := cmp.Diff(tc.want, summarize(errs)); diff != "" {
				t.Errorf("errors %v (-want +got):\n%s", errs, diff)
			}
			if len(h.Files)+len(h.Units) > 0 {
				t.Errorf("an invalid config adds nothing: files %+v units %+v", h.Files, h.Units)
			}
		})
	}
}
