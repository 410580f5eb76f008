package hostfacts

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// cpuinfoWith is an x86 /proc/cpuinfo whose processors have flags.
func cpuinfoWith(flags string) string {
	return "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: " + flags + "\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\nflags\t\t: " + flags + "\n"
}

func TestChooseDomainType(t *testing.T) {
	kvm := func() (string, error) { return DomainKVM, nil }
	noKVM := func() (string, error) { return DomainTCG, nil }
	broken := func() (string, error) { return "", errors.New("connection reset") }
	software := map[string]string{"dev/kvm": "", "proc/cpuinfo": cpuinfoWith("fpu hypervisor avx2")}
	hardware := map[string]string{"dev/kvm": "", "proc/cpuinfo": cpuinfoWith("fpu vmx avx2")}
	amd := map[string]string{"dev/kvm": "", "proc/cpuinfo": cpuinfoWith("fpu svm")}
	for _, tc := range []struct {
		name   string
		choice string
		files  map[string]string
		probe  func() (string, error)
		want   string
		why    string // in the warning; "" for none
	}{
		{"vmx, hypervisor agrees", "auto", hardware, kvm, DomainKVM, ""},
		{"svm, no hypervisor: /dev/kvm decides", "", amd, nil, DomainKVM, ""},
		{"/dev/kvm without vmx/svm", "auto", software, kvm, DomainTCG, "/proc/cpuinfo has no vmx or svm flag"},
		{"/dev/kvm without vmx/svm, no hypervisor", "auto", software, nil, DomainTCG, "/proc/cpuinfo has no vmx or svm flag"},
		{"no /dev/kvm, no hypervisor", "auto", map[string]string{"proc/cpuinfo": cpuinfoWith("vmx")}, nil, DomainTCG, "no /dev/kvm"},
		{"the hypervisor offers no KVM", "auto", hardware, noKVM, DomainTCG, "the hypervisor offers no KVM domains"},
		{"the probe fails", "auto", hardware, broken, DomainTCG, "the KVM probe failed: connection reset"},
		{"cpuinfo without flags says nothing", "auto", map[string]string{"dev/kvm": "", "proc/cpuinfo": cpuinfo[:strings.Index(cpuinfo, "flags")]}, kvm, DomainKVM, ""},
		{"forced kvm", "kvm", software, broken, DomainKVM, ""},
		{"forced qemu", "qemu", hardware, kvm, DomainTCG, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Gather(tree(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if hostArch() != "x86_64" {
				f.Arch = "x86_64" // the flags are x86's
			}
			got, err := ChooseDomainType(tc.choice, f, tc.probe)
			if err != nil || got.Type != tc.want {
				t.Fatalf("type = %q, %v; want %q", got.Type, err, tc.want)
			}
			w := got.Warning()
			switch {
			case tc.why == "" && w != "":
				t.Errorf("unexpected warning %q", w)
			case tc.why != "" && (!strings.Contains(w, tc.why) || !strings.Contains(w, "VMs run under TCG emulation (slow)")):
				t.Errorf("warning %q, want it to say %q and TCG", w, tc.why)
			}
		})
	}
	if _, err := ChooseDomainType("xen", Facts{}, nil); err == nil || !strings.Contains(err.Error(), "want auto, kvm or qemu") {
		t.Errorf("a bad choice: %v", err)
	}
}

// Other architectures have no vmx/svm: their flags never veto KVM.
func TestChooseDomainType_otherArch(t *testing.T) {
	got, err := ChooseDomainType("auto", Facts{KVM: true, Arch: "aarch64", CPUFlags: []string{"fp", "asimd"}}, nil)
	if err != nil || got.Type != DomainKVM {
		t.Fatalf("aarch64: %+v, %v", got, err)
	}
}

// This machine's own answer agrees with what its CPU says, the case the
// decision exists for: a /dev/kvm without vmx/svm must give TCG.
func TestChooseDomainType_thisHost(t *testing.T) {
	f, err := Gather("/")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ChooseDomainType("auto", f, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile("/proc/cpuinfo")
	hw := strings.Contains(string(b), " vmx") || strings.Contains(string(b), " svm")
	if want := f.KVM && (hw || (f.Arch != "x86_64" && f.Arch != "i686")); (got.Type == DomainKVM) != want {
		t.Errorf("on this host (KVM %v, vmx/svm %v) auto chose %+v", f.KVM, hw, got)
	}
	t.Logf("this host: %s %s", got.Type, got.Warning())
}
