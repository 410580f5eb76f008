package disks

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A config disk (configMap, secret, downwardAPI, sysprep) is the same
// writer with KubeVirt's labels: one file per key at the root, and an
// optional source that does not exist gives an empty image.
func TestStore_EnsureSeedISO_configDisk(t *testing.T) {
	s, root := newStore(t)
	for _, tc := range []struct {
		label string
		files map[string][]byte
	}{
		{"cfgdata", map[string][]byte{"option1": []byte("value1"), "config.yaml": []byte("debug: true\n")}},
		{"unattendCD", map[string][]byte{"autounattend.xml": []byte("<unattend/>\n")}},
		{"cfgdata", map[string][]byte{}},
	} {
		p := filepath.Join(root, "disks", "vm1", tc.label+".iso")
		if err := s.EnsureSeedISO(t.Context(), p, tc.label, tc.files); err != nil {
			t.Fatalf("%s: %v", tc.label, err)
		}
		label, got := readISO(t, p)
		if label != tc.label {
			t.Errorf("label = %q, want %q", label, tc.label)
		}
		if len(got) != len(tc.files) {
			t.Errorf("%s holds %v, want %d files", p, got, len(tc.files))
		}
		for name, want := range tc.files {
			if got[name] != string(want) {
				t.Errorf("%s: %s = %q, want %q", tc.label, name, got[name], want)
			}
		}
	}
}

// Keys plain ISO 9660 cannot hold (ConfigMap keys such as Caddyfile or
// app.properties) are written with Rock Ridge names by xorrisofs, as
// KubeVirt writes every config disk, and read back under their own names.
func TestStore_EnsureSeedISO_rockRidgeNames(t *testing.T) {
	if _, err := exec.LookPath("xorrisofs"); err != nil {
		t.Fatalf("xorrisofs (Debian package xorriso) is needed: %v", err)
	}
	s, root := newStore(t)
	p := filepath.Join(root, "disks", "vm1", "app.iso")
	files := map[string][]byte{
		"Caddyfile":              []byte(":80 {\n  respond \"hi\"\n}\n"),
		"application.properties": []byte("server.port=8080\n"),
		"option1":                []byte("value1"),
	}
	if err := s.EnsureSeedISO(t.Context(), p, "cfgdata", files); err != nil {
		t.Fatal(err)
	}
	label, got := readISO(t, p)
	if label != "cfgdata" {
		t.Errorf("label = %q", label)
	}
	for name, want := range files {
		if got[name] != string(want) {
			t.Errorf("%s = %q, want %q (image holds %v)", name, got[name], want, got)
		}
	}
	if len(got) != len(files) {
		t.Errorf("image holds %v, want %d files", got, len(files))
	}
	entries, err := os.ReadDir(filepath.Dir(p))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".iso-stage-") {
			t.Errorf("staging directory %s left behind", e.Name())
		}
	}
	assertNoTempFiles(t, filepath.Dir(p))
}
