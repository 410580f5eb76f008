package placement

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// vm is a VM with its placement rules parsed once.
type vm struct {
	key, ns, previous string
	labels            labels.Set
	nsLabels          labels.Set

	nodeSelector map[string]string
	// required is nil without required node affinity; a present but empty
	// (or all-empty-terms) requirement matches no node, as in Kubernetes.
	required    []nodeTerm
	hasRequired bool
	preferred   []nodeTerm
	tolerations []corev1.Toleration

	affinity, antiAffinity         []podTerm // required
	prefAffinity, prefAntiAffinity []podTerm // preferred, weighted

	// err is the first invalid rule; the VM is then unschedulable with it.
	err error
}

// nodeTerm is one NodeSelectorTerm: all its requirements must hold.
type nodeTerm struct {
	labels labels.Selector
	fields []fieldReq
	weight int64
}

// fieldReq is a matchFields requirement; only metadata.name exists for nodes.
type fieldReq struct {
	key, value string
	in         bool
}

func (t nodeTerm) matches(n *node) bool {
	for _, f := range t.fields {
		v := ""
		if f.key == "metadata.name" {
			v = n.name
		}
		if (v == f.value) != f.in {
			return false
		}
	}
	return t.labels.Matches(n.labels)
}

// podTerm is a PodAffinityTerm: which VMs it selects and over which
// topology domain.
type podTerm struct {
	selector    labels.Selector
	namespaces  map[string]bool
	nsSelector  labels.Selector // nil: not given
	topologyKey string
	weight      int64
}

// matches reports whether VM o is selected: it is in one of the term's
// namespaces (or its namespace matches namespaceSelector) and its labels
// match labelSelector.
func (t podTerm) matches(o *vm) bool {
	if !t.namespaces[o.ns] && (t.nsSelector == nil || !t.nsSelector.Matches(o.nsLabels)) {
		return false
	}
	return t.selector.Matches(o.labels)
}

func (p *placer) compile(in VM) *vm {
	v := &vm{key: in.Key, ns: in.Namespace, previous: in.Previous, labels: labels.Set(in.Labels)}
	if v.ns == "" {
		v.ns, _, _ = strings.Cut(in.Key, "/")
	}
	v.nsLabels = p.namespaceLabels(v.ns)
	spec := in.Spec
	if spec == nil {
		return v
	}
	v.nodeSelector = NodeSelector(spec)
	v.tolerations = spec.Tolerations
	a := spec.Affinity
	if a == nil {
		return v
	}
	root := field.NewPath("affinity")
	var errs []error
	if na := a.NodeAffinity; na != nil {
		path := root.Child("nodeAffinity")
		if r := na.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
			v.hasRequired = true
			tp := path.Child("requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
			for i, term := range r.NodeSelectorTerms {
				t, ok, err := compileNodeTerm(term, tp.Index(i))
				errs = append(errs, err)
				if ok {
					v.required = append(v.required, t)
				}
			}
		}
		pp := path.Child("preferredDuringSchedulingIgnoredDuringExecution")
		for i, pref := range na.PreferredDuringSchedulingIgnoredDuringExecution {
			t, ok, err := compileNodeTerm(pref.Preference, pp.Index(i).Child("preference"))
			errs = append(errs, err, checkWeight(pref.Weight, pp.Index(i)))
			if ok && pref.Weight != 0 {
				t.weight = int64(pref.Weight)
				v.preferred = append(v.preferred, t)
			}
		}
	}
	if pa := a.PodAffinity; pa != nil {
		path := root.Child("podAffinity")
		v.affinity = v.podTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution, path, &errs)
		v.prefAffinity = v.weightedPodTerms(pa.PreferredDuringSchedulingIgnoredDuringExecution, path, &errs)
	}
	if pa := a.PodAntiAffinity; pa != nil {
		path := root.Child("podAntiAffinity")
		v.antiAffinity = v.podTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution, path, &errs)
		v.prefAntiAffinity = v.weightedPodTerms(pa.PreferredDuringSchedulingIgnoredDuringExecution, path, &errs)
	}
	for _, err := range errs {
		if err != nil {
			v.err = err
			break
		}
	}
	return v
}

// compileNodeTerm parses a NodeSelectorTerm. A term without requirements
// selects nothing and is dropped (ok=false), as kube-scheduler does.
func compileNodeTerm(term corev1.NodeSelectorTerm, path *field.Path) (nodeTerm, bool, error) {
	if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
		return nodeTerm{}, false, nil
	}
	sel := labels.NewSelector()
	for i, e := range term.MatchExpressions {
		ep := path.Child("matchExpressions").Index(i)
		op, ok := map[corev1.NodeSelectorOperator]selection.Operator{
			corev1.NodeSelectorOpIn:           selection.In,
			corev1.NodeSelectorOpNotIn:        selection.NotIn,
			corev1.NodeSelectorOpExists:       selection.Exists,
			corev1.NodeSelectorOpDoesNotExist: selection.DoesNotExist,
			corev1.NodeSelectorOpGt:           selection.GreaterThan,
			corev1.NodeSelectorOpLt:           selection.LessThan,
		}[e.Operator]
		if !ok {
			return nodeTerm{}, false, field.NotSupported(ep.Child("operator"), e.Operator,
				[]string{"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"})
		}
		r, err := labels.NewRequirement(e.Key, op, e.Values, field.WithPath(ep))
		if err != nil {
			return nodeTerm{}, false, err
		}
		sel = sel.Add(*r)
	}
	t := nodeTerm{labels: sel}
	for i, f := range term.MatchFields {
		fp := path.Child("matchFields").Index(i)
		if f.Key != "metadata.name" {
			return nodeTerm{}, false, field.NotSupported(fp.Child("key"), f.Key, []string{"metadata.name"})
		}
		if f.Operator != corev1.NodeSelectorOpIn && f.Operator != corev1.NodeSelectorOpNotIn {
			return nodeTerm{}, false, field.NotSupported(fp.Child("operator"), f.Operator, []string{"In", "NotIn"})
		}
		if len(f.Values) != 1 {
			return nodeTerm{}, false, field.Invalid(fp.Child("values"), f.Values, "must have one element")
		}
		t.fields = append(t.fields, fieldReq{key: f.Key, value: f.Values[0], in: f.Operator == corev1.NodeSelectorOpIn})
	}
	return t, true, nil
}

func (v *vm) podTerms(terms []corev1.PodAffinityTerm, path *field.Path, errs *[]error) []podTerm {
	var out []podTerm
	p := path.Child("requiredDuringSchedulingIgnoredDuringExecution")
	for i := range terms {
		t, err := v.podTerm(&terms[i], p.Index(i))
		*errs = append(*errs, err)
		out = append(out, t)
	}
	return out
}

func (v *vm) weightedPodTerms(terms []corev1.WeightedPodAffinityTerm, path *field.Path, errs *[]error) []podTerm {
	var out []podTerm
	p := path.Child("preferredDuringSchedulingIgnoredDuringExecution")
	for i := range terms {
		t, err := v.podTerm(&terms[i].PodAffinityTerm, p.Index(i).Child("podAffinityTerm"))
		*errs = append(*errs, err, checkWeight(terms[i].Weight, p.Index(i)))
		if terms[i].Weight != 0 {
			t.weight = int64(terms[i].Weight)
			out = append(out, t)
		}
	}
	return out
}

// podTerm parses a PodAffinityTerm of v. A nil labelSelector selects no VM,
// an empty one every VM. Without namespaces and namespaceSelector the term
// covers v's own namespace; an empty namespaceSelector covers all.
// matchLabelKeys and mismatchLabelKeys add "key in/notin (v's value)" to the
// selector, as the API server does on pod creation.
func (v *vm) podTerm(term *corev1.PodAffinityTerm, path *field.Path) (podTerm, error) {
	sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
	if err != nil {
		return podTerm{}, fmt.Errorf("%s: %w", path.Child("labelSelector"), err)
	}
	if term.LabelSelector != nil {
		for _, keys := range []struct {
			keys []string
			op   selection.Operator
			name string
		}{{term.MatchLabelKeys, selection.In, "matchLabelKeys"}, {term.MismatchLabelKeys, selection.NotIn, "mismatchLabelKeys"}} {
			for i, k := range keys.keys {
				val, ok := v.labels[k]
				if !ok {
					continue
				}
				r, err := labels.NewRequirement(k, keys.op, []string{val}, field.WithPath(path.Child(keys.name).Index(i)))
				if err != nil {
					return podTerm{}, err
				}
				sel = sel.Add(*r)
			}
		}
	}
	t := podTerm{selector: sel, topologyKey: term.TopologyKey, namespaces: map[string]bool{}}
	for _, ns := range term.Namespaces {
		t.namespaces[ns] = true
	}
	if term.NamespaceSelector != nil {
		if t.nsSelector, err = metav1.LabelSelectorAsSelector(term.NamespaceSelector); err != nil {
			return podTerm{}, fmt.Errorf("%s: %w", path.Child("namespaceSelector"), err)
		}
	} else if len(term.Namespaces) == 0 {
		t.namespaces[v.ns] = true
	}
	return t, nil
}

// checkWeight refuses a preferred term's weight outside 1–100, as API
// validation does; 0 is let through and the term ignored, as the scheduler
// does.
func checkWeight(w int32, path *field.Path) error {
	if w < 0 || w > 100 {
		return field.Invalid(path.Child("weight"), w, "must be in the range 1-100")
	}
	return nil
}
