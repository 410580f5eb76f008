package hostfacts

import (
	"slices"
	"testing"
)

func TestCPUManagerPool(t *testing.T) {
	root := tree(t, map[string]string{"sys/devices/system/cpu/online": "0-7,10-11\n"})
	for reserved, want := range map[string][]uint{
		"0,4":    {1, 2, 3, 5, 6, 7, 10, 11},
		"":       {0, 1, 2, 3, 4, 5, 6, 7, 10, 11},
		" 0-6 ":  {7, 10, 11},
		"7,9-11": {0, 1, 2, 3, 4, 5, 6},
	} {
		got, err := CPUManagerPool(root, reserved)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("pool with %q reserved = %v, %v; want %v", reserved, got, err, want)
		}
	}
	for _, bad := range []string{"a", "3-1", "1-", "-2"} {
		if _, err := CPUManagerPool(root, bad); err == nil {
			t.Errorf("reserved CPUs %q must be refused", bad)
		}
	}
	if _, err := CPUManagerPool(t.TempDir(), "0"); err == nil {
		t.Fatal("a test root without the online list must be an error")
	}
	if _, err := CPUManagerPool(tree(t, map[string]string{"sys/devices/system/cpu/online": "0-x\n"}), "0"); err == nil {
		t.Fatal("a garbled online list must be an error")
	}
}
