package placement

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// vm is a VM with its placement rules parsed once.
type vm struct {
	key, ns, previous string
	labels            labels.Set
	nsLabels          labels.Set

	// nodeAffinity is the pod's nodeSelector AND its required node
	// affinity, matched as kube-scheduler's NodeAffinity filter does.
	nodeAffinity nodeaffinity.RequiredNodeAffinity
	// preferred scores nodes by preferred node affinity; nil without it.
	preferred   *nodeaffinity.PreferredSchedulingTerms
	tolerations []corev1.Toleration

	affinity, antiAffinity         []podTerm // required
	prefAffinity, prefAntiAffinity []podTerm // preferred, weighted

	// err is the first invalid rule; the VM is then unschedulable with it.
	err error
}

// hasPodTerms reports whether v has inter-pod affinity or anti-affinity
// terms, required or preferred.
func (v *vm) hasPodTerms() bool {
	return len(v.affinity)+len(v.antiAffinity)+len(v.prefAffinity)+len(v.prefAntiAffinity) > 0
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
	v.tolerations = spec.Tolerations
	a := spec.Affinity
	pod := &corev1.Pod{Spec: corev1.PodSpec{NodeSelector: NodeSelector(spec)}}
	if a != nil {
		pod.Spec.Affinity = &corev1.Affinity{NodeAffinity: a.NodeAffinity}
	}
	v.nodeAffinity = nodeaffinity.GetRequiredNodeAffinity(pod)
	if a == nil {
		return v
	}
	root := field.NewPath("affinity")
	var errs []error
	if na := a.NodeAffinity; na != nil {
		errs = append(errs, v.nodeAffinityRules(na, root.Child("nodeAffinity")))
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

// nodeAffinityRules checks na strictly (the scheduler's filter reports a bad
// term only when no other term matches; a bad rule here refuses the VM) and
// keeps its preferred terms for scoring.
func (v *vm) nodeAffinityRules(na *corev1.NodeAffinity, path *field.Path) error {
	if r := na.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
		rp := path.Child("requiredDuringSchedulingIgnoredDuringExecution")
		for i, t := range r.NodeSelectorTerms {
			if err := checkMatchFields(t, rp.Child("nodeSelectorTerms").Index(i)); err != nil {
				return err
			}
		}
		if _, err := nodeaffinity.NewNodeSelector(r, field.WithPath(rp)); err != nil {
			return firstError(err)
		}
	}
	pp := path.Child("preferredDuringSchedulingIgnoredDuringExecution")
	prefs := na.PreferredDuringSchedulingIgnoredDuringExecution
	for i, pref := range prefs {
		if err := checkWeight(pref.Weight, pp.Index(i)); err != nil {
			return err
		}
		if err := checkMatchFields(pref.Preference, pp.Index(i).Child("preference")); err != nil {
			return err
		}
		if pref.Weight == 0 {
			continue // ignored, as the scheduler does
		}
		// Parsed one by one: the library's paths for preferred terms leave
		// out the "preference" level a user needs to find the field.
		one := &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{pref.Preference}}
		if _, err := nodeaffinity.NewNodeSelector(one); err != nil {
			return reroot(err, pp.Index(i).Child("preference"))
		}
	}
	var err error
	v.preferred, err = nodeaffinity.NewPreferredSchedulingTerms(prefs, field.WithPath(pp))
	return err
}

// checkMatchFields refuses matchFields keys other than metadata.name, as API
// validation does: the matcher alone would just never match them.
func checkMatchFields(t corev1.NodeSelectorTerm, path *field.Path) error {
	for i, f := range t.MatchFields {
		if f.Key != "metadata.name" {
			return field.NotSupported(path.Child("matchFields").Index(i).Child("key"), f.Key, []string{"metadata.name"})
		}
	}
	return nil
}

// reroot moves the first parse error of a one-term selector (its field
// "nodeSelectorTerms[0]...") under path.
func reroot(err error, path *field.Path) error {
	err = firstError(err)
	var fe *field.Error
	if !errors.As(err, &fe) {
		return fmt.Errorf("%s: %w", path, err)
	}
	c := *fe
	c.Field = path.String() + strings.TrimPrefix(fe.Field, "nodeSelectorTerms[0]")
	return &c
}

// firstError is the first of the library's aggregated parse errors: a VM
// reports one reason.
func firstError(err error) error {
	var agg utilerrors.Aggregate
	if errors.As(err, &agg) && len(agg.Errors()) > 0 {
		return agg.Errors()[0]
	}
	return err
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
