package hostfacts

import (
	"slices"
	"testing"
)

func TestParseCPUSet(t *testing.T) {
	for in, want := range map[string][]uint{"": nil, "0": {0}, "0-3,8,10-11": {0, 1, 2, 3, 8, 10, 11}, " 2,1,2 ": {1, 2}} {
		got, err := ParseCPUSet(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseCPUSet(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"a", "3-1", "1-", "-2"} {
		if _, err := ParseCPUSet(bad); err == nil {
			t.Errorf("ParseCPUSet(%q) must fail", bad)
		}
	}
}

func TestCPUManagerPool(t *testing.T) {
	root := tree(t, map[string]string{"sys/devices/system/cpu/online": "0-7\n"})
	got, err := CPUManagerPool(root, "0,4")
	if err != nil || !slices.Equal(got, []uint{1, 2, 3, 5, 6, 7}) {
		t.Fatalf("pool = %v, %v", got, err)
	}
	if _, err := CPUManagerPool(t.TempDir(), "0"); err == nil {
		t.Fatal("a test root without the online list must be an error")
	}
}
