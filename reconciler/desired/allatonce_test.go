package desired

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

// An invalid VM's refusals come in the same pass as its admission errors:
// fixing the first errors must not reveal new ones. The VM stays invalid
// (its last good state is kept) and gets no domain.
func TestBuild_invalidVMRefusalsAtOnce(t *testing.T) {
	dir := writeRepo(t, map[string]string{"vms.yaml": `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: a}
spec:
  runStrategy: Always
  template:
    spec:
      resourceClaims:
      - name: gpu
      domain:
        memory: {guest: 1Gi, hugepages: {pageSize: 4Ki}}
        devices:
          interfaces:
          - {name: lan, bridge: {}}
      networks:
      - {name: lan, multus: {networkName: missing}}
---
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: b}
spec:
  colour: blue
  domain:
    memory: {guest: 1Gi}
    launchSecurity: {sev: {}}
`})
	_, st := build(t, dir)
	type got struct{ Object, Path string }
	var errs []got
	for _, d := range st.Diags.Errors() {
		errs = append(errs, got{d.Object, d.Path})
	}
	want := []got{
		{"VirtualMachine default/a", "spec.template.spec.resourceClaims"},
		{"VirtualMachine default/a", "spec.template.spec.domain.memory.hugepages.pageSize"},
		{"VirtualMachine default/a", "spec.template.spec.networks[0].multus.networkName"},
		{"VirtualMachineInstance default/b", "spec.colour"},
		{"VirtualMachineInstance default/b", "spec.domain.launchSecurity"},
	}
	if diff := cmp.Diff(want, errs); diff != "" {
		t.Errorf("errors (-want +got):\n%s\n%v", diff, st.Diags)
	}
	for _, d := range st.Diags.Errors() {
		if d.File != "vms.yaml" || d.Line == 0 {
			t.Errorf("%v: no file and line", d)
		}
		if d.Path == "spec.domain.launchSecurity" && !errors.Is(d, domain.ErrUnsupported) {
			t.Errorf("%v: want domain.ErrUnsupported", d)
		}
		if d.Path == "spec.colour" && !errors.Is(d, manifests.ErrUnknownField) {
			t.Errorf("%v: want manifests.ErrUnknownField", d)
		}
	}
	if len(st.VMs) != 0 {
		t.Errorf("invalid VMs rendered: %v", st.VMs)
	}
	for _, name := range []string{"default_a", "default_b"} {
		if st.Invalid[name] == "" {
			t.Errorf("%s not marked invalid: %v", name, st.Invalid)
		}
	}
}

// A field admission already refused is not refused again by the converter.
func TestBuild_invalidVMRefusalNotRepeated(t *testing.T) {
	dir := writeRepo(t, map[string]string{"vmi.yaml": `apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: rt}
spec:
  domain:
    memory: {guest: 1Gi}
    cpu: {realtime: {}}
`})
	_, st := build(t, dir)
	var paths []string
	for _, d := range st.Diags.Errors() {
		paths = append(paths, d.Path)
	}
	// Admission's two rules about realtime, once each.
	if diff := cmp.Diff([]string{"spec.domain.cpu.realtime", "spec.domain.cpu.realtime"}, paths); diff != "" {
		t.Errorf("error paths (-want +got):\n%s\n%v", diff, st.Diags)
	}
	for _, d := range st.Diags.Errors() {
		if errors.Is(d, domain.ErrUnsupported) {
			t.Errorf("converter repeats an admission error: %v", d)
		}
	}
}
