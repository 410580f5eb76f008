package butane

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// Output fields Butane made from sugar map back to the field the file wrote,
// at the line and column of its key.
func TestResult_Source(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tree", "a"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, diags := Translate("x.bu", []byte(`variant: openshift
version: 4.22.0
metadata:
  name: 99-x
  labels:
    machineconfiguration.openshift.io/role: worker
openshift:
  kernel_arguments:
  - iommu=pt
  - intel_iommu=on
boot_device:
  layout: x86_64
  luks:
    tpm2: true
  mirror:
    devices:
    - /dev/sda
    - /dev/sdb
storage:
  files:
  - path: /etc/x
    mode: 0644
    contents: {inline: x}
  trees:
  - local: tree
    path: /etc/tree
`), Options{FilesDir: dir})
	if res == nil || diags.HasErrors() {
		t.Fatalf("diags %v", diags)
	}
	for _, tc := range []struct {
		ign  string
		want Field
	}{
		{"storage.luks[0].device", Field{"boot_device.luks", 13, 3}},
		{"storage.luks", Field{"boot_device.luks", 13, 3}},
		{"storage.raid[1]", Field{"boot_device.mirror", 15, 3}},
		{"storage.disks[1].partitions[0].label", Field{"boot_device.mirror.devices[1]", 18, 7}},
		{"storage.filesystems", Field{"boot_device", 11, 1}},
		{"storage.files[0].mode", Field{"storage.files[0].mode", 22, 5}},
		{"storage.files[1].path", Field{"storage.trees[0]", 25, 5}},
	} {
		got, ok := res.Source(tc.ign)
		if !ok {
			t.Errorf("%s: no source", tc.ign)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.ign, diff)
		}
	}
	if got, ok := res.SpecSource("kernelArguments[1]"); !ok || got != (Field{"openshift.kernel_arguments[1]", 10, 5}) {
		t.Errorf("kernelArguments[1]: %+v %v", got, ok)
	}
	if got, ok := res.Source("passwd.users[0]"); ok {
		t.Errorf("a field Butane did not make has no source: %+v", got)
	}
}

// A Butane config embedded in a larger file (a block scalar from line 5,
// indented by 4) reports the file's lines and columns.
func TestTranslate_embedded(t *testing.T) {
	data := []byte("variant: fcos\nversion: 1.6.0\nboot_device:\n  luks:\n    tpm2: true\nstorage:\n  files:\n  - path: /etc/x\n    mode: 99999\n")
	_, diags := Translate("host.yaml", data, Options{Line: 5, Indent: 4})
	want := diag.List{{Severity: diag.Error, File: "host.yaml", Line: 13, Col: 15, Path: "storage.files[0].mode", Message: "illegal file mode"}}
	if diff := cmp.Diff(want, diags.Errors(), cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Err" }, cmp.Ignore())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	res, diags := Translate("host.yaml", data[:len(data)-len("    mode: 99999\n")], Options{Line: 5, Indent: 4})
	if res == nil {
		t.Fatalf("diags %v", diags)
	}
	if got, ok := res.Source("storage.luks[0]"); !ok || got != (Field{"boot_device.luks", 8, 7}) {
		t.Errorf("storage.luks[0]: %+v %v", got, ok)
	}
	_, diags = Translate("host.yaml", []byte("variant: fcos\nversion: 1.6.0\nstorage: {files: [\n"), Options{Line: 5, Indent: 4})
	if len(diags) != 1 || diags[0].Line != 7 {
		t.Errorf("syntax error: %v", diags)
	}
}

func TestParsePath(t *testing.T) {
	p, err := parsePath("storage.files[12].contents.source")
	if err != nil || !cmp.Equal(p.Path, []any{"storage", "files", 12, "contents", "source"}) {
		t.Errorf("%v %v", p, err)
	}
	if _, err := parsePath("storage.files[x]"); err == nil {
		t.Error("want an error for a bad index")
	}
}

// Errors Butane finds in the config its sugar made come back at the sugar
// field the file wrote.
func TestTranslate_sugarErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       summary
	}{
		{"boot_device.luks", "variant: fcos\nversion: 1.6.0\nboot_device:\n  luks:\n    tang:\n    - url: ftp://x\n      thumbprint: abc\n",
			summary{6, 12, "boot_device.luks.tang[0].url", "invalid url scheme"}},
		{"boot_device.mirror", "variant: fcos\nversion: 1.6.0\nboot_device:\n  layout: x86_64\n  mirror:\n    devices:\n    - /dev/sda\n    - sdb\n",
			summary{8, 7, "boot_device.mirror.devices[1]", "path not absolute"}},
		{"systemd.units", "variant: fcos\nversion: 1.6.0\nsystemd:\n  units:\n  - name: a.service\n  - name: a.service\n",
			summary{6, 5, "systemd.units[1]", "duplicate entry defined"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, diags := Translate("x.bu", []byte(tc.data), Options{})
			if res != nil || len(diags) != 1 {
				t.Fatalf("want one error, got %v", diags)
			}
			d := diags[0]
			if diff := cmp.Diff(tc.want, summary{d.Line, d.Col, d.Path, d.Message}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

type summary struct {
	Line, Col     int
	Path, Message string
}
