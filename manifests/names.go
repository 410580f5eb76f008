package manifests

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Kubernetes validates metadata.name per kind: most kinds (and every custom
// resource) take a DNS-1123 subdomain, a few a DNS-1123 label. nodevirt
// keeps those rules, and relies on them: a name is also a libvirt domain
// name (namespace + "_" + name, injective only because neither rule allows
// "_") and a path element on the host (neither rule allows "/" and both
// start with an alphanumeric, so "." and ".." cannot pass).
func nameErrors(kind, name string) (rule string, errs []string) {
	switch kind {
	case "Namespace":
		// ValidateNamespaceName.
		return "a DNS-1123 label", validation.IsDNS1123Label(name)
	}
	// VirtualMachine, VirtualMachineInstance, DataVolume, PVC, PV,
	// StorageClass, Node, instancetypes, NetworkAttachmentDefinition and the
	// host kinds: NameIsDNSSubdomain, the apiserver's rule for CRDs too.
	return "a DNS-1123 subdomain", validation.IsDNS1123Subdomain(name)
}

// validateNames checks metadata.name and, for namespaced kinds, the
// namespace the object ends up in (written, or the --namespace default).
func validateNames(o *Object, written bool) []nameError {
	var out []nameError
	if rule, errs := nameErrors(o.Ref.Kind, o.Ref.Name); len(errs) > 0 {
		out = append(out, nameError{path: "metadata.name", value: o.Ref.Name, rule: rule, errs: errs})
	}
	if ns := o.Ref.Namespace; ns != "" {
		// ValidateNamespaceName: namespaces are DNS-1123 labels.
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			e := nameError{path: "metadata.namespace", value: ns, rule: "a DNS-1123 label", errs: errs}
			if !written {
				e.fromFlag = true
			}
			out = append(out, e)
		}
	}
	return out
}

// nameError carries Kubernetes' own message for an invalid name.
type nameError struct {
	path, value, rule string
	errs              []string
	fromFlag          bool
}

func (e nameError) Error() string {
	s := ErrInvalidName.Error() + ": " + quote(e.value) + " must be " + e.rule + ": " + strings.Join(e.errs, "; ")
	if e.fromFlag {
		s += " (the object names no namespace and got --namespace)"
	}
	return s
}

func (e nameError) Unwrap() error { return ErrInvalidName }
