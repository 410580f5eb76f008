package storage

import (
	"fmt"
	"math"

	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/manifests"
)

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
				b.templates = append(b.templates, template{vm: o, index: i, dvt: dvt, here: here, checkOnly: !o.Valid})
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
		check := b.checkOnly(o)
		if !check && !b.usable(o) {
			continue
		}
		dv := o.Value.(*cdiv1beta1.DataVolume)
		c := b.dataVolume(o, o.Ref.Namespace, o.Ref.Name, &dv.Spec, o.Annotations, "spec")
		if check || b.bad[o.Ref.String()] {
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
		if t.checkOnly || hasErrors(b.st.Diags[before:]) {
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
		check := b.checkOnly(o)
		if !check && !b.usable(o) {
			continue
		}
		c := b.pvc(o, o.Value.(*corev1.PersistentVolumeClaim))
		if check || b.bad[o.Ref.String()] {
			b.st.Invalid[o.Ref.String()] = o.Ref.String()
			continue
		}
		add(o, c, "metadata.name")
	}
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

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }

func alignDown(v, a int64) int64 { return v / a * a }
