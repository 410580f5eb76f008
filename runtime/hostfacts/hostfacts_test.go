package hostfacts

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const meminfo = `MemTotal:       16318036 kB
MemFree:         9204320 kB
MemAvailable:   12785612 kB
`

const cpuinfo = `processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC

processor	: 1
vendor_id	: AuthenticAMD
model name	: AMD EPYC
flags		: fpu sse2 svm

processor	: 2
vendor_id	: AuthenticAMD
`

// tree writes files (relative path → content) under a fresh root.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func hostArch() string {
	if runtime.GOARCH == "amd64" {
		return "x86_64"
	}
	return archNames[runtime.GOARCH]
}

func TestGather_fakeTree(t *testing.T) {
	cases := map[string]struct {
		files map[string]string
		want  Facts
	}{
		"full": {
			files: map[string]string{
				"etc/hostname":  "node-a\n",
				"dev/kvm":       "",
				"proc/meminfo":  meminfo,
				"proc/cpuinfo":  cpuinfo,
				"etc/unrelated": "x",
			},
			want: Facts{Hostname: "node-a", KVM: true, Arch: hostArch(), CPUs: 3, MemoryBytes: 16318036 * 1024, CPUFlags: []string{"fpu", "sse2", "svm"}},
		},
		"no kvm, no hostname": {
			files: map[string]string{"proc/meminfo": meminfo, "proc/cpuinfo": cpuinfo},
			want:  Facts{KVM: false, Arch: hostArch(), CPUs: 3, MemoryBytes: 16318036 * 1024, CPUFlags: []string{"fpu", "sse2", "svm"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Gather(tree(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Gather (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGather_errors(t *testing.T) {
	cases := map[string]struct {
		files map[string]string
		want  string
	}{
		"no MemTotal":   {map[string]string{"proc/cpuinfo": cpuinfo, "proc/meminfo": "MemFree: 1 kB\n"}, "no MemTotal"},
		"bad MemTotal":  {map[string]string{"proc/cpuinfo": cpuinfo, "proc/meminfo": "MemTotal: lots\n"}, "unexpected MemTotal line"},
		"empty cpuinfo": {map[string]string{"proc/meminfo": meminfo, "proc/cpuinfo": "\n"}, "no processor entries"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Gather(tree(t, tc.files))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// A test root that holds only config files leaves /proc facts unknown.
func TestGather_partialRootLeavesFactsUnknown(t *testing.T) {
	f, err := Gather(tree(t, map[string]string{"etc/hostname": "node1\n"}))
	if err != nil {
		t.Fatal(err)
	}
	if f.Hostname != "node1" || f.CPUs != 0 || f.MemoryBytes != 0 {
		t.Fatalf("want hostname only, got %+v", f)
	}
}

// TestGather_realRoot checks the real host only for plausibility, since its
// values are whatever this machine has.
func TestGather_realRoot(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc, Linux only")
	}
	f, err := Gather("/")
	if err != nil {
		t.Fatal(err)
	}
	if f.Hostname == "" || f.CPUs < 1 || f.MemoryBytes < 64<<20 || f.Arch == "" {
		t.Errorf("implausible facts for this host: %+v", f)
	}
	st, err := os.Stat("/dev/kvm")
	wantKVM := err == nil && st.Mode()&os.ModeCharDevice != 0
	if f.KVM != wantKVM {
		t.Errorf("KVM = %v, want %v", f.KVM, wantKVM)
	}
}

func TestFreeHugepages(t *testing.T) {
	root := tree(t, map[string]string{
		"sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages":    "512\n",
		"sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages": "2\n",
	})
	got, err := FreeHugepages(root)
	if err != nil {
		t.Fatal(err)
	}
	if got[2048] != 512 || got[1048576] != 2 || len(got) != 2 {
		t.Fatalf("FreeHugepages = %v", got)
	}
	if got, err := FreeHugepages(t.TempDir()); err != nil || len(got) != 0 {
		t.Fatalf("no pools: %v, %v", got, err)
	}
}
