package desired

import (
	"errors"
	"strings"
	"testing"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests"
)

const collisionSpec = `spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
`

// A VirtualMachine and a VirtualMachineInstance of the same namespace and
// name are both valid, but are one libvirt domain: defining either would
// redefine the other's on every pass. Both are errors, neither is defined,
// and the domain is kept as it is (never deleted).
func TestBuild_domainCollisionVMAndVMI(t *testing.T) {
	src := "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: web, namespace: lab}\n" + collisionSpec +
		"---\napiVersion: kubevirt.io/v1\nkind: VirtualMachineInstance\nmetadata: {name: web, namespace: lab}\nspec:\n  domain:\n    memory: {guest: 64Mi}\n" +
		"---\napiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: other, namespace: lab}\n" + collisionSpec
	set := manifests.Parse("vms.yaml", []byte(src), manifests.Options{})
	st := Build(set, "r1", testOptions)
	assertCollision(t, st, "lab_web", "VirtualMachine lab/web", "VirtualMachineInstance lab/web")
	// Stable: the same input gives the same answer, never one then the other.
	again := Build(manifests.Parse("vms.yaml", []byte(src), manifests.Options{}), "r2", testOptions)
	if len(again.VMs) != len(st.VMs) || again.Invalid["lab_web"] != st.Invalid["lab_web"] {
		t.Fatalf("second build differs: %v vs %v", again.Invalid, st.Invalid)
	}
}

// Validation keeps "_" out of names, which is what makes namespace_name
// injective; were it bypassed, a_b/c and a/b_c would share a domain. The
// collision check catches that too.
func TestBuild_domainCollisionUnderscore(t *testing.T) {
	mk := func(ns, name string) *manifests.Object {
		vm := &kubevirtv1.VirtualMachine{}
		rs := kubevirtv1.RunStrategyAlways
		vm.Spec.RunStrategy = &rs
		vm.Spec.Template = &kubevirtv1.VirtualMachineInstanceTemplateSpec{}
		return &manifests.Object{Ref: manifests.Ref{Kind: "VirtualMachine", Namespace: ns, Name: name}, File: "vms.yaml", Line: 1, Valid: true, Value: vm}
	}
	set := &manifests.Set{Objects: []*manifests.Object{mk("a_b", "c"), mk("a", "b_c")}}
	st := Build(set, "r1", testOptions)
	assertCollision(t, st, "a_b_c", "VirtualMachine a_b/c", "VirtualMachine a/b_c")
}

func assertCollision(t *testing.T, st *State, dom string, objects ...string) {
	t.Helper()
	if st.Lookup(dom) != nil {
		t.Fatalf("%s was rendered despite the collision", dom)
	}
	if st.Invalid[dom] == "" {
		t.Fatalf("%s is not kept as invalid: %v", dom, st.Invalid)
	}
	for _, obj := range objects {
		var found bool
		for _, d := range st.Diags.For(obj) {
			if errors.Is(d, ErrDomainCollision) && d.Path == "metadata.name" && strings.Contains(d.Message, dom) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s has no collision error: %v", obj, st.Diags)
		}
	}
}
