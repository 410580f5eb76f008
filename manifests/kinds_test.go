package manifests

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kubevirtv1 "kubevirt.io/api/core/v1"
	instancetypev1beta1 "kubevirt.io/api/instancetype/v1beta1"
	snapshotv1beta1 "kubevirt.io/api/snapshot/v1beta1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// minimalSpec is a spec each kind accepts, so a version's table row shows
// only what the version does.
func minimalSpec(kind string) string {
	switch kind {
	case "VirtualMachine":
		return "spec:\n  runStrategy: Halted\n  template:\n    spec:\n      domain:\n        devices: {}\n        memory: {guest: 1Gi}\n"
	case "VirtualMachineInstance":
		return "spec:\n  domain:\n    devices: {}\n    memory: {guest: 1Gi}\n"
	case "VirtualMachineInstancetype", "VirtualMachineClusterInstancetype":
		return "spec:\n  cpu: {guest: 1}\n  memory: {guest: 1Gi}\n"
	case "VirtualMachineSnapshot":
		return "spec:\n  source: {apiGroup: kubevirt.io, kind: VirtualMachine, name: vm}\n"
	case "VirtualMachineSnapshotContent":
		return "spec:\n  virtualMachineSnapshotName: snap\n  source: {}\n"
	case "NetworkAttachmentDefinition":
		return "spec:\n  config: '{\"cniVersion\": \"0.3.1\", \"type\": \"bridge\", \"bridge\": \"br0\"}'\n"
	case "VirtualMachineRestore":
		return "spec:\n  target: {apiGroup: kubevirt.io, kind: VirtualMachine, name: vm}\n  virtualMachineSnapshotName: snap\n"
	}
	return ""
}

// TestKinds_everyVersion reads every apiVersion × kind nodevirt knows: the
// served ones decode into the version the rest of nodevirt reads (and say
// so in the value's apiVersion), the removed ones are refused naming the one
// to use, and unknown versions of known kinds name the served ones.
func TestKinds_everyVersion(t *testing.T) {
	type row struct {
		apiVersion, kind string
		// to is the value's apiVersion after decoding; "" for a refusal.
		to string
		// err is the refusal's text.
		err string
	}
	var rows []row
	for _, k := range kinds() {
		to := k.apiVersion
		if k.to != "" {
			to = k.to
		}
		rows = append(rows, row{k.apiVersion, k.kind, to, ""})
	}
	for _, r := range removedVersions() {
		rows = append(rows, row{r.apiVersion, r.kind, "", fmt.Sprintf("apiVersion %s is not served for kind %s; use %s", r.apiVersion, r.kind, r.use)})
	}
	// Spelled out, so the table above cannot drift from what upstream serves.
	for _, want := range []struct{ apiVersion, kind string }{
		{"kubevirt.io/v1alpha3", "VirtualMachine"}, {"kubevirt.io/v1alpha3", "VirtualMachineInstance"},
		{"hco.kubevirt.io/v1", "HyperConverged"}, {"hco.kubevirt.io/v1beta1", "HyperConverged"},
		{"hostpathprovisioner.kubevirt.io/v1alpha1", "HostPathProvisioner"}, {"hostpathprovisioner.kubevirt.io/v1beta1", "HostPathProvisioner"},
		{"snapshot.kubevirt.io/v1alpha1", "VirtualMachineSnapshot"}, {"cdi.kubevirt.io/v1alpha1", "CDI"},
		{"machineconfiguration.openshift.io/v1", "MachineConfig"},
	} {
		if _, ok := lookupKind(want.apiVersion, want.kind); !ok {
			t.Errorf("%s %s is served upstream but not read", want.apiVersion, want.kind)
		}
	}
	for _, r := range rows {
		t.Run(r.apiVersion+"/"+r.kind, func(t *testing.T) {
			src := fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata:\n  name: x\n%s", r.apiVersion, r.kind, minimalSpec(r.kind))
			s := parse(t, src)
			if len(s.Objects) != 1 {
				t.Fatalf("got %d objects: %v", len(s.Objects), s.Diags)
			}
			o := s.Objects[0]
			if s.Incomplete {
				t.Errorf("set is incomplete: the object's identity is known")
			}
			if r.err != "" {
				errs := s.Diags.Errors()
				if len(errs) != 1 || errs[0].Message != r.err || errs[0].Path != "apiVersion" || errs[0].Line != 1 || !errors.Is(errs[0], ErrNotServed) {
					t.Errorf("want one error %q at apiVersion, got %v", r.err, s.Diags)
				}
				if o.Valid || o.Value != nil {
					t.Errorf("a refused version must leave the object invalid without a value")
				}
				return
			}
			if s.Diags.HasErrors() {
				t.Fatalf("unexpected errors: %v", s.Diags.Errors())
			}
			if !o.Valid || o.Value == nil {
				t.Fatalf("Valid=%v Value=%v", o.Valid, o.Value)
			}
			if o.APIVersion != r.apiVersion {
				t.Errorf("Object.APIVersion = %q, want the document's %q", o.APIVersion, r.apiVersion)
			}
			if k, ok := o.Value.(interface{ GetObjectKind() schema.ObjectKind }); ok {
				if got := k.GetObjectKind().GroupVersionKind().GroupVersion().String(); got != r.to {
					t.Errorf("value apiVersion = %q, want %q", got, r.to)
				}
			}
		})
	}
}

func TestKinds_servedValueTypes(t *testing.T) {
	s := parse(t, `apiVersion: kubevirt.io/v1alpha3
kind: VirtualMachine
metadata: {name: vm}
`+minimalSpec("VirtualMachine")+`---
apiVersion: snapshot.kubevirt.io/v1alpha1
kind: VirtualMachineSnapshot
metadata: {name: s}
`+minimalSpec("VirtualMachineSnapshot")+`---
apiVersion: cdi.kubevirt.io/v1alpha1
kind: CDI
metadata: {name: cdi}
spec:
  config:
    scratchSpaceStorageClass: local
---
apiVersion: instancetype.kubevirt.io/v1beta1
kind: VirtualMachineInstancetype
metadata: {name: it}
`+minimalSpec("VirtualMachineInstancetype"))
	if s.Diags.HasErrors() {
		t.Fatal(s.Diags)
	}
	if _, ok := s.Objects[0].Value.(*kubevirtv1.VirtualMachine); !ok {
		t.Errorf("v1alpha3 VM decoded as %T", s.Objects[0].Value)
	}
	if _, ok := s.Objects[1].Value.(*snapshotv1beta1.VirtualMachineSnapshot); !ok {
		t.Errorf("v1alpha1 snapshot decoded as %T", s.Objects[1].Value)
	}
	cdi, ok := s.Objects[2].Value.(*cdiv1beta1.CDI)
	if !ok || cdi.Spec.Config == nil || *cdi.Spec.Config.ScratchSpaceStorageClass != "local" {
		t.Errorf("v1alpha1 CDI decoded as %#v", s.Objects[2].Value)
	}
	if _, ok := s.Objects[3].Value.(*instancetypev1beta1.VirtualMachineInstancetype); !ok {
		t.Errorf("instancetype decoded as %T", s.Objects[3].Value)
	}
}

func TestKinds_unknownVersionNamesServed(t *testing.T) {
	s := parse(t, "apiVersion: kubevirt.io/v2\nkind: VirtualMachine\nmetadata: {name: vm}\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
	if !s.Incomplete {
		t.Error("an unknown apiVersion/kind must make the set incomplete")
	}
	errs := s.Diags.Errors()
	if len(errs) != 2 {
		t.Fatalf("got %v", s.Diags)
	}
	for _, e := range errs {
		if !errors.Is(e, ErrUnknownKind) {
			t.Errorf("%v: want ErrUnknownKind", e)
		}
	}
	if m := errs[0].Message; !strings.Contains(m, `"kubevirt.io/v2"`) || !strings.Contains(m, "kubevirt.io/v1 or kubevirt.io/v1alpha3") {
		t.Errorf("message %q must name the version written and the served ones", m)
	}
	if m := errs[1].Message; m != `unknown kind "Widget" in apiVersion "example.com/v1"` {
		t.Errorf("message %q", m)
	}
}

// A removed version still reports the object's other errors in the same
// pass (here its name) and keeps it out of pruning decisions.
func TestKinds_notServedKeepsOtherErrors(t *testing.T) {
	s := parse(t, "apiVersion: cdi.kubevirt.io/v1alpha1\nkind: DataVolume\nmetadata: {name: Bad_Name}\nspec: {}\n")
	var got []string
	for _, d := range s.Diags.Errors() {
		got = append(got, d.Path)
	}
	if diff := cmp.Diff([]string{"apiVersion", "metadata.name"}, got); diff != "" {
		t.Errorf("error paths (-want +got):\n%s\n%v", diff, s.Diags)
	}
}

func TestKinds_hyperConvergedV1(t *testing.T) {
	s := parse(t, `apiVersion: hco.kubevirt.io/v1
kind: HyperConverged
metadata: {name: kubevirt-hyperconverged, namespace: openshift-cnv}
spec:
  featureGates:
  - name: alignCPUs
    state: Enabled
  virtualization:
    permittedHostDevices:
      pciHostDevices:
      - pciDeviceSelector: "10DE:1DB6"
        resourceName: nvidia.com/GV100GL_Tesla_V100
  storage:
    scratchSpaceStorageClass: local
    workloadResourceRequirements:
      limits: {cpu: "2"}
  security:
    certConfig:
      ca: {duration: 1h, renewBefore: 2h}
---
apiVersion: hco.kubevirt.io/v1
kind: HyperConverged
metadata: {name: seed, namespace: openshift-cnv}
spec:
  permittedHostDevices:
    pciHostDevices:
    - pciDeviceSelector: "10DE:1EB8"
      resourceName: nvidia.com/TU104GL_Tesla_T4
`)
	hc, ok := s.Objects[0].Value.(*HyperConverged)
	if !ok {
		t.Fatalf("decoded as %T: %v", s.Objects[0].Value, s.Diags)
	}
	if got := hc.Spec.PermittedHostDevices.PciHostDevices[0].ResourceName; got != "nvidia.com/GV100GL_Tesla_V100" {
		t.Errorf("permittedHostDevices = %q", got)
	}
	if hc.Spec.ScratchSpaceStorageClass == nil || *hc.Spec.ScratchSpaceStorageClass != "local" {
		t.Errorf("scratchSpaceStorageClass = %v", hc.Spec.ScratchSpaceStorageClass)
	}
	if rr := hc.Spec.ResourceRequirements; rr == nil || rr.StorageWorkloads.Limits.Cpu().String() != "2" {
		t.Errorf("resourceRequirements = %+v", rr)
	}
	if hc.APIVersion != "hco.kubevirt.io/v1beta1" {
		t.Errorf("value apiVersion %q", hc.APIVersion)
	}
	// The v1 certConfig is checked where it is written.
	want := []summary{
		{diag.Error, 19, 26, "HyperConverged openshift-cnv/kubevirt-hyperconverged", "spec.security.certConfig.ca.renewBefore"},
		{diag.Warning, 25, 3, "HyperConverged openshift-cnv/seed", "spec.permittedHostDevices"},
	}
	if diff := cmp.Diff(want, summarize(s.Diags)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s\n%v", diff, s.Diags)
	}
	// Later stages name the v1beta1 paths; they point where v1 writes them.
	if line, _ := s.Objects[0].Pos("spec.permittedHostDevices.pciHostDevices[0].resourceName"); line != 12 {
		t.Errorf("v1beta1 path of a v1 setting is at line %d, want 12", line)
	}
	seed := s.Objects[1].Value.(*HyperConverged)
	if got := seed.Spec.PermittedHostDevices.PciHostDevices[0].ResourceName; got != "nvidia.com/TU104GL_Tesla_T4" {
		t.Errorf("the seed's flat permittedHostDevices = %q", got)
	}
	if !s.Objects[1].Valid {
		t.Error("the seed's layout must stay valid")
	}
}

// Kinds the upstream projects serve but nodevirt does not run are refused
// by name, at kind, and (naming no VM nodevirt could have defined) do not
// suspend pruning.
func TestKinds_unsupportedRefusedByName(t *testing.T) {
	for _, u := range unsupportedKinds() {
		t.Run(u.kind, func(t *testing.T) {
			ns := "\n  namespace: vms"
			src := fmt.Sprintf("apiVersion: %s/v1beta1\nkind: %s\nmetadata:\n  name: x%s\nspec: {}\n", u.group, u.kind, ns)
			s := parse(t, src)
			if s.Incomplete {
				t.Error("an unsupported kind must not suspend pruning")
			}
			errs := s.Diags.Errors()
			if len(errs) != 1 || !errors.Is(errs[0], ErrUnsupportedKind) || errs[0].Path != "kind" || errs[0].Line != 2 {
				t.Fatalf("want one ErrUnsupportedKind at kind, got %v", s.Diags)
			}
			want := fmt.Sprintf("kind %s (%s/v1beta1) is not supported by nodevirt: %s", u.kind, u.group, u.why)
			if errs[0].Message != want {
				t.Errorf("message %q, want %q", errs[0].Message, want)
			}
			o := s.Objects[0]
			if o.Valid || o.Value != nil {
				t.Error("an unsupported kind must be invalid without a value")
			}
			if wantRef := u.kind + " vms/x"; u.cluster {
				if got := o.Ref.String(); got != u.kind+" x" {
					t.Errorf("ref %q: the kind is cluster-scoped", got)
				}
			} else if got := o.Ref.String(); got != wantRef {
				t.Errorf("ref %q, want %q", got, wantRef)
			}
		})
	}
	// The same kind name in another group is just unknown.
	s := parse(t, "apiVersion: example.com/v1\nkind: KubeVirt\nmetadata: {name: x}\n")
	if !s.Incomplete || !errors.Is(s.Diags.Errors()[0], ErrUnknownKind) {
		t.Errorf("KubeVirt in another group: %v", s.Diags)
	}
}
