package storage

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	kubevirtv1 "kubevirt.io/api/core/v1"

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
	// AllowedBlockDevices are host block devices, or path.Match patterns
	// of them (/dev/disk/by-id/wwn-*), that a Block PersistentVolume's path
	// may name as written (--allowed-block-device). Loop devices need none.
	AllowedBlockDevices []string
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
			Invalid: map[string]string{}, Elsewhere: map[string]string{}, Away: map[string]AwayVolume{},
			Settings:       Settings{Overhead: DefaultFilesystemOverhead, ClassOverhead: map[string]float64{}},
			PruneSuspended: set.Incomplete,
		},
		bad:       map[string]bool{},
		consumers: map[string][]string{},
		away:      map[string][]string{},
		secrets:   map[string]*manifests.Object{},
		configs:   map[string]*manifests.Object{},

		staticClasses: map[string][]PropertySet{},
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
	// staticClasses are the storageClassNames of the repository's
	// PersistentVolumes (on any node) with their modes, built in volumes().
	staticClasses map[string][]PropertySet
}

type template struct {
	vm    *manifests.Object
	index int
	dvt   kubevirtv1.DataVolumeTemplateSpec
	here  bool
	// checkOnly: the VM is invalid; the template is checked so all its
	// errors show at once, and not taken.
	checkOnly bool
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

// checkOnly reports whether an object is invalid but decoded: its storage
// rules are still checked, so one pass shows all of its errors, but nothing
// is built from it (it keeps its last good state).
func (b *builder) checkOnly(o *manifests.Object) bool {
	if o.Valid || o.Value == nil {
		return false
	}
	b.st.Invalid[o.Ref.String()] = o.Ref.String()
	return true
}

func hasErrors(l diag.List) bool { return l.HasErrors() }

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
		spec, prefix := vmSpec(o)
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
	b.sharedClaims()
	for k := range b.bad {
		b.st.Invalid[k] = k
	}
}

// sharedClaims warns about a claim two VMs on this node write without
// shareable: QEMU locks a disk image for one writer, so whichever VM starts
// second fails; shareable (or readonly) on every writer's disk is what
// KubeVirt users write for clustered file systems.
func (b *builder) sharedClaims() {
	type use struct {
		vm   *manifests.Object
		path string
		ok   bool // shareable or read-only
	}
	uses := map[string][]use{}
	for _, o := range b.vmObjects {
		spec, prefix := vmSpec(o)
		if spec == nil || !b.opt.Placed(o) {
			continue
		}
		for i, d := range spec.Domain.Devices.Disks {
			for _, vol := range spec.Volumes {
				if vol.Name != d.Name {
					continue
				}
				name, ro := "", false
				switch {
				case vol.PersistentVolumeClaim != nil:
					name, ro = vol.PersistentVolumeClaim.ClaimName, vol.PersistentVolumeClaim.ReadOnly
				case vol.DataVolume != nil:
					name = vol.DataVolume.Name
				}
				if name == "" {
					continue
				}
				ro = ro || (d.Disk != nil && d.Disk.ReadOnly) || (d.LUN != nil && d.LUN.ReadOnly) || d.CDRom != nil
				key := o.Ref.Namespace + "/" + name
				uses[key] = append(uses[key], use{vm: o, path: fmt.Sprintf("%s.domain.devices.disks[%d]", prefix, i),
					ok: ro || (d.Shareable != nil && *d.Shareable)})
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(uses)) {
		us := uses[key]
		for _, u := range us {
			if u.ok {
				continue
			}
			var others []string
			for _, w := range us {
				if w.vm != u.vm && !slices.Contains(others, w.vm.Ref.String()) {
					others = append(others, w.vm.Ref.String())
				}
			}
			if len(others) > 0 {
				b.warnf(u.vm, u.path, ErrClaimShared, "claim %q is also used by %s", key, strings.Join(others, ", "))
			}
		}
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

// vmSpec is the VMI spec of a VirtualMachine's template or of a
// VirtualMachineInstance, with where it sits in the document; nil for a VM
// without a template.
func vmSpec(o *manifests.Object) (*kubevirtv1.VirtualMachineInstanceSpec, string) {
	switch v := o.Value.(type) {
	case *kubevirtv1.VirtualMachine:
		if v.Spec.Template != nil {
			return &v.Spec.Template.Spec, "spec.template.spec"
		}
	case *kubevirtv1.VirtualMachineInstance:
		return &v.Spec, "spec"
	}
	return nil, "spec"
}
