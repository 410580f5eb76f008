package pathelem

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, ok := range []string{"a", "vm-1", "my.vm", "A_B", "..a", "a..", strings.Repeat("x", 255)} {
		if err := Check(ok); err != nil {
			t.Errorf("Check(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "/a", "a/", "../x", "a\x00b", "a\nb", "a\x7fb", strings.Repeat("x", 256)} {
		if err := Check(bad); !errors.Is(err, ErrNotElement) {
			t.Errorf("Check(%q) = %v, want ErrNotElement", bad, err)
		}
	}
}

func TestJoin(t *testing.T) {
	p, err := Join("/state/disks", "default", "vm")
	if err != nil || p != "/state/disks/default/vm" {
		t.Fatalf("Join = %q, %v", p, err)
	}
	for _, elems := range [][]string{{"default", ".."}, {"..", "x"}, {"a/b", "c"}, {"ns", ""}} {
		if p, err := Join("/state/disks", elems...); err == nil {
			t.Errorf("Join(%q) = %q, want an error", elems, p)
		}
	}
}
