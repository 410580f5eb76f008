//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"github.com/nodevirt/nodevirt/internal/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

// corpusPrefix names every domain TestCorpus defines, so none collides with a
// real one (or with another test's namespace_name domains).
const corpusPrefix = "nodevirt-corpus-"

// corpusRejected are the corpus files nodevirt rejects for a reason other
// than an unsupported field, each with the rule and why that is right.
var corpusRejected = map[string]struct {
	rule error
	why  string
}{
	"vm-windows-clarge-windows.yaml": {manifests.ErrInstancetypeConflict,
		"KubeVirt rejects it too: memory.guest 128Mi (left by the example generator) conflicts with clarge's memory.guest"},
	"vmi-multus-multiple-net.yaml": {desired.ErrNADNotFound,
		"its NetworkAttachmentDefinition ptp-conf is not part of the corpus"},
}

// TestCorpus runs KubeVirt's upstream examples (shared/corpus/kubevirt-examples)
// through the agent's pipeline, manifests.Load then desired.Build. Each VM or
// VMI must either render into a domain that virt-xml-validate and libvirt's
// qemu driver (DomainDefineXMLFlags with VALIDATE) accept, or fail only with
// diagnostics that start "unsupported:", or be one of corpusRejected. The
// table it logs is the README's corpus table.
func TestCorpus(t *testing.T) {
	require(t, Root, Libvirtd)
	dir := testenv.KubeVirtExamples(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("the corpus is part of the project's shared tree and must be there: %v", err)
	}
	validator, err := exec.LookPath("virt-xml-validate")
	if err != nil {
		t.Fatalf("virt-xml-validate is not installed; `make test` installs libvirt-clients")
	}
	conn, err := libvirt.NewConnect("qemu:///system")
	if err != nil {
		t.Fatalf("connect qemu:///system: %v", err)
	}
	defer conn.Close()

	set, err := manifests.Load(dir, manifests.Options{})
	if err != nil {
		t.Fatal(err)
	}
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "s390x": "s390x"}[runtime.GOARCH]
	state := t.TempDir()
	st := desired.Build(set, "corpus", desired.Options{Context: domain.Context{
		Type:      corpusDomainType(t),
		Arch:      arch,
		DiskDir:   filepath.Join(state, "disks"),
		VolumeDir: filepath.Join(state, "volumes"),
		// vmi-host-disk.yaml's hostDisk lies here; the operator allows
		// host files with --allowed-host-dirs. The root is a scratch
		// directory: the corpus must not reach the real /var/data.
		Root:     filepath.Join(state, "root"),
		HostDirs: []string{"/var/data"},
	}})

	errorsOf := map[string]diag.List{}
	for _, d := range st.Diags {
		if d.Severity == diag.Error {
			errorsOf[d.Object] = append(errorsOf[d.Object], d)
		}
	}
	type row struct{ file, result, reason string }
	var rows []row
	files := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		files++
		var objects []*manifests.Object
		for _, o := range set.Objects {
			if o.File == e.Name() {
				objects = append(objects, o)
			}
		}
		if len(objects) == 0 {
			t.Errorf("%s: no object loaded", e.Name())
			rows = append(rows, row{e.Name(), "FAILED", "no object loaded"})
			continue
		}
		for _, o := range objects {
			r := row{file: e.Name()}
			switch o.Ref.Kind {
			case "VirtualMachine", "VirtualMachineInstance":
				r.result, r.reason = corpusOutcome(t, conn, validator, e.Name(), o, st, errorsOf[o.Ref.String()])
			default:
				r.result, r.reason = "companion", o.Ref.Kind+", referenced by other examples"
				if errs := errorsOf[o.Ref.String()]; len(errs) > 0 {
					t.Errorf("%s: %v", e.Name(), errs.Err())
					r.result, r.reason = "FAILED", errs[0].Message
				}
			}
			rows = append(rows, r)
		}
	}
	if files < 20 {
		t.Errorf("the corpus has %d YAML files, want at least 20", files)
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].file < rows[j].file })
	var b strings.Builder
	b.WriteString("\n| file | result | reason |\n| --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.file, r.result, strings.ReplaceAll(r.reason, "|", `\|`))
	}
	t.Log(b.String())
}

// corpusOutcome classifies one VM or VMI and checks it against the rules of
// TestCorpus; the result and reason go into the table.
func corpusOutcome(t *testing.T, conn *libvirt.Connect, validator, file string, o *manifests.Object,
	st *desired.State, errs diag.List) (result, reason string) {
	t.Helper()
	if vm := st.Lookup(domain.DomainName(o.Ref.Namespace, o.Ref.Name)); vm != nil {
		if err := corpusDefineOnce(conn, validator, file, vm.XML); err != nil {
			t.Errorf("%s: %v", file, err)
			return "FAILED", err.Error()
		}
		return "rendered", "defined on qemu:///system and passed virt-xml-validate"
	}
	if len(errs) == 0 {
		t.Errorf("%s: %s was neither rendered nor reported", file, o.Ref)
		return "FAILED", "neither rendered nor reported"
	}
	if want, ok := corpusRejected[file]; ok {
		for _, d := range errs {
			if !errors.Is(d, want.rule) {
				t.Errorf("%s: unexpected error %v (want only %v)", file, d, want.rule)
			}
		}
		return "rejected", fmt.Sprintf("%s: %s (%s)", errs[0].Path, errs[0].Message, want.why)
	}
	var reasons []string
	for _, d := range errs {
		if !strings.HasPrefix(d.Message, "unsupported:") {
			t.Errorf("%s: %v is neither rendered nor unsupported", file, d)
		}
		reasons = append(reasons, d.Path+": "+d.Message)
	}
	return "unsupported", strings.Join(reasons, "; ")
}

// corpusDefineOnce validates the domain XML with virt-xml-validate, then defines
// it under a corpus name and UUID with libvirt's validation and undefines it
// at once. The source paths need not exist: defining does not open them.
func corpusDefineOnce(conn *libvirt.Connect, validator, file, xml string) error {
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(xml); err != nil {
		return fmt.Errorf("parse rendered XML: %w", err)
	}
	name := corpusPrefix + strings.TrimSuffix(file, ".yaml")
	dom.Name = name
	dom.UUID = desired.StableUUID("nodevirt-corpus", name)
	// libvirt requires the SMBIOS system UUID to be the domain's.
	for i := range dom.SysInfo {
		if s := dom.SysInfo[i].SMBIOS; s != nil && s.System != nil {
			for j := range s.System.Entry {
				if s.System.Entry[j].Name == "uuid" {
					s.System.Entry[j].Value = dom.UUID
				}
			}
		}
	}
	renamed, err := dom.Marshal()
	if err != nil {
		return fmt.Errorf("marshal: %w", err)
	}
	tmp, err := os.CreateTemp("", "nodevirt-corpus-*.xml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(renamed); err != nil {
		return err
	}
	tmp.Close()
	if out, err := exec.Command(validator, tmp.Name(), "domain").CombinedOutput(); err != nil {
		return fmt.Errorf("virt-xml-validate: %v: %s", err, strings.TrimSpace(string(out)))
	}
	// A leftover of an interrupted run would make the define an update.
	if old, err := conn.LookupDomainByName(name); err == nil {
		_ = old.UndefineFlags(libvirt.DOMAIN_UNDEFINE_NVRAM)
		old.Free()
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

// corpusDomainType is the domain type the agent picks here with
// --domain-type auto.
func corpusDomainType(t *testing.T) string {
	dt, err := agentDomainType()
	if err != nil {
		t.Fatal(err)
	}
	return dt.Type
}
