package storage

import (
	"fmt"
	"sort"

	storagev1 "k8s.io/api/storage/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/manifests"
)

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

// class resolves a claim's storageClassName: nil means the default class,
// "" no class. A name with no StorageClass is a class of static volumes
// when a PersistentVolume names it (Kubernetes binds by the name alone;
// cls is then nil); a name neither has is an error.
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
		if _, static := b.staticClasses[n]; static {
			return nil, n, true
		}
		b.errorf(o, p, ErrClassMissing, "%q", n)
		return nil, n, false
	}
	return c, n, true
}

// fromProfile fills accessModes and volumeMode from the class's
// StorageProfile (seed 8.18.3.3); an unknown provisioner with an empty
// profile allocates nothing.
func (b *builder) fromProfile(o *manifests.Object, p string, c *Claim, cls *Class, needModes, needMode bool) {
	var sets []PropertySet
	switch {
	case cls != nil:
		sets = cls.Profile
	case c.Class != "":
		// No StorageClass, so no StorageProfile: CDI takes the modes of
		// the class's PersistentVolumes, as it does for local storage.
		sets = b.staticClasses[c.Class]
	default:
		// No class: a node-local disk, ReadWriteOnce in the mode the claim
		// asks for (Filesystem when it names none).
		sets = []PropertySet{
			{AccessModes: []string{ReadWriteOnce}, VolumeMode: Filesystem},
			{AccessModes: []string{ReadWriteOnce}, VolumeMode: Block},
		}
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
	if needModes && cls != nil {
		b.errorf(o, p, ErrDVProfile, "class %q, provisioner %q", cls.Name, cls.Provisioner)
	} else if needModes {
		b.errorf(o, p, ErrDVStaticModes, "class %q", c.Class)
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
