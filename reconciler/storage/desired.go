package storage

import (
	"fmt"
	"math"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/internal/pathelem"
	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
)

// labelHostname is the node label local volumes and VMs are pinned with.
const labelHostname = "kubernetes.io/hostname"

// annotationAllowPruneAll confirms a revision that deletes everything.
const annotationAllowPruneAll = "nodevirt.io/allow-prune-all"

// Options tune Build.
type Options struct {
	Node string
	// Placed says whether a VirtualMachine or VirtualMachineInstance runs on
	// this node; nil means "its nodeSelector kubernetes.io/hostname is
	// unset or this node", the rule desired.Build uses.
	Placed func(o *manifests.Object) bool
}

// Desired is Build with the default placement rule.
func Desired(set *manifests.Set, node string) (*State, diag.List) {
	st := Build(set, Options{Node: node})
	return st, st.Diags
}

// Build renders the desired storage of opt.Node from a manifest set.
func Build(set *manifests.Set, opt Options) *State {
	b := &builder{
		set: set, opt: opt,
		st: &State{
			Classes: map[string]*Class{}, Volumes: map[string]*Volume{}, Claims: map[string]*Claim{},
			Invalid: map[string]string{}, Elsewhere: map[string]string{},
			Settings:       Settings{Overhead: DefaultFilesystemOverhead, ClassOverhead: map[string]float64{}},
			PruneSuspended: set.Incomplete,
		},
		bad:       map[string]bool{},
		consumers: map[string][]string{},
		away:      map[string][]string{},
		secrets:   map[string]*manifests.Object{},
		configs:   map[string]*manifests.Object{},
	}
	if opt.Placed == nil {
		b.opt.Placed = b.defaultPlaced
	}
	b.nodeLabels()
	for _, o := range set.Objects {
		if o.Annotations[annotationAllowPruneAll] == "true" {
			b.st.AllowPruneAll = true
		}
		switch o.Ref.Kind {
		case "Secret":
			b.secrets[o.Ref.Namespace+"/"+o.Ref.Name] = o
		case "ConfigMap":
			b.configs[o.Ref.Namespace+"/"+o.Ref.Name] = o
		}
	}
	b.settings()
	b.hostPath()
	b.classes()
	b.vms()
	b.volumes()
	b.claims()
	b.finish()
	b.st.Diags.Sort()
	return b.st
}

type builder struct {
	set    *manifests.Set
	opt    Options
	st     *State
	labels map[string]string
	// bad holds objects with a storage error: invalid, keep last good.
	bad map[string]bool
	// consumers: claim key -> VMs on this node using it; away: on other nodes.
	consumers map[string][]string
	away      map[string][]string
	// templates are the dataVolumeTemplates of VMs, built in claims().
	templates        []template
	secrets, configs map[string]*manifests.Object
	vmObjects        []*manifests.Object
}

type template struct {
	vm    *manifests.Object
	index int
	dvt   kubevirtv1.DataVolumeTemplateSpec
	here  bool
}

func (b *builder) errorf(o *manifests.Object, p string, rule error, format string, args ...any) {
	if format == "" {
		b.st.Diags = append(b.st.Diags, o.Errorf(p, "%w", rule))
	} else {
		b.st.Diags = append(b.st.Diags, o.Errorf(p, "%w: "+format, append([]any{rule}, args...)...))
	}
	b.bad[o.Ref.String()] = true
}

func (b *builder) warnf(o *manifests.Object, p string, rule error, format string, args ...any) {
	if format == "" {
		b.st.Diags = append(b.st.Diags, o.Warnf(p, "%w", rule))
	} else {
		b.st.Diags = append(b.st.Diags, o.Warnf(p, "%w: "+format, append([]any{rule}, args...)...))
	}
}

// usable reports whether an object decoded and passed the manifests
// package's validation; an unusable one keeps its last good state.
//
// Names of storage objects become host path elements (claim and scratch
// directories, loop backing files): one that is not a clean element is
// unusable even if validation let it through.
func (b *builder) usable(o *manifests.Object) bool {
	if !o.Valid || o.Value == nil {
		b.st.Invalid[o.Ref.String()] = o.Ref.String()
		return false
	}
	for _, part := range []string{o.Ref.Namespace, o.Ref.Name} {
		if part == "" {
			continue // cluster-scoped: no namespace
		}
		if err := pathelem.Check(part); err != nil {
			b.st.Invalid[o.Ref.String()] = o.Ref.String()
			b.st.Diags = append(b.st.Diags, o.Errorf("metadata.name", "%w", err))
			return false
		}
	}
	return true
}

// nodeLabels are this node's labels: kubernetes.io/hostname, plus those of
// a Node manifest with the node's name.
func (b *builder) nodeLabels() {
	b.labels = map[string]string{labelHostname: b.opt.Node}
	for _, o := range b.set.OfKind("Node") {
		if o.Ref.Name != b.opt.Node {
			continue
		}
		for k, v := range o.Labels {
			b.labels[k] = v
		}
	}
}

func (b *builder) defaultPlaced(o *manifests.Object) bool {
	var sel map[string]string
	switch v := o.Value.(type) {
	case *kubevirtv1.VirtualMachine:
		if v.Spec.Template != nil {
			sel = v.Spec.Template.Spec.NodeSelector
		}
	case *kubevirtv1.VirtualMachineInstance:
		sel = v.Spec.NodeSelector
	}
	h := sel[labelHostname]
	return h == "" || h == b.opt.Node
}

// settings reads the CDI and HyperConverged objects.
func (b *builder) settings() {
	s := &b.st.Settings
	for _, o := range b.set.OfKind("CDI") {
		if !b.usable(o) {
			continue
		}
		cfg := o.Value.(*cdiv1beta1.CDI).Spec.Config
		if cfg == nil {
			continue
		}
		const p = "spec.config"
		if fo := cfg.FilesystemOverhead; fo != nil {
			if fo.Global != "" {
				if v, ok := b.overhead(o, p+".filesystemOverhead.global", string(fo.Global)); ok {
					s.Overhead = v
				}
			}
			names := make([]string, 0, len(fo.StorageClass))
			for n := range fo.StorageClass {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				if v, ok := b.overhead(o, p+`.filesystemOverhead.storageClass["`+n+`"]`, string(fo.StorageClass[n])); ok {
					s.ClassOverhead[n] = v
				}
			}
		}
		if cfg.ScratchSpaceStorageClass != nil {
			s.ScratchClass = *cfg.ScratchSpaceStorageClass
		}
		s.InsecureRegistries = append(s.InsecureRegistries, cfg.InsecureRegistries...)
		if cfg.Preallocation != nil {
			s.Preallocation = *cfg.Preallocation
		}
		if rr := cfg.PodResourceRequirements; rr != nil {
			s.Limits = limitsOf(rr.Limits)
		}
	}
	for _, o := range b.set.OfKind("HyperConverged") {
		if !b.usable(o) {
			continue
		}
		spec := o.Value.(*manifests.HyperConverged).Spec
		if spec.ScratchSpaceStorageClass != nil {
			s.ScratchClass = *spec.ScratchSpaceStorageClass
		}
		if si := spec.StorageImport; si != nil {
			s.InsecureRegistries = append(s.InsecureRegistries, si.InsecureRegistries...)
		}
		if rr := spec.ResourceRequirements; rr != nil && rr.StorageWorkloads != nil {
			s.Limits = limitsOf(rr.StorageWorkloads.Limits)
		}
	}
}

func limitsOf(l corev1.ResourceList) Limits {
	var out Limits
	if q, ok := l[corev1.ResourceCPU]; ok {
		out.CPUMillis = q.MilliValue()
	}
	if q, ok := l[corev1.ResourceMemory]; ok {
		out.MemoryBytes = q.Value()
	}
	return out
}

// overhead parses CDI's Percent: a decimal string in [0, 1).
func (b *builder) overhead(o *manifests.Object, p, v string) (float64, bool) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f >= 1 || math.IsNaN(f) {
		b.errorf(o, p, ErrOverhead, "got %q", v)
		return 0, false
	}
	return f, true
}

func (b *builder) hostPath() {
	objs := b.set.OfKind("HostPathProvisioner")
	for i, o := range objs {
		if !b.usable(o) {
			continue
		}
		if i > 0 {
			b.errorf(o, "", ErrHostPathSingle, "%s is the first", objs[0].Ref)
			continue
		}
		spec := o.Value.(*manifests.HostPathProvisioner).Spec
		hp := &HostPath{Object: o.Ref.String(), Pools: map[string]string{}}
		if pc := spec.PathConfig; pc != nil {
			hp.Path, hp.UseNamingPrefix = path.Clean(pc.Path), pc.UseNamingPrefix
		}
		for _, sp := range spec.StoragePools {
			hp.Pools[sp.Name] = path.Clean(sp.Path)
		}
		b.st.HostPath = hp
	}
}

func (b *builder) classes() {
	profiles := map[string][]PropertySet{}
	for _, o := range b.set.OfKind("StorageProfile") {
		if !b.usable(o) {
			continue
		}
		for i, cps := range o.Value.(*cdiv1beta1.StorageProfile).Spec.ClaimPropertySets {
			ps := PropertySet{VolumeMode: Filesystem}
			for _, m := range cps.AccessModes {
				ps.AccessModes = append(ps.AccessModes, string(m))
			}
			if cps.VolumeMode != nil {
				ps.VolumeMode = string(*cps.VolumeMode)
			}
			if ps.VolumeMode != Filesystem && ps.VolumeMode != Block {
				b.errorf(o, fmt.Sprintf("spec.claimPropertySets[%d].volumeMode", i), ErrVolumeMode, "got %q", ps.VolumeMode)
				continue
			}
			profiles[o.Ref.Name] = append(profiles[o.Ref.Name], ps)
		}
	}
	var defaults []string
	for _, o := range b.set.OfKind("StorageClass") {
		if !b.usable(o) {
			continue
		}
		sc := o.Value.(*storagev1.StorageClass)
		c := &Class{
			Name: o.Ref.Name, Object: o.Ref.String(), Provisioner: sc.Provisioner,
			Parameters: sc.Parameters, ReclaimPolicy: Delete, BindingMode: Immediate,
			Default: o.Annotations[AnnotationDefaultClass] == "true", file: o.File, line: o.Line,
		}
		if c.Provisioner == "" {
			b.errorf(o, "provisioner", ErrProvisionerRequired, "")
		}
		if sc.ReclaimPolicy != nil {
			c.ReclaimPolicy = string(*sc.ReclaimPolicy)
		}
		if c.ReclaimPolicy != Delete && c.ReclaimPolicy != Retain {
			b.errorf(o, "reclaimPolicy", ErrReclaimPolicy, "got %q", c.ReclaimPolicy)
		}
		if sc.VolumeBindingMode != nil {
			c.BindingMode = string(*sc.VolumeBindingMode)
		}
		if c.BindingMode != Immediate && c.BindingMode != WaitForFirstConsumer {
			b.errorf(o, "volumeBindingMode", ErrBindingMode, "got %q", c.BindingMode)
		}
		c.Profile = profiles[c.Name]
		if len(c.Profile) == 0 {
			c.Profile = knownProfile(c.Provisioner)
		}
		c.Features = FeaturesOf(c.Provisioner, c.Profile)
		if isHostPath(c.Provisioner) {
			hp := b.st.HostPath
			switch pool := c.Parameters["storagePool"]; {
			case hp == nil || (hp.Path == "" && len(hp.Pools) == 0):
				b.errorf(o, "provisioner", ErrNoHostPath, "")
			case pool != "" && hp.Pools[pool] == "":
				b.errorf(o, `parameters["storagePool"]`, ErrHostPathPool, "got %q", pool)
			case pool == "" && hp.Path == "":
				b.errorf(o, "parameters", ErrHostPathPool, "the HostPathProvisioner has no pathConfig.path; name one of its storagePools")
			}
		}
		if b.bad[c.Object] {
			b.st.Invalid[c.Object] = c.Object
			continue
		}
		b.st.Classes[c.Name] = c
		if c.Default {
			defaults = append(defaults, c.Name)
		}
	}
	sort.Strings(defaults)
	if len(defaults) > 0 {
		b.st.DefaultClass = defaults[0]
	}
	if len(defaults) > 1 {
		for _, o := range b.set.OfKind("StorageClass") {
			if o.Ref.Name == defaults[1] {
				b.warnf(o, `metadata.annotations["`+AnnotationDefaultClass+`"]`, ErrDefaultClasses, "%s", defaults[0])
			}
		}
	}
}

func isHostPath(p string) bool { return p == ProvisionerHostPath || p == ProvisionerHostPathCSI }

// vms records which VMs use which claims, and where they run.
func (b *builder) vms() {
	for _, o := range b.set.Objects {
		if o.Ref.Kind != "VirtualMachine" && o.Ref.Kind != "VirtualMachineInstance" {
			continue
		}
		if o.Value == nil {
			// Its templates and volumes are unknown: what it owns stays.
			b.st.Invalid[o.Ref.String()] = o.Ref.String()
			continue
		}
		if !o.Valid {
			b.st.Invalid[o.Ref.String()] = o.Ref.String()
		}
		b.vmObjects = append(b.vmObjects, o)
		here := b.opt.Placed(o)
		var spec *kubevirtv1.VirtualMachineInstanceSpec
		switch v := o.Value.(type) {
		case *kubevirtv1.VirtualMachine:
			// An invalid VM's templates are not taken: the DataVolumes it
			// owns keep their last good state (through Invalid).
			for i, dvt := range v.Spec.DataVolumeTemplates {
				if o.Valid {
					b.templates = append(b.templates, template{vm: o, index: i, dvt: dvt, here: here})
				}
			}
			if v.Spec.Template != nil {
				spec = &v.Spec.Template.Spec
			}
		case *kubevirtv1.VirtualMachineInstance:
			spec = &v.Spec
		}
		if spec == nil {
			continue
		}
		for _, vol := range spec.Volumes {
			name := ""
			switch {
			case vol.PersistentVolumeClaim != nil:
				name = vol.PersistentVolumeClaim.ClaimName
			case vol.DataVolume != nil:
				name = vol.DataVolume.Name
			}
			if name == "" {
				continue
			}
			key := o.Ref.Namespace + "/" + name
			if here {
				b.consumers[key] = append(b.consumers[key], o.Ref.String())
			} else {
				b.away[key] = append(b.away[key], o.Ref.String())
			}
		}
	}
}

// volumes reads the PersistentVolumes whose node affinity selects this node.
func (b *builder) volumes() {
	for _, o := range b.set.OfKind("PersistentVolume") {
		if !b.usable(o) {
			continue
		}
		pv := o.Value.(*corev1.PersistentVolume)
		v := &Volume{Name: o.Ref.Name, Object: o.Ref.String(), Class: pv.Spec.StorageClassName,
			ReclaimPolicy: Retain, VolumeMode: Filesystem, Labels: o.Labels}
		if q, ok := pv.Spec.Capacity[corev1.ResourceStorage]; !ok || q.Sign() <= 0 {
			b.errorf(o, "spec.capacity.storage", ErrCapacityRequired, "")
		} else {
			v.Capacity = q.Value()
		}
		v.AccessModes = b.accessModes(o, "spec.accessModes", pv.Spec.AccessModes, true)
		if pv.Spec.VolumeMode != nil {
			v.VolumeMode = string(*pv.Spec.VolumeMode)
		}
		if v.VolumeMode != Filesystem && v.VolumeMode != Block {
			b.errorf(o, "spec.volumeMode", ErrVolumeMode, "got %q", v.VolumeMode)
		}
		if rp := pv.Spec.PersistentVolumeReclaimPolicy; rp != "" {
			v.ReclaimPolicy = string(rp)
		}
		if v.ReclaimPolicy != Delete && v.ReclaimPolicy != Retain {
			b.errorf(o, "spec.persistentVolumeReclaimPolicy", ErrReclaimPolicy, "got %q", v.ReclaimPolicy)
		}
		src := pv.Spec.PersistentVolumeSource
		sp := ""
		switch {
		case src.Local != nil && src.HostPath == nil:
			v.Path, sp = src.Local.Path, "spec.local.path"
			if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
				b.errorf(o, "spec.nodeAffinity", ErrLocalNodeAffinity, "")
			}
		case src.HostPath != nil && src.Local == nil:
			v.Path, sp = src.HostPath.Path, "spec.hostPath.path"
		default:
			b.errorf(o, "spec", ErrVolumeSource, "")
		}
		if sp != "" && !path.IsAbs(v.Path) {
			b.errorf(o, sp, ErrPathAbsolute, "got %q", v.Path)
		}
		if v.VolumeMode == Block && sp != "" {
			if dir, base := path.Split(path.Clean(v.Path)); dir != "/dev/" || !loopName(base) {
				b.errorf(o, sp, ErrBlockLoop, "got %q", v.Path)
			} else {
				v.Loop = true
			}
		}
		if cr := pv.Spec.ClaimRef; cr != nil && cr.Name != "" {
			ns := cr.Namespace
			if ns == "" {
				ns = "default"
			}
			v.ClaimRef = ns + "/" + cr.Name
		}
		if b.bad[v.Object] {
			b.st.Invalid[v.Object] = v.Object
			continue
		}
		if !b.selects(pv.Spec.NodeAffinity) {
			continue
		}
		b.st.Volumes[v.Name] = v
	}
}

func loopName(base string) bool {
	n, ok := strings.CutPrefix(base, "loop")
	if !ok || n == "" {
		return false
	}
	_, err := strconv.Atoi(n)
	return err == nil
}

// selects evaluates a PV's required node affinity against this node's labels.
func (b *builder) selects(na *corev1.VolumeNodeAffinity) bool {
	if na == nil || na.Required == nil || len(na.Required.NodeSelectorTerms) == 0 {
		return true
	}
	for _, term := range na.Required.NodeSelectorTerms {
		if b.termMatches(term) {
			return true
		}
	}
	return false
}

func (b *builder) termMatches(term corev1.NodeSelectorTerm) bool {
	for _, e := range term.MatchExpressions {
		v, has := b.labels[e.Key]
		switch e.Operator {
		case corev1.NodeSelectorOpIn:
			if !has || !slices.Contains(e.Values, v) {
				return false
			}
		case corev1.NodeSelectorOpNotIn:
			if has && slices.Contains(e.Values, v) {
				return false
			}
		case corev1.NodeSelectorOpExists:
			if !has {
				return false
			}
		case corev1.NodeSelectorOpDoesNotExist:
			if has {
				return false
			}
		default:
			return false
		}
	}
	for _, f := range term.MatchFields {
		if f.Key == "metadata.name" && f.Operator == corev1.NodeSelectorOpIn && !slices.Contains(f.Values, b.opt.Node) {
			return false
		}
	}
	return true
}

func (b *builder) accessModes(o *manifests.Object, p string, modes []corev1.PersistentVolumeAccessMode, required bool) []string {
	if len(modes) == 0 && required {
		b.errorf(o, p, ErrAccessModes, "")
	}
	var out []string
	for i, m := range modes {
		switch m {
		case corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOncePod:
			out = append(out, string(m))
		default:
			b.errorf(o, fmt.Sprintf("%s[%d]", p, i), ErrAccessMode, "got %q", m)
		}
	}
	return out
}

// claims builds PersistentVolumeClaims, DataVolumes and dataVolumeTemplates.
func (b *builder) claims() {
	seen := map[string]string{}
	add := func(o *manifests.Object, c *Claim, p string) {
		if c == nil {
			return
		}
		if first, dup := seen[c.Key()]; dup {
			b.errorf(o, p, ErrClaimDuplicate, "%s is the first", first)
			return
		}
		seen[c.Key()] = c.Object
		b.st.Claims[c.Key()] = c
	}
	for _, o := range b.set.OfKind("DataVolume") {
		if !b.usable(o) {
			continue
		}
		dv := o.Value.(*cdiv1beta1.DataVolume)
		c := b.dataVolume(o, o.Ref.Namespace, o.Ref.Name, &dv.Spec, o.Annotations, "spec")
		if b.bad[o.Ref.String()] {
			b.st.Invalid[o.Ref.String()] = o.Ref.String()
			continue
		}
		add(o, c, "metadata.name")
	}
	for _, t := range b.templates {
		o := t.vm
		p := fmt.Sprintf("spec.dataVolumeTemplates[%d]", t.index)
		if t.dvt.Name == "" {
			b.errorf(o, p+".metadata.name", ErrDataVolumeTemplate, "")
			continue
		}
		before := len(b.st.Diags)
		c := b.dataVolume(o, o.Ref.Namespace, t.dvt.Name, &t.dvt.Spec, t.dvt.Annotations, p+".spec")
		if hasErrors(b.st.Diags[before:]) {
			b.st.Invalid[o.Ref.String()] = o.Ref.String()
			continue
		}
		if c == nil {
			continue
		}
		c.Owner = o.Ref.String()
		add(o, c, p+".metadata.name")
	}
	for _, o := range b.set.OfKind("PersistentVolumeClaim") {
		if !b.usable(o) {
			continue
		}
		c := b.pvc(o, o.Value.(*corev1.PersistentVolumeClaim))
		if b.bad[o.Ref.String()] {
			b.st.Invalid[o.Ref.String()] = o.Ref.String()
			continue
		}
		add(o, c, "metadata.name")
	}
}

func hasErrors(l diag.List) bool { return l.HasErrors() }

// class resolves a claim's storageClassName: nil means the default class,
// "" no class. A name not in the repository is an error.
func (b *builder) class(o *manifests.Object, p string, name *string) (*Class, string, bool) {
	n := b.st.DefaultClass
	if name != nil {
		n = *name
	}
	if n == "" {
		return nil, "", true
	}
	c := b.st.Classes[n]
	if c == nil {
		if b.st.Invalid["StorageClass "+n] != "" {
			// Its manifest is invalid: the claim waits with it.
			b.bad[o.Ref.String()] = true
			return nil, n, false
		}
		b.errorf(o, p, fmt.Errorf("no StorageClass %q in the repository", n), "")
		return nil, n, false
	}
	return c, n, true
}

func (b *builder) pvc(o *manifests.Object, pvc *corev1.PersistentVolumeClaim) *Claim {
	c := &Claim{Namespace: o.Ref.Namespace, Name: o.Ref.Name, Kind: "PersistentVolumeClaim", Object: o.Ref.String(),
		VolumeMode: Filesystem, File: o.File, Line: o.Line, VolumeName: pvc.Spec.VolumeName}
	spec := pvc.Spec
	c.AccessModes = b.accessModes(o, "spec.accessModes", spec.AccessModes, true)
	if spec.VolumeMode != nil {
		c.VolumeMode = string(*spec.VolumeMode)
	}
	if c.VolumeMode != Filesystem && c.VolumeMode != Block {
		b.errorf(o, "spec.volumeMode", ErrVolumeMode, "got %q", c.VolumeMode)
	}
	c.Request = b.request(o, "spec.resources.requests.storage", spec.Resources.Requests, true)
	if spec.Selector != nil {
		c.Selector = spec.Selector.MatchLabels
	}
	cls, name, ok := b.class(o, "spec.storageClassName", spec.StorageClassName)
	if !ok {
		return nil
	}
	c.Class = name
	b.size(c, "pvc", cls)
	c.Immediate = cls == nil || cls.BindingMode == Immediate
	c.pinnedTo = o.Annotations[AnnotationProvisionOnNode]
	return c
}

// request reads resources.requests.storage.
func (b *builder) request(o *manifests.Object, p string, req corev1.ResourceList, required bool) int64 {
	q, ok := req[corev1.ResourceStorage]
	if !ok {
		if required {
			b.errorf(o, p, ErrStorageRequired, "")
		}
		return 0
	}
	if q.Sign() <= 0 {
		b.errorf(o, p, ErrStorageSize, "got %s", q.String())
		return 0
	}
	return q.Value()
}

// size applies the filesystem overhead (seed 8.18.3, 8.18.4): with the
// storage API a Filesystem claim asks for more so that the disk gets the
// requested size; with the PVC API (and plain claims) the disk gets what is
// left after the overhead. Block claims have no overhead.
func (b *builder) size(c *Claim, api string, cls *Class) {
	c.API = api
	c.Capacity = c.Request
	if c.VolumeMode == Block || c.Request == 0 {
		return
	}
	ov := b.st.Settings.Overhead
	if v, ok := b.st.Settings.ClassOverhead[c.Class]; ok {
		ov = v
	}
	c.Overhead = ov
	if api == "storage" {
		c.Capacity = alignUp(int64(math.Ceil(float64(c.Request)/(1-ov))), mib)
		c.DiskSize = alignDown(c.Request, mib)
		if c.DiskSize == 0 {
			c.DiskSize = c.Request
		}
		return
	}
	c.DiskSize = alignDown(int64(math.Ceil((1-ov)*float64(c.Request))), mib)
	if c.DiskSize == 0 {
		c.DiskSize = c.Request
	}
}

const mib = 1 << 20

func alignUp(v, a int64) int64   { return (v + a - 1) / a * a }
func alignDown(v, a int64) int64 { return v / a * a }

func (b *builder) dataVolume(o *manifests.Object, ns, name string, spec *cdiv1beta1.DataVolumeSpec, ann map[string]string, p string) *Claim {
	obj := "DataVolume " + ns + "/" + name
	c := &Claim{Namespace: ns, Name: name, Kind: "DataVolume", Object: obj, VolumeMode: Filesystem, File: o.File, Line: o.Line}
	switch {
	case spec.SourceRef != nil && spec.Source == nil:
		b.errorf(o, p+".sourceRef", ErrDVSourceRef, "")
	case (spec.Source == nil) == (spec.SourceRef == nil):
		b.errorf(o, p+".source", ErrDVSource, "")
	default:
		c.Source = b.source(o, ns, p+".source", spec.Source)
	}
	if spec.ContentType == cdiv1beta1.DataVolumeArchive {
		b.errorf(o, p+".contentType", ErrDVArchive, "")
	}
	if len(spec.Checkpoints) > 0 {
		b.errorf(o, p+".checkpoints", ErrDVCheckpoints, "")
	}
	var (
		className *string
		api       string
		modes     []corev1.PersistentVolumeAccessMode
		mode      *corev1.PersistentVolumeMode
		requests  corev1.ResourceList
		cp        string
	)
	switch {
	case (spec.PVC == nil) == (spec.Storage == nil):
		b.errorf(o, p, ErrDVPVCStorage, "")
		return nil
	case spec.PVC != nil:
		api, cp = "pvc", p+".pvc"
		className, modes, mode, requests = spec.PVC.StorageClassName, spec.PVC.AccessModes, spec.PVC.VolumeMode, spec.PVC.Resources.Requests
		if len(modes) == 0 {
			b.errorf(o, cp+".accessModes", ErrPVCAccessModes, "")
		}
		if spec.PVC.Selector != nil {
			c.Selector = spec.PVC.Selector.MatchLabels
		}
		c.VolumeName = spec.PVC.VolumeName
	default:
		api, cp = "storage", p+".storage"
		className, modes, mode, requests = spec.Storage.StorageClassName, spec.Storage.AccessModes, spec.Storage.VolumeMode, spec.Storage.Resources.Requests
		if spec.Storage.Selector != nil {
			c.Selector = spec.Storage.Selector.MatchLabels
		}
		c.VolumeName = spec.Storage.VolumeName
	}
	c.AccessModes = b.accessModes(o, cp+".accessModes", modes, false)
	if mode != nil {
		c.VolumeMode = string(*mode)
		if c.VolumeMode != Filesystem && c.VolumeMode != Block {
			b.errorf(o, cp+".volumeMode", ErrVolumeMode, "got %q", c.VolumeMode)
		}
	}
	// A clone through the storage API may leave the size to the source.
	cloneNoSize := api == "storage" && c.Source != nil && c.Source.Kind == SourcePVC
	c.Request = b.request(o, cp+".resources.requests.storage", requests, !cloneNoSize)
	cls, cname, ok := b.class(o, cp+".storageClassName", className)
	if !ok {
		return nil
	}
	c.Class = cname
	if api == "storage" && (len(modes) == 0 || mode == nil) {
		b.fromProfile(o, cp, c, cls, len(modes) == 0, mode == nil)
	}
	if cls != nil && isHostPath(cls.Provisioner) && c.VolumeMode == Block {
		b.errorf(o, cp+".volumeMode", ErrHostPathBlock, "")
	}
	b.size(c, api, cls)
	c.Preallocate = b.st.Settings.Preallocation
	if spec.Preallocation != nil {
		c.Preallocate = *spec.Preallocation
	}
	c.Immediate = cls == nil || cls.BindingMode == Immediate
	c.pinnedTo = ann[AnnotationProvisionOnNode]
	c.ScratchClass = b.scratchClass(cname)
	c.Limits = b.st.Settings.Limits
	return c
}

// fromProfile fills accessModes and volumeMode from the class's
// StorageProfile (seed 8.18.3.3); an unknown provisioner with an empty
// profile allocates nothing.
func (b *builder) fromProfile(o *manifests.Object, p string, c *Claim, cls *Class, needModes, needMode bool) {
	var sets []PropertySet
	if cls != nil {
		sets = cls.Profile
	} else {
		sets = []PropertySet{{AccessModes: []string{ReadWriteOnce}, VolumeMode: Filesystem}}
	}
	for _, ps := range sets {
		if !needMode && ps.VolumeMode != c.VolumeMode {
			continue
		}
		if needModes {
			c.AccessModes = ps.AccessModes
		}
		if needMode {
			c.VolumeMode = ps.VolumeMode
		}
		return
	}
	if needModes {
		b.errorf(o, p, ErrDVProfile, "class %q, provisioner %q", cls.Name, cls.Provisioner)
	}
}

// scratchClass resolves scratch space (seed 8.18.18.2): the configured
// class if it exists, else the default class, else the claim's own.
func (b *builder) scratchClass(own string) string {
	if sc := b.st.Settings.ScratchClass; sc != "" && b.st.Classes[sc] != nil {
		return sc
	}
	if b.st.DefaultClass != "" {
		return b.st.DefaultClass
	}
	return own
}

func (b *builder) source(o *manifests.Object, ns, p string, s *cdiv1beta1.DataVolumeSource) *Source {
	n := 0
	for _, set := range []bool{s.HTTP != nil, s.S3 != nil, s.GCS != nil, s.Registry != nil, s.PVC != nil, s.Upload != nil, s.Blank != nil, s.Imageio != nil, s.VDDK != nil, s.Snapshot != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		b.errorf(o, p, ErrDVSourceKind, "%d set", n)
		return nil
	}
	switch {
	case s.HTTP != nil:
		h := s.HTTP
		src := &Source{Kind: SourceHTTP, URL: h.URL, SecretRef: h.SecretRef, CertConfigMap: h.CertConfigMap,
			Headers: h.ExtraHeaders, SecretHeaders: h.SecretExtraHeaders, Checksum: h.Checksum}
		if u, err := url.Parse(h.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			b.errorf(o, p+".http.url", ErrDVURL, "got %q", h.URL)
		}
		if h.Checksum != "" && !validChecksum(h.Checksum) {
			b.errorf(o, p+".http.checksum", ErrDVChecksum, "got %q", h.Checksum)
		}
		b.credentials(o, ns, p+".http", src)
		return src
	case s.Registry != nil:
		r := s.Registry
		src := &Source{Kind: SourceRegistry}
		if r.ImageStream != nil {
			b.errorf(o, p+".registry.imageStream", ErrDVRegistryStream, "")
		}
		if r.URL != nil {
			src.URL = *r.URL
		}
		host, ok := strings.CutPrefix(src.URL, "docker://")
		if !ok || host == "" {
			b.errorf(o, p+".registry.url", ErrDVRegistryURL, "got %q", src.URL)
		}
		host, _, _ = strings.Cut(host, "/")
		src.Insecure = slices.Contains(b.st.Settings.InsecureRegistries, host)
		if r.SecretRef != nil {
			src.SecretRef = *r.SecretRef
		}
		if r.CertConfigMap != nil {
			src.CertConfigMap = *r.CertConfigMap
		}
		if r.Platform != nil {
			src.Architecture = r.Platform.Architecture
		}
		b.credentials(o, ns, p+".registry", src)
		return src
	case s.PVC != nil:
		sns := s.PVC.Namespace
		if sns == "" {
			sns = ns
		}
		return &Source{Kind: SourcePVC, CloneOf: sns + "/" + s.PVC.Name}
	case s.Upload != nil:
		return &Source{Kind: SourceUpload}
	case s.Blank != nil:
		return &Source{Kind: SourceBlank}
	}
	kind := map[bool]string{s.S3 != nil: "s3", s.GCS != nil: "gcs", s.Imageio != nil: "imageio", s.VDDK != nil: "vddk", s.Snapshot != nil: "snapshot"}[true]
	b.errorf(o, p+"."+kind, ErrDVSourceNotLocal, "%s", kind)
	return nil
}

func validChecksum(s string) bool {
	alg, hex, ok := strings.Cut(s, ":")
	if !ok {
		return false
	}
	n := map[string]int{"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}[strings.ToLower(alg)]
	if n == 0 || len(hex) != n {
		return false
	}
	for _, r := range hex {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// credentials takes a referenced Secret or ConfigMap from the repository
// when it is there; a Secret in git works but is warned about.
func (b *builder) credentials(o *manifests.Object, ns, p string, src *Source) {
	if src.SecretRef != "" {
		if so := b.secrets[ns+"/"+src.SecretRef]; so != nil && so.Value != nil {
			sec := so.Value.(*corev1.Secret)
			src.SecretData = map[string][]byte{}
			for k, v := range sec.Data {
				src.SecretData[k] = v
			}
			for k, v := range sec.StringData {
				src.SecretData[k] = []byte(v)
			}
			b.warnf(so, "", ErrSecretInGit, "used by %s", o.Ref)
		}
	}
	if src.CertConfigMap != "" {
		if co := b.configs[ns+"/"+src.CertConfigMap]; co != nil && co.Value != nil {
			src.CAData = co.Value.(*corev1.ConfigMap).Data
		}
	}
	_ = p
}

// finish decides which claims this node serves, adds consumers and checks
// what VMs ask of their claims.
func (b *builder) finish() {
	for key, c := range b.st.Claims {
		c.Consumers = b.consumers[key]
		if c.Owner != "" && !slices.Contains(c.Consumers, c.Owner) {
			// A template's VM on this node owns and uses it.
			for _, t := range b.templates {
				if t.vm.Ref.String() == c.Owner && t.here {
					c.Consumers = append(c.Consumers, c.Owner)
				}
			}
		}
		sort.Strings(c.Consumers)
		away := b.away[key]
		for _, t := range b.templates {
			if t.vm.Ref.String() == c.Owner && !t.here {
				away = append(away, c.Owner)
			}
		}
		if len(c.Consumers) == 0 && len(away) > 0 {
			b.st.Elsewhere[key] = fmt.Sprintf("used by %s on another node", strings.Join(away, ", "))
			delete(b.st.Claims, key)
			continue
		}
		if len(c.Consumers) == 0 && c.pinnedTo != "" && c.pinnedTo != b.opt.Node {
			b.st.Elsewhere[key] = fmt.Sprintf("%s names node %s", AnnotationProvisionOnNode, c.pinnedTo)
			delete(b.st.Claims, key)
			continue
		}
		if c.Source != nil && c.Source.Kind == SourcePVC {
			if src := b.st.Claims[c.Source.CloneOf]; src == nil && b.st.Elsewhere[c.Source.CloneOf] == "" {
				b.reportOn(c, ErrDVCloneSource, c.Source.CloneOf)
			} else if src != nil && c.Request == 0 {
				c.Request, c.Capacity, c.DiskSize = src.Request, src.Capacity, src.DiskSize
			}
		}
		c.Hash = c.hash()
	}
	// VMs: claims they need and what their eviction strategy asks.
	for _, o := range b.vmObjects {
		var spec *kubevirtv1.VirtualMachineInstanceSpec
		prefix := "spec"
		switch v := o.Value.(type) {
		case *kubevirtv1.VirtualMachine:
			if v.Spec.Template != nil {
				spec, prefix = &v.Spec.Template.Spec, "spec.template.spec"
			}
		case *kubevirtv1.VirtualMachineInstance:
			spec = &v.Spec
		}
		if spec == nil || !b.opt.Placed(o) {
			continue
		}
		for i, vol := range spec.Volumes {
			name, field := "", ""
			switch {
			case vol.PersistentVolumeClaim != nil:
				name, field = vol.PersistentVolumeClaim.ClaimName, "persistentVolumeClaim.claimName"
			case vol.DataVolume != nil:
				name, field = vol.DataVolume.Name, "dataVolume.name"
			}
			if name == "" {
				continue
			}
			key := o.Ref.Namespace + "/" + name
			c := b.st.Claims[key]
			if c == nil && b.st.Invalid["DataVolume "+key] == "" && b.st.Invalid["PersistentVolumeClaim "+key] == "" && b.st.Invalid[o.Ref.String()] == "" {
				b.warnf(o, fmt.Sprintf("%s.volumes[%d].%s", prefix, i, field), ErrClaimMissing, "%q", name)
			}
			if c != nil && spec.EvictionStrategy != nil && *spec.EvictionStrategy == kubevirtv1.EvictionStrategyLiveMigrate {
				if cls := b.st.Classes[c.Class]; !slices.Contains(c.AccessModes, ReadWriteMany) || (cls != nil && cls.Features.LiveMigration == "no") {
					b.warnf(o, prefix+".evictionStrategy", ErrLiveMigrateRWO, "claim %q", name)
				}
			}
		}
	}
	for k := range b.bad {
		b.st.Invalid[k] = k
	}
}

// reportOn adds an error about a claim at its object; the claim waits.
func (b *builder) reportOn(c *Claim, rule error, detail string) {
	for _, o := range b.set.Objects {
		if o.Ref.String() == c.Object || o.Ref.String() == c.Owner {
			p := "spec.source.pvc"
			if c.Owner != "" {
				p = "spec.dataVolumeTemplates"
			}
			b.st.Diags = append(b.st.Diags, o.Errorf(p, "%w: %s", rule, detail))
			break
		}
	}
	delete(b.st.Claims, c.Key())
	b.st.Invalid[c.Object] = c.Object
}

// quantity renders bytes for people.
func quantity(n int64) string {
	return resource.NewQuantity(n, resource.BinarySI).String()
}
