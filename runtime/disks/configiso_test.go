package disks

import (
	"path/filepath"
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
