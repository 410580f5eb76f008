package domain

import (
	"crypto/sha1"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	k8sv1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.* from the current output")

// testContext is the host every test converts for.
var testContext = Context{
	Type:      "kvm",
	Arch:      "x86_64",
	DiskDir:   "/var/lib/nodevirt/disks",
	VolumeDir: "/var/lib/nodevirt/volumes",
	// The host files the tests' manifests name; hostfiles_test.go covers
	// the refusals.
	HostDirs: []string{"/srv", "/var/data"},
	// A two-socket host: node 0 has CPUs 0-7, node 1 CPUs 8-15.
	HostNUMA: []NUMANode{{ID: 0, CPUs: []uint{0, 1, 2, 3, 4, 5, 6, 7}}, {ID: 1, CPUs: []uint{8, 9, 10, 11, 12, 13, 14, 15}}},
	// Debian's virtiofsd package installs it there.
	Virtiofsd: "/usr/libexec/virtiofsd",
}

// assertGolden compares got with testdata/name, or rewrites the file under
// -update (go test ./reconciler/desired/domain -update).
func assertGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v; run `go test ./reconciler/desired/domain -update` to create it", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s\nIf the change is intended, run `go test ./reconciler/desired/domain -update`.", p, diff)
	}
}

// requireVirtXMLValidate fails (never skips) without the validator: a golden
// that was never checked against libvirt's schema proves nothing.
func requireVirtXMLValidate(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("virt-xml-validate")
	if err != nil {
		t.Fatalf("virt-xml-validate is not installed; it comes with the libvirt-clients package, which `make test` installs (hack/setup.sh)")
	}
	return bin
}

// assertSchemaValid runs virt-xml-validate FILE domain.
func assertSchemaValid(t *testing.T, file string) {
	t.Helper()
	bin := requireVirtXMLValidate(t)
	out, err := exec.Command(bin, file, "domain").CombinedOutput()
	if err != nil {
		t.Errorf("virt-xml-validate %s domain: %v\n%s", file, err, out)
	}
}

// assertLibvirtAccepts defines the XML on libvirt's in-process test driver
// with schema validation, then undefines it. The test driver runs libvirt's
// own parser and post-parse checks (things the schema cannot express, like
// "no <os><boot> together with per-device boot order").
func assertLibvirtAccepts(t *testing.T, xml string) {
	t.Helper()
	conn, err := libvirt.NewConnect("test:///default")
	if err != nil {
		t.Fatalf("open test:///default: %v", err)
	}
	defer conn.Close()
	dom, err := conn.DomainDefineXMLFlags(xml, libvirt.DOMAIN_DEFINE_VALIDATE)
	if err != nil {
		t.Errorf("libvirt rejects the domain: %v", err)
		return
	}
	defer dom.Free()
	if err := dom.Undefine(); err != nil {
		t.Errorf("undefine: %v", err)
	}
}

// loadManifest decodes a VirtualMachine or VirtualMachineInstance YAML file
// through manifests.Parse, so the spec carries exactly the defaults (and,
// for VMs, the instancetype and preference) the agent converts. Validation
// diagnostics of the manifest are the manifests package's business and are
// not checked here: a golden may show how the converter reports a field that
// admission would also reject.
func loadManifest(t *testing.T, file string) Input {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	set := manifests.Parse(filepath.Base(file), data, manifests.Options{})
	var (
		meta    metav1.ObjectMeta
		spec    *kubevirtv1.VirtualMachineInstanceSpec
		prefix  string
		kind    string
		ann     map[string]string
		annPath string
	)
	var labels map[string]string
	// Secrets and ConfigMaps in the same file are the VM's sources, as
	// reconciler/desired reads them from the repository.
	sources := map[SourceRef]Source{}
	for _, o := range set.Objects {
		switch v := o.Value.(type) {
		case *k8sv1.Secret:
			data := map[string][]byte{}
			for k, b := range v.Data {
				data[k] = b
			}
			for k, s := range v.StringData {
				data[k] = []byte(s)
			}
			sources[SourceRef{Kind: "Secret", Name: v.Name}] = Source{Data: data}
		case *k8sv1.ConfigMap:
			data := map[string][]byte{}
			for k, s := range v.Data {
				data[k] = []byte(s)
			}
			sources[SourceRef{Kind: "ConfigMap", Name: v.Name}] = Source{Data: data}
		}
	}
	for _, o := range set.Objects {
		switch v := o.Value.(type) {
		case *kubevirtv1.VirtualMachine:
			meta, spec, prefix, kind = v.ObjectMeta, &v.Spec.Template.Spec, "spec.template.spec", "VirtualMachine"
			ann, annPath = v.Spec.Template.ObjectMeta.Annotations, "spec.template.metadata.annotations"
			labels = v.Spec.Template.ObjectMeta.Labels
		case *kubevirtv1.VirtualMachineInstance:
			meta, spec, prefix, kind = v.ObjectMeta, &v.Spec, "spec", "VirtualMachineInstance"
			ann, annPath = v.Annotations, "metadata.annotations"
			labels = v.Labels
		default:
			continue
		}
		meta.Namespace = o.Ref.Namespace
		break
	}
	if spec == nil {
		t.Fatalf("%s: no decodable VirtualMachine or VirtualMachineInstance:\n%v", file, set.Diags.Err())
	}
	uuid := string(ptrOr(spec.Domain.Firmware).UUID)
	if uuid == "" {
		uuid = legacyUUID(meta.Namespace + "/" + meta.Name)
	}
	return Input{
		Namespace:  meta.Namespace,
		Name:       meta.Name,
		UUID:       uuid,
		Spec:       spec,
		Object:     kind + " " + meta.Namespace + "/" + meta.Name,
		PathPrefix: prefix,
		Sources:    sources,
		Labels:     labels,

		Annotations:     ann,
		AnnotationsPath: annPath,
	}
}

func ptrOr[T any](p *T) *T {
	if p == nil {
		return new(T)
	}
	return p
}

// legacyUUID is KubeVirt's UUIDv5 (SHA-1) in its firmware namespace, used
// here only to give test VMs without firmware.uuid a fixed UUID.
func legacyUUID(name string) string {
	ns := []byte{0x6a, 0x1a, 0x24, 0xa1, 0x40, 0x61, 0x46, 0x07, 0x8b, 0xf4, 0xa3, 0x96, 0x3d, 0x0c, 0x58, 0x95}
	h := sha1.Sum(append(ns, name...))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// render prints diagnostics and artifacts for a .golden.txt file.
func render(r Result) []byte {
	var b strings.Builder
	b.WriteString("# diagnostics\n")
	for _, d := range r.Diags {
		fmt.Fprintf(&b, "%s\n", d.Error())
	}
	b.WriteString("# artifacts\n")
	for _, a := range r.Artifacts {
		fmt.Fprintf(&b, "%s volume=%s path=%s", a.Kind, a.Volume, a.Path)
		if a.Size != 0 {
			fmt.Fprintf(&b, " size=%d", a.Size)
		}
		if a.Create {
			b.WriteString(" create")
		}
		for _, kv := range [][2]string{{"label", a.Label}, {"image", a.Image}, {"imagePath", a.ImagePath}, {"pullPolicy", a.PullPolicy}, {"kernelPath", a.KernelPath}, {"initrdPath", a.InitrdPath}} {
			if kv[1] != "" {
				fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
			}
		}
		if a.Digest != "" {
			fmt.Fprintf(&b, " digest=%s", a.Digest)
		}
		b.WriteString("\n")
		names := seedFileNames
		if a.Kind == ConfigISO {
			names = sortedKeys(a.Files)
		}
		for _, name := range names {
			content, ok := a.Files[name]
			if !ok {
				continue
			}
			fmt.Fprintf(&b, "  %s:\n", name)
			for _, line := range strings.SplitAfter(string(content), "\n") {
				if line != "" {
					fmt.Fprintf(&b, "    | %s", strings.TrimSuffix(line, "\n")+"\n")
				}
			}
		}
		// A Secret's values never reach a report: only their names.
		for _, name := range sortedKeys(a.SecretFiles) {
			fmt.Fprintf(&b, "  %s: (from a Secret, %d bytes)\n", name, len(a.SecretFiles[name]))
		}
		if a.Kind != ConfigISO && len(a.Files) > 0 && len(a.Files) != countKnown(a.Files) {
			b.WriteString("  (unexpected file names)\n")
		}
	}
	return []byte(b.String())
}

// seedFileNames are the files of NoCloud and ConfigDrive images, in the
// order goldens print them.
var seedFileNames = []string{
	"user-data", "meta-data", "network-config",
	configDriveUserData, configDriveMetaData, configDriveNetworkData,
}

func countKnown(files map[string][]byte) int {
	n := 0
	for _, k := range seedFileNames {
		if _, ok := files[k]; ok {
			n++
		}
	}
	return n
}

// assertPathsAreFields checks that every diagnostic names a real field of
// the input (butane's VerifyReport): strip the prefix, then walk the spec.
func assertPathsAreFields(t *testing.T, in Input, diags diag.List) {
	t.Helper()
	for _, d := range diags {
		if key, ok := strings.CutPrefix(d.Path, strings.TrimSuffix(annotationPath(in, ""), `"]`)); ok {
			if _, set := in.Annotations[strings.TrimSuffix(key, `"]`)]; !set {
				t.Errorf("diagnostic path %q names an annotation the input does not have", d.Path)
			}
			continue
		}
		rel, ok := strings.CutPrefix(d.Path, in.PathPrefix+".")
		if !ok {
			t.Errorf("diagnostic path %q lacks the prefix %q", d.Path, in.PathPrefix)
			continue
		}
		if err := resolvePath(reflect.ValueOf(in.Spec).Elem(), rel); err != nil {
			t.Errorf("diagnostic path %q is not a field of the input: %v", d.Path, err)
		}
	}
}

// resolvePath follows a concrete path ("domain.devices.disks[1].name").
func resolvePath(v reflect.Value, p string) error {
	for _, seg := range strings.Split(p, ".") {
		name, idx := seg, -1
		if open := strings.IndexByte(seg, '['); open >= 0 {
			n, err := strconv.Atoi(strings.TrimSuffix(seg[open+1:], "]"))
			if err != nil {
				return fmt.Errorf("bad index in %q", seg)
			}
			name, idx = seg[:open], n
		}
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return fmt.Errorf("%q is under an unset field", seg)
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return fmt.Errorf("%q: not an object", seg)
		}
		f, ok := fieldByJSON(v, name)
		if !ok {
			return fmt.Errorf("no field %q", name)
		}
		v = f
		if idx >= 0 {
			if v.Kind() != reflect.Slice || idx >= v.Len() {
				return fmt.Errorf("%q: index out of range", seg)
			}
			v = v.Index(idx)
		}
	}
	return nil
}

// Small constructors for literal specs in the configurator tests.

func ptr[T any](v T) *T { return &v }

func qty(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

// testInput wraps a spec the way loadManifest does for a VM "lab/vm".
func testInput(spec kubevirtv1.VirtualMachineInstanceSpec) Input {
	return Input{
		Namespace:  "lab",
		Name:       "vm",
		UUID:       "0d3a1b7e-6f2c-4c1d-9a55-3e2f1f0c7a10",
		Spec:       &spec,
		Object:     "VirtualMachine lab/vm",
		PathPrefix: "spec.template.spec",
	}
}

// run runs one configurator alone against an empty domain. Configurator
// tests compare the whole domain it returns: that shows which elements the
// configurator owns and that it touches no others (KubeVirt's
// compute/*_test.go pattern).
func run(c configurator, in Input) (*libvirtxml.Domain, *output) {
	dom := &libvirtxml.Domain{}
	out := &output{object: in.Object, prefix: in.PathPrefix}
	c(in, testContext, dom, out)
	return dom, out
}

// diagLine is a diagnostic reduced to what a configurator test pins.
type diagLine struct{ Severity, Path, Message string }

func diagLines(out *output) []diagLine {
	var lines []diagLine
	for _, d := range out.diags {
		lines = append(lines, diagLine{string(d.Severity), d.Path, d.Message})
	}
	return lines
}
