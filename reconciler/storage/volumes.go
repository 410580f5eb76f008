package storage

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	"github.com/nodevirt/nodevirt/manifests"
)

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
		v.PathField = sp
		if sp != "" && !path.IsAbs(v.Path) {
			b.errorf(o, sp, ErrPathAbsolute, "got %q", v.Path)
		}
		if v.VolumeMode == Block && sp != "" {
			clean := path.Clean(v.Path)
			// A device the operator allowed is theirs, even a loop device
			// they attached themselves as the seed's procedure does; any
			// other /dev/loopN is nodevirt's to create and attach.
			switch dir, base := path.Split(clean); {
			case AllowedDevice(b.opt.AllowedBlockDevices, clean):
				v.Device = true
			case dir == "/dev/" && loopName(base):
				v.Loop = true
			default:
				b.errorf(o, sp, ErrBlockLoop, "got %q", v.Path)
			}
		}
		if cr := pv.Spec.ClaimRef; cr != nil && cr.Name != "" {
			ns := cr.Namespace
			if ns == "" {
				ns = "default"
			}
			v.ClaimRef = ns + "/" + cr.Name
		}
		// The class is named even by a volume refused here: its claims
		// wait for it instead of being refused too.
		if v.Class != "" {
			ps := PropertySet{AccessModes: v.AccessModes, VolumeMode: v.VolumeMode}
			if !slices.ContainsFunc(b.staticClasses[v.Class], func(o PropertySet) bool {
				return o.VolumeMode == ps.VolumeMode && slices.Equal(o.AccessModes, ps.AccessModes)
			}) {
				b.staticClasses[v.Class] = append(b.staticClasses[v.Class], ps)
			}
		}
		if b.bad[v.Object] {
			b.st.Invalid[v.Object] = v.Object
			continue
		}
		if !b.selects(pv.Spec.NodeAffinity) {
			b.st.Away[v.Name] = AwayVolume{Reason: "its nodeAffinity selects another node", NodeAffinity: pv.Spec.NodeAffinity}
			continue
		}
		b.st.Volumes[v.Name] = v
	}
}

// AllowedDevice reports whether the clean absolute path p matches one of
// the allow-list's devices or patterns, as written: symlinks are resolved
// on the host later, and the device they lead to must be a block device.
func AllowedDevice(allowed []string, p string) bool {
	for _, pat := range allowed {
		if ok, err := path.Match(path.Clean(pat), p); err == nil && ok {
			return true
		}
	}
	return false
}

// CheckDevicePattern refuses an --allowed-block-device entry that is not
// an absolute pattern under /dev.
func CheckDevicePattern(pat string) error {
	if !strings.HasPrefix(path.Clean(pat), "/dev/") {
		return fmt.Errorf("%q: want a device path or pattern under /dev/", pat)
	}
	if _, err := path.Match(pat, "/dev/x"); err != nil {
		return fmt.Errorf("%q: %w", pat, err)
	}
	return nil
}

func loopName(base string) bool {
	n, ok := strings.CutPrefix(base, "loop")
	if !ok || n == "" {
		return false
	}
	_, err := strconv.Atoi(n)
	return err == nil
}

// selects evaluates a PV's required node affinity against this node (its
// name and labels) as the scheduler does; a selector the library refuses
// selects nothing.
func (b *builder) selects(na *corev1.VolumeNodeAffinity) bool {
	if na == nil || na.Required == nil || len(na.Required.NodeSelectorTerms) == 0 {
		return true
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: b.opt.Node, Labels: b.labels}}
	ok, err := corev1helpers.MatchNodeSelectorTerms(node, na.Required)
	return err == nil && ok
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
