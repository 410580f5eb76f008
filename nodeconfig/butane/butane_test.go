package butane

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/coreos/vcontext/path"
	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// The MachineConfig output is used, never Raw: openshift.kernel_arguments
// survive.
func TestTranslate_openshiftKeepsKernelArguments(t *testing.T) {
	res, diags := Translate("iommu.bu", []byte(`variant: openshift
version: 4.22.0
metadata:
  name: 100-worker-iommu
  labels:
    machineconfiguration.openshift.io/role: worker
openshift:
  kernel_arguments: [intel_iommu=on]
`), Options{})
	if len(diags) > 0 || res == nil {
		t.Fatalf("diags %v", diags)
	}
	if !cmp.Equal(res.KernelArguments, []string{"intel_iommu=on"}) || res.Name != "100-worker-iommu" || res.Labels["machineconfiguration.openshift.io/role"] != "worker" {
		t.Errorf("result %+v", res)
	}
	var ign struct {
		Ignition struct{ Version string } `json:"ignition"`
	}
	if err := json.Unmarshal(res.Ignition, &ign); err != nil || ign.Ignition.Version != "3.5.0" {
		t.Errorf("ignition %s: %v", res.Ignition, err)
	}
}

// Butane's report becomes diagnostics with line, column and path; warnings
// come back with the result.
func TestTranslate_report(t *testing.T) {
	res, diags := Translate("x.bu", []byte("variant: fcos\nversion: 1.6.0\nstorage:\n  files:\n  - path: /etc/x\n    contents: {inline: a}\n  bogus: 1\n"), Options{})
	if res == nil {
		t.Fatalf("warnings only must translate: %v", diags)
	}
	want := diag.List{{Severity: diag.Warning, File: "x.bu", Line: 7, Col: 3, Path: "storage.bogus", Message: "unused key bogus"}}
	if diff := cmp.Diff(want, diags, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Err" }, cmp.Ignore())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if !errors.Is(diags[0], ErrButane) {
		t.Error("want ErrButane")
	}
	_, diags = Translate("x.bu", []byte("version: 1.6.0\n"), Options{})
	if len(diags) != 1 || diags[0].Path != "variant" || !errors.Is(diags[0], ErrVariant) || !strings.Contains(diags[0].Message, "no variant") {
		t.Errorf("no variant: %v", diags)
	}
}

func TestPath(t *testing.T) {
	if got := Path(path.New("yaml", "storage", "files", 2, "contents", "inline")); got != "storage.files[2].contents.inline" {
		t.Error(got)
	}
}
