package manifests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

func TestParse_unknownField(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "unknown-fields.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := Parse("unknown-fields.yaml", data, Options{})
	const obj = "VirtualMachine default/typos"
	want := []summary{
		{diag.Error, 5, 3, obj, "metadata.lables"},
		{diag.Error, 13, 11, obj, "spec.template.spec.domain.cpu.sokets"},
		{diag.Error, 18, 15, obj, "spec.template.spec.domain.devices.disks[0].disk.buss"},
	}
	if diff := cmp.Diff(want, summarize(s.Diags)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	for _, d := range s.Diags {
		if !errors.Is(d, ErrUnknownField) {
			t.Errorf("%v: not ErrUnknownField", d)
		}
	}
	if s.Incomplete {
		t.Error("Incomplete = true; unknown fields leave the identity known")
	}
	if len(s.Objects) != 1 || s.Objects[0].Valid || s.Objects[0].Value == nil {
		t.Errorf("want one invalid object that still decoded, got %+v", s.Objects)
	}
}

func TestParse_typeError(t *testing.T) {
	s := parse(t, `apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata:
  name: vmi
spec:
  domain:
    cpu:
      cores: "two"
      sockets: -1
    memory:
      guest: 1Gx
    devices:
      autoattachSerialConsole: yes
      disks: {}
`)
	const obj = "VirtualMachineInstance default/vmi"
	want := []summary{
		{diag.Error, 8, 14, obj, "spec.domain.cpu.cores"},
		{diag.Error, 9, 16, obj, "spec.domain.cpu.sockets"},
		{diag.Error, 11, 14, obj, "spec.domain.memory.guest"},
		{diag.Error, 13, 32, obj, "spec.domain.devices.autoattachSerialConsole"},
		{diag.Error, 14, 14, obj, "spec.domain.devices.disks"},
	}
	if diff := cmp.Diff(want, summarize(s.Diags)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	for _, d := range s.Diags {
		if !errors.Is(d, ErrType) {
			t.Errorf("%v: not ErrType", d)
		}
	}
	if got, want := s.Diags[0].Message, `wrong type: got string "two", want a non-negative integer (uint32)`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	if s.Incomplete || len(s.Objects) != 1 || s.Objects[0].Valid || s.Objects[0].Value != nil {
		t.Errorf("want one invalid object without a value and a complete set, got Incomplete=%v %+v", s.Incomplete, s.Objects)
	}
}

func TestParse_syntaxError(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src      string
		line     int
		wantObjs int
	}{
		{"badIndent", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n   bad: indent\n", 10, 1},
		{"tab", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: a\n", 4, 0},
		{"unclosedFlow", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  x: [1, 2\n", 6, 0},
		{"outdentedKey", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  x: \"1\"\n y: \"2\"\n", 7, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Parse("cm.yaml", []byte(tc.src), Options{})
			if !s.Incomplete {
				t.Error("Incomplete = false")
			}
			if len(s.Diags) != 1 {
				t.Fatalf("want one diagnostic, got %v", s.Diags)
			}
			d := s.Diags[0]
			if d.File != "cm.yaml" || d.Line != tc.line || !errors.Is(d, ErrSyntax) {
				t.Errorf("got %q (line %d), want cm.yaml line %d and ErrSyntax", d.Error(), d.Line, tc.line)
			}
			if len(s.Objects) != tc.wantObjs {
				t.Errorf("got %d objects, want %d (documents before the error still decode)", len(s.Objects), tc.wantObjs)
			}
		})
	}
}

func TestParse_identity(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want error
		line int
		path string
	}{
		{"unknownKind", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n", ErrUnknownKind, 2, "kind"},
		{"kindInWrongGroup", "apiVersion: kubevirt.io/v2\nkind: VirtualMachine\nmetadata:\n  name: a\n", ErrUnknownKind, 2, "kind"},
		{"missingKind", "apiVersion: v1\nmetadata:\n  name: a\n", ErrMissingKind, 1, ""},
		{"missingAPIVersion", "kind: ConfigMap\nmetadata:\n  name: a\n", ErrMissingAPIVersion, 1, ""},
		{"missingName", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n", ErrMissingName, 3, ""},
		{"notAMapping", "- apiVersion: v1\n", ErrNotMapping, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := parse(t, tc.src)
			if !s.Incomplete {
				t.Error("Incomplete = false")
			}
			if len(s.Objects) != 0 {
				t.Errorf("got objects %v, want none", s.Objects)
			}
			if len(s.Diags) != 1 {
				t.Fatalf("want one diagnostic, got %v", s.Diags)
			}
			d := s.Diags[0]
			if !errors.Is(d, tc.want) || d.Line != tc.line || d.Path != tc.path || d.File != "test.yaml" {
				t.Errorf("got %q (line %d, path %q), want %v at line %d path %q", d.Error(), d.Line, d.Path, tc.want, tc.line, tc.path)
			}
		})
	}
	s := parse(t, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n")
	if got, want := s.Diags[0].Message, `unknown kind "Pod" in apiVersion "v1"`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

func TestParse_duplicateKey(t *testing.T) {
	s := parse(t, `apiVersion: v1
kind: ConfigMap
metadata:
  name: a
data:
  x: "1"
  x: "2"
`)
	want := []summary{{diag.Error, 7, 3, "ConfigMap default/a", "data.x"}}
	if diff := cmp.Diff(want, summarize(s.Diags)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	if !errors.Is(s.Diags[0], ErrDuplicateKey) || s.Objects[0].Valid {
		t.Errorf("want ErrDuplicateKey and an invalid object, got %v", s.Diags[0])
	}
}

// Every repeat of a key names the line of the one kept, a quoted "<<" being
// a key like any other.
func TestParse_duplicateKeyNamesFirst(t *testing.T) {
	s := parse(t, `apiVersion: v1
kind: ConfigMap
metadata:
  name: a
data:
  "<<": a
  x: "1"
  y: "2"
  x: "3"
  "<<": b
  x: "4"
`)
	var got []string
	for _, d := range s.Diags {
		got = append(got, fmt.Sprintf("%d %s", d.Line, d.Message))
	}
	want := []string{
		`9 duplicate key "x" (first at line 7)`,
		`10 duplicate key "<<" (first at line 6)`,
		`11 duplicate key "x" (first at line 7)`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
}

func TestParse_mergeKey(t *testing.T) {
	s := parse(t, `apiVersion: v1
kind: ConfigMap
metadata:
  name: a
  annotations: &common
    owner: ops
  labels:
    <<: *common
`)
	want := []summary{{diag.Error, 8, 5, "ConfigMap default/a", "metadata.labels.<<"}}
	if diff := cmp.Diff(want, summarize(s.Diags)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	if !errors.Is(s.Diags[0], ErrMergeKey) {
		t.Errorf("want ErrMergeKey, got %v", s.Diags[0])
	}
}

// Tags decide scalar types, as in YAML; a quoted or !!str-tagged number is a
// string, and anchors/aliases work.
func TestParse_tagsAndAliases(t *testing.T) {
	s := parse(t, `apiVersion: v1
kind: ConfigMap
metadata:
  name: a
  labels:
    version: !!str 3
    quoted: "4"
    when: 2024-01-02
  annotations: &a
    x: "y"
data: *a
`)
	if len(s.Diags) != 0 {
		t.Fatalf("unexpected diagnostics: %v", s.Diags)
	}
	o := s.Objects[0]
	want := map[string]string{"version": "3", "quoted": "4", "when": "2024-01-02"}
	if diff := cmp.Diff(want, o.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"x": "y"}, o.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
}

func TestParse_emptyDocuments(t *testing.T) {
	s := parse(t, "---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\n")
	if len(s.Diags) != 0 || s.Incomplete || len(s.Objects) != 1 {
		t.Fatalf("got diags %v, incomplete %v, %d objects; want one object and nothing else", s.Diags, s.Incomplete, len(s.Objects))
	}
	if o := s.Objects[0]; o.Line != 4 || o.Col != 1 {
		t.Errorf("object starts at %d:%d, want 4:1", o.Line, o.Col)
	}
}

func TestParse_namespaces(t *testing.T) {
	src := `apiVersion: v1
kind: ConfigMap
metadata:
  name: plain
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: placed
  namespace: tenant
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
provisioner: kubevirt.io.hostpath-provisioner
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv1
  namespace: ignored
spec:
  capacity:
    storage: 1Gi
`
	for _, tc := range []struct {
		name string
		opt  Options
		want []string
	}{
		{"default", Options{}, []string{"ConfigMap default/plain", "ConfigMap tenant/placed", "StorageClass local", "PersistentVolume pv1"}},
		{"option", Options{DefaultNamespace: "edge"}, []string{"ConfigMap edge/plain", "ConfigMap tenant/placed", "StorageClass local", "PersistentVolume pv1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Parse("ns.yaml", []byte(src), tc.opt)
			var got []string
			for _, o := range s.Objects {
				got = append(got, o.Ref.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("refs (-want +got):\n%s", diff)
			}
			want := []summary{{diag.Warning, 22, 3, "PersistentVolume pv1", "metadata.namespace"}}
			if diff := cmp.Diff(want, summarize(s.Diags)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			for _, o := range s.Objects {
				if !o.Valid {
					t.Errorf("%s invalid; a warning must not invalidate", o.Ref)
				}
			}
		})
	}
}

func TestParse_duplicateObjects(t *testing.T) {
	s := parse(t, `apiVersion: v1
kind: ConfigMap
metadata:
  name: a
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: b
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: a
  namespace: default
`)
	want := []summary{{diag.Error, 11, 1, "ConfigMap default/a", ""}}
	if diff := cmp.Diff(want, summarize(s.Diags)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	if !errors.Is(s.Diags[0], ErrDuplicateObject) {
		t.Errorf("want ErrDuplicateObject, got %v", s.Diags[0])
	}
	valid := map[int]bool{}
	for i, o := range s.Objects {
		valid[i] = o.Valid
	}
	if diff := cmp.Diff(map[int]bool{0: false, 1: true, 2: false}, valid); diff != "" {
		t.Errorf("Valid by document (-want +got):\n%s", diff)
	}
}

func TestParse_hostKinds(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "host-kinds.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := Parse("host-kinds.yaml", data, Options{})
	checkPaths(t, s)
	// workloadUpdateStrategy is a real HyperConverged field nodevirt does not
	// read: a warning, and the object stays valid.
	want := []summary{{diag.Warning, 33, 3, "HyperConverged openshift-cnv/kubevirt-hyperconverged", "spec.workloadUpdateStrategy"}}
	if diff := cmp.Diff(want, summarize(s.Diags)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	if len(s.Objects) != 3 {
		t.Fatalf("got %d objects, want 3", len(s.Objects))
	}
	for _, o := range s.Objects {
		if !o.Valid || o.Value == nil {
			t.Errorf("%s: Valid=%v Value=%v", o.Ref, o.Valid, o.Value)
		}
	}
	hc := s.Objects[0].Value.(*HyperConverged)
	if got := hc.Spec.PermittedHostDevices.PciHostDevices[1]; got.ResourceName != "nvidia.com/TU104GL_Tesla_T4" || !got.ExternalResourceProvider {
		t.Errorf("pciHostDevices[1] = %+v", got)
	}
	if got := hc.Spec.CertConfig.Server.RenewBefore.Duration.String(); got != "12h0m0s" {
		t.Errorf("server.renewBefore = %s", got)
	}
	mc := s.Objects[2].Value.(*MachineConfig)
	if diff := cmp.Diff([]string{"intel_iommu=on"}, mc.Spec.KernelArguments); diff != "" {
		t.Errorf("kernelArguments (-want +got):\n%s", diff)
	}
	if got, want := string(mc.Spec.Config), `{"ignition":{"version":"3.2.0"}}`; got != want {
		t.Errorf("config = %s, want %s", got, want)
	}
	if got := s.Objects[2].Ref.String(); got != "MachineConfig 100-worker-iommu" {
		t.Errorf("MachineConfig ref = %q, want cluster-scoped", got)
	}
}

func TestObject_Pos(t *testing.T) {
	s := parse(t, `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: vm
  labels:
    kubevirt.io/vm: vm
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        devices:
          disks:
          - name: a
            disk: {}
          - disk:
              bus: virtio
            name: b
        memory:
          guest: 1Gi
      volumes:
      - {name: a, emptyDisk: {capacity: 1Gi}}
      - name: b
        emptyDisk:
          capacity: 1Gi
`)
	o := s.Objects[0]
	type lc struct{ Line, Col int }
	for _, tc := range []struct {
		path string
		want lc
	}{
		{"", lc{1, 1}},
		{"spec.template.spec.domain.devices.disks[1].name", lc{18, 13}},
		{"spec.template.spec.domain.devices.disks[1].disk.bus", lc{17, 15}},
		{"spec.template.spec.domain.devices.disks[1]", lc{16, 13}},
		{"spec.template.spec.domain.devices.disks[1].cache", lc{16, 13}}, // unset: its disk
		{"spec.template.spec.domain.devices.disks[5].name", lc{13, 11}},  // defaulted disk: the list
		{"spec.template.spec.volumes[0].emptyDisk.capacity", lc{22, 31}}, // flow style
		{`metadata.labels["kubevirt.io/vm"]`, lc{6, 5}},
		{"spec.template.spec.networks[0].pod", lc{10, 5}}, // nearest: template.spec
	} {
		t.Run(tc.path, func(t *testing.T) {
			line, col := o.Pos(tc.path)
			if diff := cmp.Diff(tc.want, lc{line, col}); diff != "" {
				t.Errorf("Pos (-want +got):\n%s", diff)
			}
		})
	}
}

func TestObject_Errorf(t *testing.T) {
	o := &Object{Ref: Ref{Kind: "VirtualMachine", Namespace: "ns", Name: "vm"}, File: "a/vm.yaml", Line: 3, Col: 1,
		pos: map[string]position{"spec": {7, 1}}}
	d := o.Errorf("spec.template", "%w: got %q", ErrTemplateRequired, "x")
	want := diag.Diagnostic{Severity: diag.Error, File: "a/vm.yaml", Line: 7, Col: 1, Object: "VirtualMachine ns/vm",
		Path: "spec.template", Message: `template is required: got "x"`}
	if diff := cmp.Diff(want, d, cmpIgnoreErr); diff != "" {
		t.Errorf("Errorf (-want +got):\n%s", diff)
	}
	if !errors.Is(d, ErrTemplateRequired) {
		t.Error("errors.Is(d, ErrTemplateRequired) = false")
	}
	if w := o.Warnf("", "careful"); w.Severity != diag.Warning || w.Line != 3 || w.Error() != "a/vm.yaml:3:1: warning: VirtualMachine ns/vm: careful" {
		t.Errorf("Warnf = %+v", w)
	}
}

var cmpIgnoreErr = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Err" }, cmp.Ignore())

func TestRef_String(t *testing.T) {
	for _, tc := range []struct {
		ref  Ref
		want string
	}{
		{Ref{"VirtualMachine", "default", "vm1"}, "VirtualMachine default/vm1"},
		{Ref{"StorageClass", "", "local"}, "StorageClass local"},
	} {
		if got := tc.ref.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.ref, got, tc.want)
		}
	}
}

func TestParentPath(t *testing.T) {
	got := []string{}
	for p := `spec.a[2]["x.y[1]"].b`; p != ""; p = parentPath(p) {
		got = append(got, p)
	}
	want := []string{`spec.a[2]["x.y[1]"].b`, `spec.a[2]["x.y[1]"]`, "spec.a[2]", "spec.a", "spec"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ancestors (-want +got):\n%s", diff)
	}
}

func TestParse_numericName(t *testing.T) {
	s := parse(t, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: 2024\n")
	want := []summary{{diag.Error, 4, 9, "ConfigMap default/2024", "metadata.name"}}
	if diff := cmp.Diff(want, summarize(s.Diags)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	if s.Incomplete {
		t.Error("Incomplete = true; the name is known, only its type is wrong")
	}
}

func TestParse_secretBase64(t *testing.T) {
	s := parse(t, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  ok: aGk=\n  bad: 'not base64!'\n")
	want := []summary{{diag.Error, 7, 8, "Secret default/s", "data.bad"}}
	if diff := cmp.Diff(want, summarize(s.Diags)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
}

// Nested aliases must not make a small file expand without bound.
func TestParse_aliasBomb(t *testing.T) {
	src := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n  annotations:\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 1; i <= 8; i++ {
		prev := fmt.Sprintf("*a%d", i-1)
		src += fmt.Sprintf("    a%d: &a%d [%s, %s, %s, %s, %s, %s, %s, %s, %s, %s]\n", i, i, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
	}
	s := parse(t, src)
	// Refused before conversion, so the identity is unknown too.
	if !errors.Is(s.Diags.Err(), ErrDocumentTooLarge) || len(s.Objects) != 0 || !s.Incomplete {
		t.Errorf("want the document refused as too large, got %v", s.Diags)
	}
}

// A syntax error loses only its own document: the documents after it are
// read, with their own errors and file lines, in the same pass.
func TestParse_syntaxErrorResumes(t *testing.T) {
	src := `apiVersion: v1
kind: ConfigMap
metadata: {name: a}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: b
   bad: indent
---
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: vmi}
spec:
  domain: {}
---
data: [1, 2
---
apiVersion: v1
kind: ConfigMap
metadata: {name: e}
`
	s := Parse("cm.yaml", []byte(src), Options{})
	if !s.Incomplete {
		t.Error("Incomplete = false: the broken documents are unknown")
	}
	var got []string
	for _, d := range s.Diags {
		got = append(got, fmt.Sprintf("%d %s", d.Line, d.Path))
	}
	want := []string{"9 ", "15 spec.domain.memory", "17 "}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s\n%v", diff, s.Diags)
	}
	var refs []string
	for _, o := range s.Objects {
		refs = append(refs, o.Ref.String())
	}
	if diff := cmp.Diff([]string{"ConfigMap default/a", "VirtualMachineInstance default/vmi", "ConfigMap default/e"}, refs); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	if n := len(s.Diags.Errors()); n != 3 || !errors.Is(s.Diags[0], ErrSyntax) || !errors.Is(s.Diags[2], ErrSyntax) {
		t.Errorf("want two syntax errors around the VMI's own: %v", s.Diags)
	}
	// A syntax error in the last document leaves nothing to resume.
	if s := Parse("x.yaml", []byte("a: [1\n"), Options{}); len(s.Diags) != 1 {
		t.Errorf("got %v", s.Diags)
	}
}
