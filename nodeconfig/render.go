package nodeconfig

import (
	"bytes"
	"fmt"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/nodeconfig/butane"
)

// Render renders the host configuration of node from the decoded manifests
// and the Butane files under sourceDir. The diagnostics (also in
// HostConfig.Diags) cover every config of the source, including those for
// other roles, so validation reports them on every node.
func Render(set *manifests.Set, sourceDir string, node Node) (*HostConfig, diag.List) {
	bus, diags := LoadButaneIn(treeRoot(set, sourceDir), sourceDir)
	h := RenderFrom(set, sourceDir, bus, node)
	// An unreadable Butane file may hold configs nodevirt applied.
	h.PruneSuspended = h.PruneSuspended || diags.HasErrors()
	h.Diags = append(diags, h.Diags...)
	h.Diags.Sort()
	return h, h.Diags
}

// treeRoot is the source tree that symlinks must stay inside: the one the
// manifests were loaded from, else sourceDir itself.
func treeRoot(set *manifests.Set, sourceDir string) string {
	if set != nil && set.Tree != "" {
		return set.Tree
	}
	return sourceDir
}

// RenderFrom is Render with the Butane files already read. sourceDir is
// where contents.local paths of a Butane file are resolved (relative to
// the file's own directory), by the source tree's symlink rule.
func RenderFrom(set *manifests.Set, sourceDir string, bus []ButaneFile, node Node) *HostConfig {
	if len(node.Roles) == 0 {
		node.Roles = []string{DefaultRole}
	}
	h := &HostConfig{Node: node, Files: []File{}, Units: []Unit{}, KernelArgs: []KernelArg{}}
	var all []*rendered
	if set != nil {
		h.PruneSuspended = set.Incomplete
		for _, o := range set.Objects {
			h.AllowPruneAll = h.AllowPruneAll || o.Annotations[AnnotationAllowPruneAll] == "true"
		}
		for _, o := range set.OfKind("MachineConfig") {
			all = append(all, renderMachineConfig(o))
		}
	}
	root := treeRoot(set, sourceDir)
	for _, bf := range bus {
		all = append(all, renderButane(bf, root, sourceDir))
	}
	dedupeNames(all)
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].cfg.Name != all[j].cfg.Name {
			return all[i].cfg.Name < all[j].cfg.Name
		}
		return all[i].cfg.Object < all[j].cfg.Object
	})

	m := merger{h: h, files: map[string]int{}, units: map[string]int{}}
	for _, r := range all {
		c := r.cfg
		c.Applies = appliesTo(c.Roles, c.Roles == nil, node)
		c.Invalid = c.Invalid || r.diags.HasErrors()
		h.Configs = append(h.Configs, c)
		h.Diags = append(h.Diags, r.diags...)
		switch {
		case !c.Applies:
		case c.Invalid:
			h.Invalid = append(h.Invalid, c.Object)
		default:
			m.merge(r)
		}
	}
	h.KernelArgs, h.KernelArgsAbsent = dedupeKargs(h.KernelArgs, h.KernelArgsAbsent, &h.Diags)
	if set != nil {
		renderHyperConverged(h, set)
		renderHostPath(h, set)
	}
	vfioFromConfig(h)
	generateVFIO(h)
	labelsFromUnits(h)
	h.Diags.Sort()
	return h
}

// appliesTo: a MachineConfig applies to nodes with its role; an fcos
// Butane file (no role) to every node.
func appliesTo(roles []string, everyNode bool, n Node) bool {
	if everyNode {
		return true
	}
	for _, r := range roles {
		if n.HasRole(r) {
			return true
		}
	}
	return false
}

func renderMachineConfig(o *manifests.Object) *rendered {
	g := &origin{object: o.Ref.String(), file: o.File, obj: o}
	c := Config{Object: g.object, File: o.File, Name: o.Ref.Name}
	mc, ok := o.Value.(*manifests.MachineConfig)
	var r *rendered
	if !ok || mc == nil {
		// manifests reported why it did not decode.
		r = &rendered{g: g}
		c.Invalid = true
	} else {
		r = convert(g, mc.Spec.Config, mcFields{
			KernelArguments: mc.Spec.KernelArguments,
			Extensions:      mc.Spec.Extensions,
			FIPS:            mc.Spec.FIPS,
			KernelType:      mc.Spec.KernelType,
			OSImageURL:      mc.Spec.OSImageURL,
		})
		c.Invalid = !o.Valid
	}
	switch role := o.Labels[LabelMCRole]; {
	case role != "":
		c.Roles = []string{role}
	case c.Invalid || r.diags.HasErrors():
		// As for a Butane file that fails: without a readable role the
		// config counts for every node, so whatever it applied earlier is
		// kept rather than removed.
		c.Roles = nil
	default:
		r.diags = append(r.diags, g.diag(diag.Warning, "metadata.labels", ErrNoRole))
		c.Roles = []string{}
	}
	r.cfg = c
	return r
}

func renderButane(bf ButaneFile, root, sourceDir string) *rendered {
	object := "Butane " + bf.File
	c := Config{Object: object, File: bf.File, Name: strings.TrimSuffix(path.Base(bf.File), ".bu")}
	refuse := func(diags diag.List) *rendered {
		for i := range diags {
			diags[i].Object = object
		}
		// As for a file that does not translate: the role is unknown, so
		// the file counts for every node and what it applied is kept.
		c.Invalid = true
		return &rendered{cfg: c, g: &origin{object: object, file: bf.File, bu: indexYAML(nil)}, diags: diags}
	}
	// Butane and the position index expand aliases; bound them first.
	if err := manifests.CheckExpansion(bf.Data); err != nil {
		return refuse(diag.List{{Severity: diag.Error, File: bf.File, Message: err.Error(), Err: err}})
	}
	g := &origin{object: object, file: bf.File, bu: indexYAML(bf.Data)}
	filesDir := ""
	if sourceDir != "" {
		filesDir = filepath.Join(sourceDir, filepath.FromSlash(path.Dir(bf.File)))
		if prefix, err := filepath.Rel(root, sourceDir); err == nil && filepath.IsLocal(prefix) {
			dir := path.Join(filepath.ToSlash(prefix), path.Dir(bf.File))
			if refused := checkLocalFiles(bf.File, bf.Data, root, dir); len(refused) > 0 {
				r := refuse(refused)
				r.g = g
				if role := g.bu.scalar["metadata.labels."+LabelMCRole]; role != "" {
					r.cfg.Roles = []string{role}
				}
				return r
			}
		} else {
			filesDir = "" // not inside its tree: local files are refused
		}
	}
	opts := butane.Options{FilesDir: filesDir}
	res, diags := butane.Translate(bf.File, bf.Data, opts)
	for i := range diags {
		diags[i].Object = object
	}
	if res == nil {
		// The role is unknown when translation fails unless the file spells
		// it; without it the file counts for every node, so whatever it
		// applied earlier is kept rather than removed.
		c.Invalid = true
		if role := g.bu.scalar["metadata.labels."+LabelMCRole]; role != "" {
			c.Roles = []string{role}
		}
		r := &rendered{cfg: c, g: g, diags: diags}
		if draft := butane.Draft(bf.Data, opts); draft != nil {
			g.res = draft
			r.checkDraft(draft.Ignition)
		}
		return r
	}
	g.res = res
	r := convert(g, res.Ignition, mcFields{
		KernelArguments: res.KernelArguments,
		Extensions:      res.Extensions,
		FIPS:            res.FIPS,
		KernelType:      res.KernelType,
	})
	r.diags = append(diags, r.diags...)
	if res.Variant == "openshift" {
		c.Name = res.Name
		c.Roles = []string{}
		if role := res.Labels[LabelMCRole]; role != "" {
			c.Roles = []string{role}
		}
	}
	r.cfg = c
	return r
}

// dedupeNames handles a Butane file and a MachineConfig (or two Butane
// files) that make the same MachineConfig name: the usual cause is a repo
// holding both x.bu and the x.yaml `butane` generated from it. The same
// content is fine (the MachineConfig is used); different content is an
// error on both, since nodevirt cannot tell which one is meant.
func dedupeNames(all []*rendered) {
	byName := map[string][]*rendered{}
	for _, r := range all {
		if r.cfg.Roles == nil { // fcos: named after the file, no MachineConfig
			continue
		}
		byName[r.cfg.Name] = append(byName[r.cfg.Name], r)
	}
	for name, rs := range byName {
		if len(rs) < 2 {
			continue
		}
		sort.SliceStable(rs, func(i, j int) bool { // MachineConfig first
			return (rs[i].g.obj != nil) && (rs[j].g.obj == nil)
		})
		first := rs[0]
		for _, r := range rs[1:] {
			if !first.cfg.Invalid && !r.cfg.Invalid && sameContent(first, r) && first.g.obj != nil {
				r.diags = append(r.diags, r.g.diag(diag.Warning, "metadata.name", fmt.Errorf("%w: %s (%s) has the same name and content; it is used and this file is skipped", ErrDuplicateConfig, first.cfg.Object, first.cfg.File)))
				r.cfg.Roles = []string{} // applies nowhere
				continue
			}
			for _, x := range []*rendered{first, r} {
				other := first
				if x == first {
					other = r
				}
				x.diags = append(x.diags, x.g.diag(diag.Error, "metadata.name", fmt.Errorf("%w: %s (%s) also makes MachineConfig %q with different content; regenerate one from the other or remove one", ErrDuplicateConfig, other.cfg.Object, other.cfg.File, name)))
			}
		}
	}
}

func sameContent(a, b *rendered) bool {
	strip := func(r *rendered) ([]File, []Unit, []string) {
		fs := make([]File, len(r.files))
		for i, f := range r.files {
			f.Source = Source{}
			fs[i] = f
		}
		us := make([]Unit, len(r.units))
		for i, u := range r.units {
			u.Source = Source{}
			us[i] = u
		}
		var ks []string
		for _, k := range r.kargs {
			ks = append(ks, k.Value)
		}
		return fs, us, ks
	}
	af, au, ak := strip(a)
	bf, bu, bk := strip(b)
	return reflect.DeepEqual(af, bf) && reflect.DeepEqual(au, bu) && reflect.DeepEqual(ak, bk)
}

// merger merges configs in name order with Ignition's rules, as the
// Machine Config Operator merges MachineConfigs: a later file replaces an
// earlier one at the same path; a later unit's fields override an earlier
// one's, and drop-ins merge by name; kernel arguments append.
type merger struct {
	h     *HostConfig
	files map[string]int
	units map[string]int
}

func (m *merger) merge(r *rendered) {
	h := m.h
	for _, f := range r.files {
		if i, ok := m.files[f.Path]; ok {
			prev := h.Files[i].Source
			if !bytes.Equal(h.Files[i].Contents, f.Contents) || h.Files[i].Mode != f.Mode {
				h.Diags = append(h.Diags, r.g.diag(diag.Warning, f.Source.Path, fmt.Errorf("%w: file %s replaces the one from %s (configs merge in name order)", ErrOverridden, f.Path, prev.Object)))
			}
			h.Files[i] = f
			continue
		}
		m.files[f.Path] = len(h.Files)
		h.Files = append(h.Files, f)
	}
	for _, u := range r.units {
		i, ok := m.units[u.Name]
		if !ok {
			m.units[u.Name] = len(h.Units)
			h.Units = append(h.Units, u)
			continue
		}
		cur := &h.Units[i]
		if u.Contents != nil {
			if cur.Contents != nil && *cur.Contents != *u.Contents {
				h.Diags = append(h.Diags, r.g.diag(diag.Warning, u.Source.Path, fmt.Errorf("%w: unit %s replaces the contents from %s (configs merge in name order)", ErrOverridden, u.Name, cur.Source.Object)))
			}
			cur.Contents = u.Contents
		}
		if u.Enabled != nil {
			cur.Enabled = u.Enabled
		}
		if u.Mask != nil {
			cur.Mask = u.Mask
		}
		for _, d := range u.Dropins {
			replaced := false
			for j := range cur.Dropins {
				if cur.Dropins[j].Name == d.Name {
					cur.Dropins[j] = d
					replaced = true
				}
			}
			if !replaced {
				cur.Dropins = append(cur.Dropins, d)
			}
		}
		cur.Source = u.Source
	}
	h.KernelArgs = append(h.KernelArgs, r.kargs...)
	h.KernelArgsAbsent = append(h.KernelArgsAbsent, r.absent...)
}

// dedupeKargs drops repeated kernel arguments, keeping the first. A
// hugepages=N argument counts for the hugepagesz= before it, so it is never
// dropped. An argument both wanted and unwanted stays wanted.
func dedupeKargs(want, absent []KernelArg, diags *diag.List) ([]KernelArg, []KernelArg) {
	seen := map[string]bool{}
	out := []KernelArg{}
	for _, k := range want {
		key, _, _ := strings.Cut(k.Value, "=")
		if seen[k.Value] && key != "hugepages" {
			continue
		}
		seen[k.Value] = true
		out = append(out, k)
	}
	var outAbsent []KernelArg
	seenAbsent := map[string]bool{}
	for _, k := range absent {
		if seenAbsent[k.Value] {
			continue
		}
		seenAbsent[k.Value] = true
		if seen[k.Value] {
			*diags = append(*diags, diag.Diagnostic{Severity: diag.Warning, File: k.Source.File, Line: k.Source.Line, Object: k.Source.Object, Path: k.Source.Path,
				Message: fmt.Sprintf("kernel argument %s is both wanted and unwanted; another config wants it, so it stays", k.Value), Err: ErrOverridden})
			continue
		}
		outAbsent = append(outAbsent, k)
	}
	return out, outAbsent
}
