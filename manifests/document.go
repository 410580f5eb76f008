package manifests

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kubevirtv1 "kubevirt.io/api/core/v1"
	instancetypev1beta1 "kubevirt.io/api/instancetype/v1beta1"
	snapshotv1beta1 "kubevirt.io/api/snapshot/v1beta1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// parseDocument decodes one YAML document into an Object, or reports why its
// identity is unknown. types caches what the schema walk reads of Go types
// across documents; it is not safe for concurrent use.
func (s *Set) parseDocument(file string, doc *yaml.Node, opt Options, types *typeTables) {
	if len(doc.Content) == 0 {
		return
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return // an empty document, e.g. a trailing "---" or only comments
	}
	if root.Kind != yaml.MappingNode {
		s.Incomplete = true
		s.Diags = append(s.Diags, problemDiag(file, problem{line: root.Line, col: root.Column, err: ErrNotMapping}))
		return
	}

	encrypted, decryptErr := decrypt(root, opt)
	// Every node but the mappings' keys has a path, about half of them:
	// sized once, the map is not rehashed as the paths are recorded.
	pos := make(map[string]position, countNodes(root)/2+1)
	pos[""] = nodePosition(root)
	c := converter{pos: pos}
	tree, _ := c.convert(root, "", 0).(map[string]any)

	info, ident := s.identity(file, tree, c.pos)
	if !ident.ok {
		for _, p := range c.problems {
			s.Diags = append(s.Diags, problemDiag(file, p))
		}
		return
	}
	o := &Object{
		Ref:        Ref{Kind: ident.kind, Name: ident.name},
		APIVersion: ident.apiVersion,
		File:       file,
		Line:       root.Line,
		Col:        root.Column,
		pos:        c.pos,
		Encrypted:  encrypted,
	}
	meta, _ := tree["metadata"].(map[string]any)
	o.Labels = stringMap(meta["labels"])
	o.Annotations = stringMap(meta["annotations"])
	var diags diag.List
	if info.cluster {
		if ident.namespace != "" {
			diags = append(diags, o.Warnf("metadata.namespace", "%w", ErrClusterNamespace))
		}
	} else {
		o.Ref.Namespace = ident.namespace
		if o.Ref.Namespace == "" {
			o.Ref.Namespace = opt.namespace()
		}
	}

	for _, err := range validateNames(o, ident.namespace != "") {
		diags = append(diags, o.Errorf(err.path, "%w", err))
	}
	if decryptErr != nil {
		// Its values are still ciphertext: reading them would only add
		// errors about what nobody wrote.
		s.Objects = append(s.Objects, o)
		s.Diags = append(s.Diags, append(diags, o.Errorf("sops", "%w", decryptErr))...)
		return
	}

	if ident.refused != nil {
		where := "apiVersion"
		if errors.Is(ident.refused, ErrUnsupportedKind) {
			where = "kind"
		}
		p, ok := c.pos[where]
		if !ok {
			p = c.pos[""]
		}
		diags = append(diags, o.fromProblem(problem{path: where, line: int(p.line), col: int(p.col), err: ident.refused}))
		for _, p := range c.problems {
			diags = append(diags, o.fromProblem(p))
		}
		s.Objects = append(s.Objects, o)
		s.Diags = append(s.Diags, diags...)
		return
	}

	decodable := true
	for _, p := range c.problems {
		diags = append(diags, o.fromProblem(p))
		if errors.Is(p.err, ErrType) || errors.Is(p.err, ErrTag) || errors.Is(p.err, ErrSyntax) {
			decodable = false
		}
	}
	w := schemaWalker{lenient: info.partial, types: types}
	w.walk(root, info.typ, "", 0)
	for _, p := range w.problems {
		diags = append(diags, o.fromProblem(p))
	}
	value := reflect.New(info.valueType()).Interface()
	data, err := json.Marshal(tree)
	if err == nil {
		err = json.Unmarshal(data, value)
	}
	if err != nil && w.typeErrs == 0 && decodable {
		// The walker should have found this first; report it rather than lose it.
		diags = append(diags, o.jsonError(err))
	}
	if err == nil && w.typeErrs == 0 && decodable {
		o.Value = value
		if info.convert != nil {
			var notes []conversionNote
			o.Value, notes = info.convert(o, value)
			for _, n := range notes {
				diags = append(diags, o.Warnf(n.path, "%w", n.err))
			}
		}
		if info.to != "" {
			if k, ok := o.Value.(interface{ GetObjectKind() schema.ObjectKind }); ok {
				k.GetObjectKind().SetGroupVersionKind(schema.FromAPIVersionAndKind(info.to, ident.kind))
			}
		}
		diags = append(diags, prepare(o, opt)...)
	}
	s.Objects = append(s.Objects, o)
	s.Diags = append(s.Diags, diags...)
}

type identity struct {
	apiVersion, kind, name, namespace string
	ok                                bool
	// refused is set for a version upstream no longer serves
	// (NotServedError) or a kind upstream serves that nodevirt does not
	// support (UnsupportedKindError): the object is known, but not read.
	refused error
}

// identity reads apiVersion, kind and metadata.name straight from the tree, so
// they are known even when the rest of the document does not decode.
func (s *Set) identity(file string, tree map[string]any, pos map[string]position) (kindInfo, identity) {
	// at reports err where where is written, or at the document. The
	// diagnostic names a path only for "kind": for the missing fields the
	// message already says which one.
	at := func(where string, err error) {
		p, ok := pos[where]
		if !ok {
			p = pos[""]
		}
		path := ""
		if ok && where == "kind" {
			path = where
		}
		s.Incomplete = true
		s.Diags = append(s.Diags, problemDiag(file, problem{path: path, line: int(p.line), col: int(p.col), err: err}))
	}
	var id identity
	id.apiVersion, _ = tree["apiVersion"].(string)
	id.kind, _ = tree["kind"].(string)
	meta, _ := tree["metadata"].(map[string]any)
	// A numeric name (name: 2024) is a type error reported with the object,
	// not a missing name that would suspend pruning.
	id.name = scalarText(meta["name"])
	id.namespace = scalarText(meta["namespace"])

	if id.apiVersion == "" {
		at("apiVersion", ErrMissingAPIVersion)
	}
	if id.kind == "" {
		at("kind", ErrMissingKind)
	}
	if id.apiVersion == "" || id.kind == "" {
		return kindInfo{}, id
	}
	info, known := lookupKind(id.apiVersion, id.kind)
	if !known {
		info, err := unservedKind(id.apiVersion, id.kind)
		if !errors.Is(err, ErrNotServed) && !errors.Is(err, ErrUnsupportedKind) || id.name == "" {
			at("kind", err)
			return kindInfo{}, id
		}
		// The object is known, only not read: it is kept (without a value,
		// so it is invalid and keeps its last good state) and its other
		// errors are still reported.
		id.ok, id.refused = true, err
		return info, id
	}
	if id.name == "" {
		at("metadata", fmt.Errorf("%w (%s)", ErrMissingName, id.kind))
		return kindInfo{}, id
	}
	id.ok = true
	return info, id
}

func problemDiag(file string, p problem) diag.Diagnostic {
	sev := diag.Error
	if p.warn {
		sev = diag.Warning
	}
	return diag.Diagnostic{Severity: sev, File: file, Line: p.line, Col: p.col, Path: p.path, Message: p.err.Error(), Err: p.err}
}

func (o *Object) fromProblem(p problem) diag.Diagnostic {
	d := problemDiag(o.File, p)
	d.Object = o.Ref.String()
	return d
}

// jsonError places an encoding/json error: its Field is the dotted JSON path
// without list indices, whose nearest ancestor in the document is still useful.
func (o *Object) jsonError(err error) diag.Diagnostic {
	var te *json.UnmarshalTypeError
	path := ""
	if errors.As(err, &te) {
		path = te.Field
	}
	return o.diagnostic(diag.Error, path, fmt.Errorf("%w: %w", ErrType, err))
}

func scalarText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return ""
}

func stringMap(v any) map[string]string {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// prepare applies KubeVirt's defaults and runs the admission rules of the kinds
// that have them.
func prepare(o *Object, opt Options) diag.List {
	switch v := o.Value.(type) {
	case *kubevirtv1.VirtualMachine:
		for i := range v.Spec.DataVolumeTemplates {
			writtenEmpty(o, joinIndex("spec.dataVolumeTemplates", i)+".spec", &v.Spec.DataVolumeTemplates[i].Spec)
		}
		if hasMatchers(v) {
			// Set.expand expands, defaults and validates it once every
			// document is read: the instancetype may be in another file.
			return nil
		}
		if v.Spec.Template != nil {
			Default(&v.Spec.Template.Spec)
		}
		return validateVM(o, v, false)
	case *kubevirtv1.VirtualMachineInstance:
		Default(&v.Spec)
		return validateVMI(o, v)
	case *instancetypev1beta1.VirtualMachineInstancetype:
		return validateInstancetype(o, &v.Spec)
	case *instancetypev1beta1.VirtualMachineClusterInstancetype:
		return validateInstancetype(o, &v.Spec)
	case *instancetypev1beta1.VirtualMachinePreference:
		return validatePreference(o, &v.Spec)
	case *instancetypev1beta1.VirtualMachineClusterPreference:
		return validatePreference(o, &v.Spec)
	case *cdiv1beta1.DataVolume:
		writtenEmpty(o, "spec", &v.Spec)
		return nil
	case *nadv1.NetworkAttachmentDefinition:
		return validateNAD(o, v)
	case *HyperConverged:
		return validateHyperConverged(o, v)
	case *HostPathProvisioner:
		return validateHostPathProvisioner(o, v, opt.StateDir)
	case *snapshotv1beta1.VirtualMachineSnapshot:
		return validateSnapshot(o, v)
	case *snapshotv1beta1.VirtualMachineSnapshotContent:
		return validateSnapshotContent(o, v)
	case *snapshotv1beta1.VirtualMachineRestore:
		return validateRestore(o, v)
	}
	return nil
}

// finish runs the checks that span documents and files, sets Valid and sorts.
func (s *Set) finish() {
	first := make(map[Ref]*Object, len(s.Objects))
	for _, o := range s.Objects {
		if f, dup := first[o.Ref]; dup {
			s.Diags = append(s.Diags, o.Errorf("", "%w (first at %s:%d)", ErrDuplicateObject, f.File, f.Line))
			continue
		}
		first[o.Ref] = o
	}
	s.expand(objectErrors(s.Diags))
	invalid := objectErrors(s.Diags)
	for _, o := range s.Objects {
		o.Valid = !invalid[o.Ref.String()]
	}
	s.Diags.Sort()
}

// writtenEmpty reads a DataVolume's `storage:` or `pvc:` written without a
// value as the empty object the user meant, not as absent: CDI fills an
// empty storage spec from the StorageProfile, and what is still missing
// (the size) is then reported by name instead of "neither is set".
func writtenEmpty(o *Object, p string, spec *cdiv1beta1.DataVolumeSpec) {
	if _, written := o.pos[p+".storage"]; written && spec.Storage == nil {
		spec.Storage = &cdiv1beta1.StorageSpec{}
	}
	if _, written := o.pos[p+".pvc"]; written && spec.PVC == nil {
		spec.PVC = &corev1.PersistentVolumeClaimSpec{}
	}
}
