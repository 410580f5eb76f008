package butane

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/coreos/butane/config/common"
	fcos1_0 "github.com/coreos/butane/config/fcos/v1_0"
	fcos1_1 "github.com/coreos/butane/config/fcos/v1_1"
	fcos1_2 "github.com/coreos/butane/config/fcos/v1_2"
	fcos1_3 "github.com/coreos/butane/config/fcos/v1_3"
	fcos1_4 "github.com/coreos/butane/config/fcos/v1_4"
	fcos1_5 "github.com/coreos/butane/config/fcos/v1_5"
	fcos1_6 "github.com/coreos/butane/config/fcos/v1_6"
	fcos1_7 "github.com/coreos/butane/config/fcos/v1_7"
	openshift4_10 "github.com/coreos/butane/config/openshift/v4_10"
	openshift4_11 "github.com/coreos/butane/config/openshift/v4_11"
	openshift4_12 "github.com/coreos/butane/config/openshift/v4_12"
	openshift4_13 "github.com/coreos/butane/config/openshift/v4_13"
	openshift4_14 "github.com/coreos/butane/config/openshift/v4_14"
	openshift4_15 "github.com/coreos/butane/config/openshift/v4_15"
	openshift4_16 "github.com/coreos/butane/config/openshift/v4_16"
	openshift4_17 "github.com/coreos/butane/config/openshift/v4_17"
	openshift4_18 "github.com/coreos/butane/config/openshift/v4_18"
	openshift4_19 "github.com/coreos/butane/config/openshift/v4_19"
	openshift4_20 "github.com/coreos/butane/config/openshift/v4_20"
	openshift4_21 "github.com/coreos/butane/config/openshift/v4_21"
	openshift4_22 "github.com/coreos/butane/config/openshift/v4_22"
	openshift4_8 "github.com/coreos/butane/config/openshift/v4_8"
	openshift4_9 "github.com/coreos/butane/config/openshift/v4_9"
	"github.com/coreos/butane/translate"
	"github.com/coreos/vcontext/path"
	"github.com/coreos/vcontext/tree"
	vyaml "github.com/coreos/vcontext/yaml"
	"go.yaml.in/yaml/v3"
)

// Field is where the Butane source wrote something: the path as the user
// spelled it (boot_device.luks) and its line and column in the file.
type Field struct {
	Path      string
	Line, Col int
}

// sources maps paths of Butane's output back to the Butane source, with
// Butane's own translation set: sugar (boot_device, storage.trees, ...)
// makes output fields that the source never wrote.
type sources struct {
	ign  translate.TranslationSet // Ignition config paths
	spec translate.TranslationSet // MachineConfig spec paths (openshift)
	tree tree.Node
	at   Options
}

// variants are the Butane config types by variant+version and the method
// that translates them and returns the translation set (without the
// validation config.TranslateBytes already did). openshift translates to
// the MachineConfig, whose set also covers openshift.kernel_arguments.
var variants = map[string]struct {
	config func() any
	method string
}{
	"fcos+1.0.0":       {func() any { return &fcos1_0.Config{} }, "ToIgn3_0Unvalidated"},
	"fcos+1.1.0":       {func() any { return &fcos1_1.Config{} }, "ToIgn3_1Unvalidated"},
	"fcos+1.2.0":       {func() any { return &fcos1_2.Config{} }, "ToIgn3_2Unvalidated"},
	"fcos+1.3.0":       {func() any { return &fcos1_3.Config{} }, "ToIgn3_2Unvalidated"},
	"fcos+1.4.0":       {func() any { return &fcos1_4.Config{} }, "ToIgn3_3Unvalidated"},
	"fcos+1.5.0":       {func() any { return &fcos1_5.Config{} }, "ToIgn3_4Unvalidated"},
	"fcos+1.6.0":       {func() any { return &fcos1_6.Config{} }, "ToIgn3_5Unvalidated"},
	"fcos+1.7.0":       {func() any { return &fcos1_7.Config{} }, "ToIgn3_6Unvalidated"},
	"openshift+4.8.0":  {func() any { return &openshift4_8.Config{} }, "ToMachineConfig4_8Unvalidated"},
	"openshift+4.9.0":  {func() any { return &openshift4_9.Config{} }, "ToMachineConfig4_9Unvalidated"},
	"openshift+4.10.0": {func() any { return &openshift4_10.Config{} }, "ToMachineConfig4_10Unvalidated"},
	"openshift+4.11.0": {func() any { return &openshift4_11.Config{} }, "ToMachineConfig4_11Unvalidated"},
	"openshift+4.12.0": {func() any { return &openshift4_12.Config{} }, "ToMachineConfig4_12Unvalidated"},
	"openshift+4.13.0": {func() any { return &openshift4_13.Config{} }, "ToMachineConfig4_13Unvalidated"},
	"openshift+4.14.0": {func() any { return &openshift4_14.Config{} }, "ToMachineConfig4_14Unvalidated"},
	"openshift+4.15.0": {func() any { return &openshift4_15.Config{} }, "ToMachineConfig4_15Unvalidated"},
	"openshift+4.16.0": {func() any { return &openshift4_16.Config{} }, "ToMachineConfig4_16Unvalidated"},
	"openshift+4.17.0": {func() any { return &openshift4_17.Config{} }, "ToMachineConfig4_17Unvalidated"},
	"openshift+4.18.0": {func() any { return &openshift4_18.Config{} }, "ToMachineConfig4_18Unvalidated"},
	"openshift+4.19.0": {func() any { return &openshift4_19.Config{} }, "ToMachineConfig4_19Unvalidated"},
	"openshift+4.20.0": {func() any { return &openshift4_20.Config{} }, "ToMachineConfig4_20Unvalidated"},
	"openshift+4.21.0": {func() any { return &openshift4_21.Config{} }, "ToMachineConfig4_21Unvalidated"},
	"openshift+4.22.0": {func() any { return &openshift4_22.Config{} }, "ToMachineConfig4_22Unvalidated"},
}

// newSources translates data once more, keeping the translation set that
// config.TranslateBytes drops. Called only after that translation
// succeeded, so the same input cannot fail here; nil when it does anyway.
func newSources(data []byte, variant, version string, opts Options) *sources {
	_, s := unvalidated(data, variant, version, opts)
	return s
}

// unvalidated runs the variant's translation without validating its
// output, returning the output (result.MachineConfig or an Ignition
// types.Config) and where its fields came from. Butane's translators
// assume a source that passed its validation (an unknown
// boot_device.layout panics); for a draft of an invalid source a panic
// just means there is no draft.
func unvalidated(data []byte, variant, version string, opts Options) (output any, s *sources) {
	v, ok := variants[variant+"+"+version]
	if !ok {
		return nil, nil
	}
	cfg := v.config()
	if yaml.Unmarshal(data, cfg) != nil {
		return nil, nil
	}
	defer func() {
		if recover() != nil {
			output, s = nil, nil
		}
	}()
	t, err := vyaml.UnmarshalToContext(data)
	if err != nil {
		return nil, nil
	}
	method := reflect.ValueOf(cfg).Elem().MethodByName(v.method)
	if !method.IsValid() {
		return nil, nil
	}
	out := method.Call([]reflect.Value{reflect.ValueOf(common.TranslateOptions{FilesDir: opts.FilesDir, NoResourceAutoCompression: true})})
	ts, ok := out[1].Interface().(translate.TranslationSet)
	if !ok {
		return nil, nil
	}
	s = &sources{ign: ts, spec: ts, tree: t, at: opts}
	if variant == "openshift" {
		s.ign = ts.Descend(path.New("json", "spec", "config"))
		s.spec = ts.Descend(path.New("json", "spec"))
	}
	return out[0].Interface(), s
}

// Draft translates a Butane file that Translate refused, without
// validating it, so that checks on the output can report what they would
// refuse in the same pass as Butane's errors. nil when Butane cannot
// translate it at all. A Draft is never applied.
func Draft(data []byte, opts Options) *Result {
	var head struct {
		Variant string `yaml:"variant"`
		Version string `yaml:"version"`
	}
	if yaml.Unmarshal(data, &head) != nil {
		return nil
	}
	out, s := unvalidated(data, head.Variant, head.Version, opts)
	if s == nil {
		return nil
	}
	js, err := json.Marshal(out)
	if err != nil {
		return nil
	}
	res := &Result{Variant: head.Variant, Version: head.Version, src: s}
	if head.Variant != "openshift" {
		res.Ignition = js
		return res
	}
	if err := res.fromMachineConfig(js); err != nil {
		return nil
	}
	return res
}

// Source returns where the Butane file wrote what became the field p of
// the Ignition config (Ignition's spelling: storage.luks[0].device). ok is
// false when Butane recorded no translation for p or any field around it.
func (r *Result) Source(p string) (Field, bool) {
	if r == nil || r.src == nil {
		return Field{}, false
	}
	return r.src.find(r.src.ign, p)
}

// SpecSource is Source for a field of the MachineConfig spec an openshift
// file makes (kernelArguments[0]).
func (r *Result) SpecSource(p string) (Field, bool) {
	if r == nil || r.src == nil || r.Variant != "openshift" {
		return Field{}, false
	}
	return r.src.find(r.src.spec, p)
}

func (s *sources) find(ts translate.TranslationSet, p string) (Field, bool) {
	to, err := parsePath(p)
	if err != nil {
		return Field{}, false
	}
	from, ok := lookup(ts, to)
	if !ok {
		return Field{}, false
	}
	line, col := s.position(from)
	return Field{Path: Path(from), Line: line, Col: col}, true
}

// lookup finds the source of to: its own translation; else the common
// source of the fields under it (sugar records the leaves it made); else
// the nearest ancestor's.
func lookup(ts translate.TranslationSet, to path.ContextPath) (path.ContextPath, bool) {
	if t, ok := ts.Set[to.String()]; ok {
		return t.From, true
	}
	var common []any
	found := false
	for _, t := range ts.Set {
		if !hasPrefix(t.To.Path, to.Path) {
			continue
		}
		if !found {
			common, found = append([]any(nil), t.From.Path...), true
			continue
		}
		n := 0
		for n < len(common) && n < len(t.From.Path) && common[n] == t.From.Path[n] {
			n++
		}
		common = common[:n]
	}
	if found && len(common) > 0 {
		return path.New("yaml", common...), true
	}
	for p := to; len(p.Path) > 0; {
		p = path.New(p.Tag, p.Path[:len(p.Path)-1]...)
		if t, ok := ts.Set[p.String()]; ok && len(p.Path) > 0 {
			return t.From, true
		}
	}
	return path.ContextPath{}, false
}

func hasPrefix(p, prefix []any) bool {
	if len(p) < len(prefix) {
		return false
	}
	for i := range prefix {
		if p[i] != prefix[i] {
			return false
		}
	}
	return true
}

// position is where from, or its nearest written ancestor, is in the
// file: the key's position for a field (where the user wrote its name),
// the value's for a list item.
func (s *sources) position(from path.ContextPath) (int, int) {
	for p := from; ; p = p.Pop() {
		n, err := s.tree.Get(p)
		if err != nil {
			if p.Len() == 0 {
				return 0, 0
			}
			continue
		}
		if p.Len() > 0 {
			if k, ok := p.Path[p.Len()-1].(string); ok {
				keyPath := p.Pop().Copy().Append(tree.Key(k))
				if key, err := s.tree.Get(keyPath); err == nil {
					n = key
				}
			}
		}
		line, col := n.GetMarker().Start()
		return s.at.place(int(line), int(col))
	}
}

// parsePath reads a path spelled as diagnostics spell it
// (storage.files[0].mode) into a JSON context path.
func parsePath(p string) (path.ContextPath, error) {
	out := path.New("json")
	for p != "" {
		switch {
		case p[0] == '.':
			p = p[1:]
		case p[0] == '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return out, fmt.Errorf("unclosed [ in %q", p)
			}
			n, err := strconv.Atoi(p[1:end])
			if err != nil {
				return out, fmt.Errorf("index %q: %w", p[1:end], err)
			}
			out = out.Append(n)
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			out = out.Append(p[:end])
			p = p[end:]
		}
	}
	return out, nil
}
