package manifests

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	kubevirtv1 "kubevirt.io/api/core/v1"
	instancetypeapi "kubevirt.io/api/instancetype"
	instancetypev1beta1 "kubevirt.io/api/instancetype/v1beta1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// Instancetype and preference expansion (SPEC VM-1).
//
// KubeVirt applies a VirtualMachine's instancetype and preference to the VMI
// spec before its defaults, and its admission webhook rejects a VM whose own
// values conflict with the instancetype. nodevirt does the same once every
// document of a load has been read, since the referenced objects may sit in
// any file: expand, then Default, then the admission rules. A VM whose
// expansion fails is validated unexpanded (without the memory rule the
// instancetype would satisfy) and is invalid, so the reconciler keeps its last
// good state.

// hasMatchers reports whether a VM references an instancetype or preference.
func hasMatchers(vm *kubevirtv1.VirtualMachine) bool {
	return vm.Spec.Instancetype != nil || vm.Spec.Preference != nil
}

// expand expands, defaults and validates every VirtualMachine with an
// instancetype or preference. bad names the objects that already have errors.
func (s *Set) expand(bad map[string]bool) {
	index := make(map[Ref]*Object, len(s.Objects))
	for _, o := range s.Objects {
		if _, dup := index[o.Ref]; !dup {
			index[o.Ref] = o
		}
	}
	for _, o := range s.Objects {
		vm, ok := o.Value.(*kubevirtv1.VirtualMachine)
		if !ok || !hasMatchers(vm) {
			continue
		}
		e := expander{validator: validator{o: o}, index: index, bad: bad}
		s.Diags = append(s.Diags, e.vm(vm)...)
	}
}

// expander resolves one VM's references against the set.
type expander struct {
	validator
	index map[Ref]*Object
	bad   map[string]bool
}

// matcher is what InstancetypeMatcher and PreferenceMatcher have in common.
type matcher struct {
	name, kind, revisionName, inferFromVolume string
	ignoreInferFailure                        bool
}

// target describes one of the two references.
type target struct {
	field      string // "instancetype" or "preference"
	namespaced string // kind of the namespaced object
	cluster    string // kind of the cluster-scoped object
	singular   string // KubeVirt's resource names, accepted as kinds
	plural     string
	clusterS   string
	clusterP   string
	nameLabel  string // default-* labels on volumes, for inferFromVolume
	kindLabel  string
	errKind    error
	errMissing error
}

var (
	instancetypeTarget = target{
		field: "instancetype", namespaced: "VirtualMachineInstancetype", cluster: "VirtualMachineClusterInstancetype",
		singular: instancetypeapi.SingularResourceName, plural: instancetypeapi.PluralResourceName,
		clusterS: instancetypeapi.ClusterSingularResourceName, clusterP: instancetypeapi.ClusterPluralResourceName,
		nameLabel: instancetypeapi.DefaultInstancetypeLabel, kindLabel: instancetypeapi.DefaultInstancetypeKindLabel,
		errKind: ErrInstancetypeKind, errMissing: ErrInstancetypeNotFound,
	}
	preferenceTarget = target{
		field: "preference", namespaced: "VirtualMachinePreference", cluster: "VirtualMachineClusterPreference",
		singular: instancetypeapi.SingularPreferenceResourceName, plural: instancetypeapi.PluralPreferenceResourceName,
		clusterS: instancetypeapi.ClusterSingularPreferenceResourceName, clusterP: instancetypeapi.ClusterPluralPreferenceResourceName,
		nameLabel: instancetypeapi.DefaultPreferenceLabel, kindLabel: instancetypeapi.DefaultPreferenceKindLabel,
		errKind: ErrPreferenceKind, errMissing: ErrPreferenceNotFound,
	}
)

func (e *expander) vm(vm *kubevirtv1.VirtualMachine) diag.List {
	if vm.Spec.Template == nil {
		return validateVM(e.o, vm, true)
	}
	// Work on a copy, so a VM whose expansion fails keeps its template as written.
	tmpl := vm.Spec.Template.DeepCopy()
	spec := &tmpl.Spec
	var itSpec *instancetypev1beta1.VirtualMachineInstancetypeSpec
	var prefSpec *instancetypev1beta1.VirtualMachinePreferenceSpec
	failed := false
	if it := vm.Spec.Instancetype; it != nil {
		m := matcher{name: it.Name, kind: it.Kind, revisionName: it.RevisionName, inferFromVolume: it.InferFromVolume,
			ignoreInferFailure: ignoreFailure(it.InferFromVolumeFailurePolicy)}
		o, ok, dropped := e.resolve(vm, instancetypeTarget, m)
		switch {
		case dropped:
			vm.Spec.Instancetype = nil
		case !ok:
			failed = true
		default:
			if m.inferFromVolume != "" && m.ignoreInferFailure {
				// KubeVirt drops the VM's own memory when it infers an
				// instancetype under the Ignore policy, so the two cannot
				// conflict.
				spec.Domain.Memory = nil
			}
			switch v := o.Value.(type) {
			case *instancetypev1beta1.VirtualMachineInstancetype:
				itSpec = &v.Spec
			case *instancetypev1beta1.VirtualMachineClusterInstancetype:
				itSpec = &v.Spec
			}
		}
	}
	if pref := vm.Spec.Preference; pref != nil {
		m := matcher{name: pref.Name, kind: pref.Kind, revisionName: pref.RevisionName, inferFromVolume: pref.InferFromVolume,
			ignoreInferFailure: ignoreFailure(pref.InferFromVolumeFailurePolicy)}
		o, ok, dropped := e.resolve(vm, preferenceTarget, m)
		switch {
		case dropped:
			vm.Spec.Preference = nil
		case !ok:
			failed = true
		default:
			switch v := o.Value.(type) {
			case *instancetypev1beta1.VirtualMachinePreference:
				prefSpec = &v.Spec
			case *instancetypev1beta1.VirtualMachineClusterPreference:
				prefSpec = &v.Spec
			}
		}
	}
	if failed {
		return append(e.diags, validateVM(e.o, vm, true)...)
	}

	const p = "spec.template.spec"
	// KubeVirt's expansion order (pkg/instancetype/expand, and the VM
	// controller when it creates the VMI): the auto-attach preferences, then
	// a disk for every volume, the default network interface and input
	// device, so the preference's disk bus, interface model and input bus
	// and type reach those too; then the instancetype and preference; then
	// the defaults.
	if prefSpec != nil && prefSpec.Devices != nil {
		applyAutoAttachPreferences(prefSpec.Devices, spec)
	}
	defaultVolumeDisks(spec)
	defaultNetwork(spec)
	if itSpec != nil && prefSpec != nil {
		// KubeVirt's CheckSpreadCPUTopology, before anything is applied.
		if err := spreadFits(itSpec, prefSpec); err != nil {
			e.failf("spec.preference", ErrSpreadTopology, "%v", err)
			return append(e.diags, validateVM(e.o, vm, true)...)
		}
	}
	autoAttachInputDevice(spec)
	if itSpec != nil {
		conflicts := applyInstancetype(itSpec, prefSpec, spec, &tmpl.ObjectMeta, p)
		for _, c := range conflicts {
			// KubeVirt's text: "VM field(s) <path> conflicts with selected instance type".
			e.diags = append(e.diags, e.o.Errorf(c, "VM field(s) %s %w", c, ErrInstancetypeConflict))
		}
		if len(conflicts) > 0 {
			return append(e.diags, validateVM(e.o, vm, true)...)
		}
	}
	if prefSpec != nil {
		applyPreference(prefSpec, spec, &tmpl.ObjectMeta)
		e.requirements(itSpec, prefSpec, spec, p)
	}
	Default(spec)
	vm.Spec.Template = tmpl
	return append(e.diags, validateVM(e.o, vm, false)...)
}

func ignoreFailure(p *kubevirtv1.InferFromVolumeFailurePolicy) bool {
	return p != nil && *p == kubevirtv1.IgnoreInferFromVolumeFailure
}

// resolve finds the object a matcher names. dropped means inference failed
// under the Ignore policy, so the matcher is removed as KubeVirt does.
func (e *expander) resolve(vm *kubevirtv1.VirtualMachine, t target, m matcher) (o *Object, ok, dropped bool) {
	mp := "spec." + t.field
	if m.revisionName != "" {
		e.diags = append(e.diags, e.o.Warnf(mp+".revisionName", "%w", ErrRevisionNameIgnored))
	}
	namePath := mp + ".name"
	if m.inferFromVolume != "" {
		name, kind, err := e.infer(vm, t, m.inferFromVolume)
		if err != nil {
			if m.ignoreInferFailure {
				return nil, false, true
			}
			e.failf(mp+".inferFromVolume", ErrInferFromVolume, "%v", err)
			return nil, false, false
		}
		m.name, m.kind, namePath = name, kind, mp+".inferFromVolume"
	}
	if m.name == "" {
		e.fail(mp, ErrMatcherName)
		return nil, false, false
	}
	var ref Ref
	switch strings.ToLower(m.kind) {
	case strings.ToLower(t.namespaced), t.singular, t.plural:
		ref = Ref{Kind: t.namespaced, Namespace: e.o.Ref.Namespace, Name: m.name}
	case strings.ToLower(t.cluster), t.clusterS, t.clusterP, "":
		// KubeVirt's default kind is the cluster-wide one.
		ref = Ref{Kind: t.cluster, Name: m.name}
	default:
		e.failf(mp+".kind", t.errKind, "got %q", m.kind)
		return nil, false, false
	}
	o, found := e.index[ref]
	if !found {
		e.failf(namePath, t.errMissing, "%s", ref)
		return nil, false, false
	}
	if o.Value == nil || e.bad[ref.String()] {
		e.failf(namePath, ErrInstancetypeInvalid, "%s (%s:%d)", ref, o.File, o.Line)
		return nil, false, false
	}
	return o, true, false
}

// infer reads the default-instancetype or default-preference labels of the
// claim behind a volume: a PersistentVolumeClaim or DataVolume of the
// repository, or one of the VM's dataVolumeTemplates (KubeVirt also follows
// DataVolume sources and DataSources, which live only in a cluster).
func (e *expander) infer(vm *kubevirtv1.VirtualMachine, t target, volume string) (name, kind string, err error) {
	var vol *kubevirtv1.Volume
	for i := range vm.Spec.Template.Spec.Volumes {
		if vm.Spec.Template.Spec.Volumes[i].Name == volume {
			vol = &vm.Spec.Template.Spec.Volumes[i]
		}
	}
	if vol == nil {
		return "", "", fmt.Errorf("no volume named %q", volume)
	}
	var labels map[string]string
	switch {
	case vol.PersistentVolumeClaim != nil:
		ref := Ref{Kind: "PersistentVolumeClaim", Namespace: e.o.Ref.Namespace, Name: vol.PersistentVolumeClaim.ClaimName}
		o, ok := e.index[ref]
		if !ok {
			return "", "", fmt.Errorf("%s is not in the repository", ref)
		}
		labels = o.Labels
	case vol.DataVolume != nil:
		found := false
		for _, dvt := range vm.Spec.DataVolumeTemplates {
			if dvt.Name == vol.DataVolume.Name {
				labels, found = dvt.Labels, true
			}
		}
		if !found {
			ref := Ref{Kind: "DataVolume", Namespace: e.o.Ref.Namespace, Name: vol.DataVolume.Name}
			o, ok := e.index[ref]
			if !ok {
				return "", "", fmt.Errorf("%s is not in the repository", ref)
			}
			if _, isDV := o.Value.(*cdiv1beta1.DataVolume); !isDV {
				return "", "", fmt.Errorf("%s could not be decoded", ref)
			}
			labels = o.Labels
		}
	default:
		return "", "", fmt.Errorf("volume %q is neither a persistentVolumeClaim nor a dataVolume", volume)
	}
	name, ok := labels[t.nameLabel]
	if !ok {
		return "", "", fmt.Errorf("volume %q has no %s label", volume, t.nameLabel)
	}
	return name, labels[t.kindLabel], nil
}

// requirements checks a preference's requirements against what the
// instancetype or the VM provides (KubeVirt preference/requirements).
func (e *expander) requirements(it *instancetypev1beta1.VirtualMachineInstancetypeSpec,
	pref *instancetypev1beta1.VirtualMachinePreferenceSpec, spec *kubevirtv1.VirtualMachineInstanceSpec, p string) {
	req := pref.Requirements
	if req == nil {
		return
	}
	if c := req.CPU; c != nil {
		if it != nil {
			if it.CPU.Guest < c.Guest {
				e.failf("spec.instancetype", ErrPreferenceRequirement,
					"insufficient CPU resources of %d vCPU provided by instance type, preference requires %d vCPU", it.CPU.Guest, c.Guest)
			}
		} else {
			e.cpuRequirement(pref, spec, p, c.Guest)
		}
	}
	if m := req.Memory; m != nil {
		provided, by, at := spec.Domain.Memory, "VirtualMachine", p+".domain.memory"
		var have resource.Quantity
		if it != nil {
			have, by, at = it.Memory.Guest, "instance type", "spec.instancetype"
		}
		if provided != nil && provided.Guest != nil {
			have = *provided.Guest
		}
		if have.Cmp(m.Guest) < 0 {
			e.failf(at, ErrPreferenceRequirement, "insufficient Memory resources of %s provided by %s, preference requires %s",
				have.String(), by, m.Guest.String())
		}
	}
	if a := req.Architecture; a != nil && spec.Architecture != "" && spec.Architecture != *a {
		e.failf(p+".architecture", ErrPreferenceRequirement, "preference requires architecture %s, the VM has %s", *a, spec.Architecture)
	}
}

// cpuRequirement checks the vCPUs of a VM without an instancetype in the
// dimension the preferred topology uses.
func (e *expander) cpuRequirement(pref *instancetypev1beta1.VirtualMachinePreferenceSpec, spec *kubevirtv1.VirtualMachineInstanceSpec, p string, need uint32) {
	cp := p + ".domain.cpu"
	cpu := spec.Domain.CPU
	if cpu == nil {
		e.failf(cp, ErrPreferenceRequirement, "no CPU resources provided by VirtualMachine, preference requires %d vCPU", need)
		return
	}
	check := func(field string, have uint32) {
		if have < need {
			e.failf(cp+"."+field, ErrPreferenceRequirement,
				"insufficient CPU resources of %d vCPU provided by VirtualMachine, preference requires %d vCPU provided as %s", have, need, field)
		}
	}
	switch preferredTopology(pref) {
	case instancetypev1beta1.Threads, instancetypev1beta1.DeprecatedPreferThreads:
		check("threads", cpu.Threads)
	case instancetypev1beta1.Cores, instancetypev1beta1.DeprecatedPreferCores:
		check("cores", cpu.Cores)
	case instancetypev1beta1.Sockets, instancetypev1beta1.DeprecatedPreferSockets:
		check("sockets", cpu.Sockets)
	default:
		if have := cpu.Sockets * cpu.Cores * cpu.Threads; have < need {
			e.failf(cp, ErrPreferenceRequirement,
				"insufficient CPU resources of %d vCPU provided by VirtualMachine, preference requires %d vCPU provided as cores, sockets and threads", have, need)
		}
	}
}

// validateInstancetype checks what KubeVirt's CRD schema requires of an
// instancetype: a vCPU count and guest memory.
// validatePreference checks a preference like KubeVirt's preference
// admitter: a known CPU topology (the deprecated prefer* names with a
// warning naming the new one) and spread options it can apply.
func validatePreference(o *Object, spec *instancetypev1beta1.VirtualMachinePreferenceSpec) diag.List {
	v := &validator{o: o}
	if spec.CPU == nil {
		return nil
	}
	if t := spec.CPU.PreferredCPUTopology; t != nil {
		switch *t {
		case instancetypev1beta1.Sockets, instancetypev1beta1.Cores, instancetypev1beta1.Threads,
			instancetypev1beta1.Spread, instancetypev1beta1.Any:
		case instancetypev1beta1.DeprecatedPreferSockets, instancetypev1beta1.DeprecatedPreferCores,
			instancetypev1beta1.DeprecatedPreferThreads, instancetypev1beta1.DeprecatedPreferSpread,
			instancetypev1beta1.DeprecatedPreferAny:
			v.diags = append(v.diags, o.Warnf("spec.cpu.preferredCPUTopology", "%w: %s; use %s", ErrTopologyDeprecated,
				*t, strings.ToLower(strings.TrimPrefix(string(*t), "prefer"))))
		default:
			v.failf("spec.cpu.preferredCPUTopology", ErrPreferredTopology, "got %q", *t)
		}
	}
	if t := preferredTopology(spec); t == instancetypev1beta1.Spread || t == instancetypev1beta1.DeprecatedPreferSpread {
		ratio, across := spreadOptions(spec)
		switch across {
		case instancetypev1beta1.SpreadAcrossSocketsCores, instancetypev1beta1.SpreadAcrossSocketsCoresThreads:
			// An explicit 0 would divide by zero; KubeVirt's default is 2.
			if ratio == 0 {
				v.fail("spec.cpu.spreadOptions.ratio", ErrSpreadRatio)
			}
		case instancetypev1beta1.SpreadAcrossCoresThreads:
			if ratio != 2 {
				v.failf("spec.cpu.spreadOptions.ratio", ErrSpreadCoresThreads, "got %d", ratio)
			}
		default:
			v.failf("spec.cpu.spreadOptions.across", ErrSpreadAcross, "got %q", across)
		}
	}
	return v.diags
}

// spreadFits is KubeVirt's CheckSpreadCPUTopology: a spread preference
// splits the instancetype's vCPUs evenly, or the VM is refused.
func spreadFits(it *instancetypev1beta1.VirtualMachineInstancetypeSpec, pref *instancetypev1beta1.VirtualMachinePreferenceSpec) error {
	if t := preferredTopology(pref); t != instancetypev1beta1.Spread && t != instancetypev1beta1.DeprecatedPreferSpread {
		return nil
	}
	ratio, across := spreadOptions(pref)
	guest := it.CPU.Guest
	if ratio == 0 {
		return ErrSpreadRatio
	}
	switch across {
	case instancetypev1beta1.SpreadAcrossSocketsCores:
		if guest%ratio != 0 {
			return fmt.Errorf("%d vCPUs of the instancetype are not divisible by the preference's ratio %d", guest, ratio)
		}
	case instancetypev1beta1.SpreadAcrossCoresThreads:
		if guest%ratio != 0 {
			return fmt.Errorf("%d vCPUs of the instancetype are not divisible by %d threads per core", guest, ratio)
		}
	case instancetypev1beta1.SpreadAcrossSocketsCoresThreads:
		const threadsPerCore = 2
		if guest%threadsPerCore != 0 || (guest/threadsPerCore)%ratio != 0 {
			return fmt.Errorf("%d vCPUs of the instancetype are not divisible by %d threads per core and the preference's ratio %d", guest, threadsPerCore, ratio)
		}
	}
	return nil
}

func validateInstancetype(o *Object, spec *instancetypev1beta1.VirtualMachineInstancetypeSpec) diag.List {
	v := &validator{o: o}
	if spec.CPU.Guest < 1 {
		v.fail("spec.cpu.guest", ErrInstancetypeCPUGuest)
	}
	if spec.Memory.Guest.Sign() <= 0 {
		v.fail("spec.memory.guest", ErrInstancetypeMemory)
	}
	if hp := spec.Memory.Hugepages; hp != nil {
		if page, err := parseQuantity(hp.PageSize); err != nil || (page.Cmp(resource.MustParse("2Mi")) != 0 && page.Cmp(resource.MustParse("1Gi")) != 0) {
			v.failf("spec.memory.hugepages.pageSize", ErrHugepagesPageSize, "got %q", hp.PageSize)
		}
	}
	// KubeVirt's instancetype admitter.
	if pct := spec.Memory.OvercommitPercent; pct < 0 || pct > 100 {
		v.failf("spec.memory.overcommitPercent", ErrOvercommitPercent, "got %d", pct)
	}
	if spec.Memory.OvercommitPercent != 0 && spec.Memory.Hugepages != nil {
		v.fail("spec.memory.overcommitPercent", ErrOvercommitHugepages)
	}
	return v.diags
}

// objectErrors returns the objects that have error diagnostics.
func objectErrors(l diag.List) map[string]bool {
	bad := map[string]bool{}
	for _, d := range l {
		if d.Severity == diag.Error && d.Object != "" {
			bad[d.Object] = true
		}
	}
	return bad
}
