package manifests

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kubevirtv1 "kubevirt.io/api/core/v1"
)

// seedDir holds the YAML snippets of the seed document's sections 8.14.x,
// one file each, completed into whole objects where the seed elides parts
// (each file's header says what changed). reconciler/desired renders them.
var seedDir = filepath.Join("testdata", "seed")

// TestSeed_fixtures loads the seed directory as one repository: every
// object must be valid (the seed shows configurations OpenShift accepts).
func TestSeed_fixtures(t *testing.T) {
	entries, err := os.ReadDir(seedDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 12 {
		t.Fatalf("%s has %d files, want the 12 seed snippets", seedDir, len(entries))
	}
	s, err := Load(seedDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkPaths(t, s)
	for _, d := range s.Diags {
		t.Errorf("%v", d)
	}
	if s.Incomplete || s.Files != len(entries) {
		t.Errorf("Incomplete=%v, Files=%d (want %d)", s.Incomplete, s.Files, len(entries))
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "8.14.") {
			t.Errorf("%s: seed fixtures are named after their section", e.Name())
		}
		data, err := os.ReadFile(filepath.Join(seedDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(data), "# Seed 8.14.") {
			t.Errorf("%s: the header comment must say which seed section it is and what was changed", e.Name())
		}
	}
	for _, o := range s.Objects {
		if !o.Valid {
			t.Errorf("%s (%s) is invalid", o.Ref, o.File)
		}
	}
}

// TestSeed_values pins what the seed's sections are about after loading:
// the values a reader of the seed expects to reach the converter.
func TestSeed_values(t *testing.T) {
	s, err := Load(seedDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	spec := func(name string) *kubevirtv1.VirtualMachineInstanceSpec {
		for _, o := range s.Objects {
			switch v := o.Value.(type) {
			case *kubevirtv1.VirtualMachine:
				if o.Ref.Name == name {
					return &v.Spec.Template.Spec
				}
			case *kubevirtv1.VirtualMachineInstance:
				if o.Ref.Name == name {
					return &v.Spec
				}
			}
		}
		t.Fatalf("no VM %s", name)
		return nil
	}
	if g := spec("overcommit").Domain.Memory.Guest.String(); g != "2048M" {
		t.Errorf("8.14.7: guest memory %s, want 2048M", g)
	}
	if g := spec("with-limits").Domain.Memory.Guest.String(); g != "128Mi" {
		t.Errorf("8.14.1: guest memory %s, want the request 128Mi", g)
	}
	if hp := spec("hugepages").Domain.Memory.Hugepages; hp == nil || hp.PageSize != "1Gi" {
		t.Errorf("8.14.8: hugepages %+v, want pageSize 1Gi", hp)
	}
	if wd := spec("vm2-rhel84-watchdog").Domain.Devices.Watchdog; wd == nil || wd.I6300ESB == nil || wd.I6300ESB.Action != "poweroff" {
		t.Errorf("8.14.12: watchdog %+v, want i6300esb poweroff", wd)
	}
	pxe := spec("vmi-pxe-boot").Domain.Devices
	if *pxe.Interfaces[1].BootOrder != 1 || *pxe.Disks[0].BootOrder != 2 || pxe.Interfaces[1].MacAddress != "de:00:00:00:00:de" {
		t.Errorf("8.14.6: boot orders or MAC lost: %+v %+v", pxe.Interfaces[1], pxe.Disks[0])
	}
}

// TestSeed_verbatimTypos: two of the seed's snippets have header typos, which
// the fixtures correct; written as the seed prints them, each must fail with
// a clear rule instead of loading as something else.
func TestSeed_verbatimTypos(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      error
	}{
		{"8.14.5 apiversion", "apiversion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: vm-secureboot\n", ErrMissingAPIVersion},
		{"8.14.10.4 kubevirt/v1alpha3", "apiVersion: kubevirt/v1alpha3\nkind: VirtualMachine\nmetadata:\n  name: myvm\n", ErrUnknownKind},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Parse("seed.yaml", []byte(tc.src), Options{})
			if len(s.Diags) == 0 || !errors.Is(s.Diags[0], tc.want) {
				t.Errorf("diagnostics %v, want %v first", s.Diags, tc.want)
			}
			if !s.Incomplete {
				t.Error("an unidentifiable document must suspend pruning")
			}
		})
	}
}
