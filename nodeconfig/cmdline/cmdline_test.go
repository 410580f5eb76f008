package cmdline

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplit(t *testing.T) {
	for in, want := range map[string][]string{
		`a=1  b  c="x y" d`:               {"a=1", "b", `c="x y"`, "d"},
		"BOOT_IMAGE=/vmlinuz ro\tquiet\n": {"BOOT_IMAGE=/vmlinuz", "ro", "quiet"},
		"":                                nil,
	} {
		if diff := cmp.Diff(want, Split(in)); diff != "" {
			t.Errorf("Split(%q) (-want +got):\n%s", in, diff)
		}
	}
}
