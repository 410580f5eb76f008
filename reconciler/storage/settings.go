package storage

import (
	"fmt"
	"math"
	"path"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/manifests"
)

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
	if spec, _ := vmSpec(o); spec != nil {
		sel = spec.NodeSelector
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
		for i, sp := range spec.StoragePools {
			hp.Pools[sp.Name] = path.Clean(sp.Path)
			if sp.PVCTemplate != nil {
				b.warnf(o, fmt.Sprintf("spec.storagePools[%d].pvcTemplate", i), ErrHostPathPVCTemplate, "pool %q uses %s", sp.Name, hp.Pools[sp.Name])
			}
		}
		b.st.HostPath = hp
	}
}
