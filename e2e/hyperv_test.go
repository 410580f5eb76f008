//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

// hypervFixtures are the converter's Hyper-V, clock and Windows goldens'
// manifests (reconciler/desired/domain/testdata), with the VM or VMI each holds.
var hypervFixtures = map[string]string{
	"vmi-hyperv.yaml":             "lab/hyperv",
	"vmi-hyperv-passthrough.yaml": "lab/hyperv-passthrough",
	"vmi-clock-timezone.yaml":     "lab/clock-timezone",
	"vm-windows11.yaml":           "lab/win11",
	"vmi-windows.yaml":            "default/vmi-windows",
}

// The goldens' manifests, rendered for this host's domain type, are
// accepted by libvirt's qemu driver with validation: it checks the Hyper-V
// enlightenments, timers and panic models against the QEMU it runs, which
// the schema and the test driver cannot.
func TestHyperV_goldensDefineOnSystem(t *testing.T) {
	require(t, Root, Libvirtd)
	validator, err := exec.LookPath("virt-xml-validate")
	if err != nil {
		t.Fatalf("virt-xml-validate is not installed; `make test` installs libvirt-clients")
	}
	dir := t.TempDir()
	for file := range hypervFixtures {
		src := filepath.Join("..", "reconciler", "desired", "domain", "testdata", file)
		if file == "vmi-windows.yaml" {
			src = filepath.Join("..", "reconciler", "desired", "domain", "testdata", "corpus", file)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := manifests.Load(dir, manifests.Options{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := libvirt.NewConnect("qemu:///system")
	if err != nil {
		t.Fatalf("connect qemu:///system: %v", err)
	}
	defer conn.Close()
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "s390x": "s390x"}[runtime.GOARCH]
	state := t.TempDir()
	typ := corpusDomainType(t)
	st := desired.Build(set, "hyperv", desired.Options{Context: domain.Context{
		Type: typ, Arch: arch,
		DiskDir: filepath.Join(state, "disks"), VolumeDir: filepath.Join(state, "volumes"),
		Root: filepath.Join(state, "root"),
	}})
	for _, d := range st.Diags {
		if d.Severity == diag.Error {
			t.Errorf("%v", d)
		}
	}
	for file, ref := range hypervFixtures {
		ns, name, _ := strings.Cut(ref, "/")
		vm := st.Lookup(domain.DomainName(ns, name))
		if vm == nil {
			t.Errorf("%s: %s was not rendered", file, ref)
			continue
		}
		if err := defineRenamedOnce(conn, validator, "nodevirt-hyperv-"+strings.TrimSuffix(file, ".yaml"), vm.XML); err != nil {
			t.Errorf("%s (domain type %s): %v", file, typ, err)
		}
		if err := startStripped(conn, "nodevirt-hyperv-run-"+strings.TrimSuffix(file, ".yaml"), vm.XML); err != nil {
			t.Errorf("%s (domain type %s): %v", file, typ, err)
		}
	}
}

// startStripped starts the domain for a moment, without its disks (their
// files do not exist here) and with little memory: QEMU itself then checks
// the features, timers and panic devices on this host, which defining does
// not (libvirt refuses pvspinlock, QEMU the Hyper-V VP index, only at start).
func startStripped(conn *libvirt.Connect, name, xml string) error {
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(xml); err != nil {
		return fmt.Errorf("parse rendered XML: %w", err)
	}
	old := dom.UUID
	dom.Name = name
	dom.UUID = desired.StableUUID("nodevirt-hyperv", name)
	for i := range dom.SysInfo {
		if s := dom.SysInfo[i].SMBIOS; s != nil && s.System != nil {
			for j := range s.System.Entry {
				if e := &s.System.Entry[j]; e.Name == "uuid" && e.Value == old {
					e.Value = dom.UUID
				}
			}
		}
	}
	dom.Devices.Disks = nil
	dom.Memory = &libvirtxml.DomainMemory{Value: 128, Unit: "MiB"}
	dom.CurrentMemory = &libvirtxml.DomainCurrentMemory{Value: 128, Unit: "MiB"}
	x, err := dom.Marshal()
	if err != nil {
		return err
	}
	if d, err := conn.LookupDomainByName(name); err == nil {
		_ = d.Destroy()
		d.Free()
	}
	d, err := conn.DomainCreateXML(x, libvirt.DOMAIN_START_VALIDATE)
	if err != nil {
		return fmt.Errorf("start (disks left out): %w", err)
	}
	defer d.Free()
	defer func() { _ = d.Destroy() }()
	// QEMU refuses bad CPU properties at once; a second shows it kept running.
	time.Sleep(time.Second)
	if st, _, err := d.GetState(); err != nil || st != libvirt.DOMAIN_RUNNING {
		return fmt.Errorf("started domain is in state %v (%v), want running", st, err)
	}
	return nil
}

// defineRenamedOnce checks xml with virt-xml-validate, then defines it under
// name, with a UUID of its own (in <uuid> and the SMBIOS system entry,
// which libvirt requires to agree), validated by libvirt, and undefines it.
func defineRenamedOnce(conn *libvirt.Connect, validator, name, xml string) error {
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(xml); err != nil {
		return fmt.Errorf("parse rendered XML: %w", err)
	}
	old := dom.UUID
	dom.Name = name
	dom.UUID = desired.StableUUID("nodevirt-hyperv", name)
	for i := range dom.SysInfo {
		if s := dom.SysInfo[i].SMBIOS; s != nil && s.System != nil {
			for j := range s.System.Entry {
				if e := &s.System.Entry[j]; e.Name == "uuid" && e.Value == old {
					e.Value = dom.UUID
				}
			}
		}
	}
	renamed, err := dom.Marshal()
	if err != nil {
		return fmt.Errorf("marshal: %w", err)
	}
	f := filepath.Join(os.TempDir(), name+".xml")
	if err := os.WriteFile(f, []byte(renamed), 0o644); err != nil {
		return err
	}
	defer os.Remove(f)
	if out, err := exec.Command(validator, f, "domain").CombinedOutput(); err != nil {
		return fmt.Errorf("virt-xml-validate: %v: %s", err, strings.TrimSpace(string(out)))
	}
	// A leftover of an interrupted run would make the define an update.
	if d, err := conn.LookupDomainByName(name); err == nil {
		_ = d.UndefineFlags(libvirt.DOMAIN_UNDEFINE_NVRAM)
		d.Free()
	}
	d, err := conn.DomainDefineXMLFlags(renamed, libvirt.DOMAIN_DEFINE_VALIDATE)
	if err != nil {
		return fmt.Errorf("libvirt rejects the domain: %w", err)
	}
	defer d.Free()
	if err := d.UndefineFlags(libvirt.DOMAIN_UNDEFINE_NVRAM); err != nil {
		return fmt.Errorf("undefine %s: %w", name, err)
	}
	return nil
}
