package manifests

import (
	"encoding"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// schemaWalker checks a node tree against a Go type the way encoding/json would
// read it, but reports every unknown field and every wrong type with its own
// position instead of stopping at the first (json.Unmarshal keeps only one type
// error and DisallowUnknownFields stops at the first unknown field).
type schemaWalker struct {
	// lenient: unknown fields are warnings. Used for the host kinds whose
	// structs in this package cover only what nodevirt reads.
	lenient  bool
	problems []problem
	typeErrs int
	types    *typeTables // nil: nothing is kept across documents
	nodes    int         // bounded like converter.nodes
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func (w *schemaWalker) typeError(n *yaml.Node, path string, format string, args ...any) {
	w.typeErrs++
	w.problems = append(w.problems, problem{path: path, line: n.Line, col: n.Column,
		err: fmt.Errorf("%w: "+format, append([]any{ErrType}, args...)...)})
}

func (w *schemaWalker) walk(n *yaml.Node, t reflect.Type, path string, depth int) {
	if w.nodes++; depth > maxDepth || w.nodes > maxNodes {
		return // reported by the converter
	}
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!null" || !strings.HasPrefix(n.ShortTag(), "!!")) {
		return // null leaves any Go value at its zero value; the converter reports unknown tags
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if custom, ok := w.types.customDecoder(t); ok {
		w.leaf(n, t, path, custom)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if !w.want(n, yaml.MappingNode, t, path) {
			return
		}
		fields := w.structFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
				continue // reported by the converter
			}
			kp := joinKey(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				w.unknown(k, kp)
				continue
			}
			w.walk(v, ft, kp, depth+1)
		}
	case reflect.Map:
		if !w.want(n, yaml.MappingNode, t, path) {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
				continue // reported by the converter
			}
			w.walk(v, t.Elem(), joinKey(path, k.Value), depth+1)
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			w.scalar(n, t, path) // []byte is base64 text
			return
		}
		if !w.want(n, yaml.SequenceNode, t, path) {
			return
		}
		for i, item := range n.Content {
			w.walk(item, t.Elem(), joinIndex(path, i), depth+1)
		}
	case reflect.Interface:
		// Anything goes (runtime objects kept as raw data).
	default:
		w.scalar(n, t, path)
	}
}

func (w *schemaWalker) unknown(k *yaml.Node, path string) {
	p := problem{path: path, line: k.Line, col: k.Column}
	if w.lenient {
		p.err, p.warn = ErrIgnoredField, true
	} else {
		p.err = fmt.Errorf("%w %s", ErrUnknownField, quote(k.Value))
	}
	w.problems = append(w.problems, p)
}

// want reports a type error unless n is of the node kind t is read from.
func (w *schemaWalker) want(n *yaml.Node, kind yaml.Kind, t reflect.Type, path string) bool {
	if n.Kind == kind {
		return true
	}
	w.typeError(n, path, "got %s, want %s", describeNode(n), describeType(t))
	return false
}

// scalar checks a YAML scalar against a basic Go kind.
func (w *schemaWalker) scalar(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode {
		w.typeError(n, path, "got %s, want %s", describeNode(n), describeType(t))
		return
	}
	tag := n.ShortTag()
	ok := false
	switch t.Kind() {
	case reflect.String:
		ok = tag == "!!str" || tag == "!!timestamp" || tag == "!!binary"
	case reflect.Slice: // []byte
		if ok = tag == "!!str" || tag == "!!binary"; ok {
			if _, err := base64.StdEncoding.DecodeString(n.Value); err != nil {
				w.typeError(n, path, "invalid base64: %v", err)
				return
			}
		}
	case reflect.Bool:
		ok = tag == "!!bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if tag == "!!int" {
			var i int64
			ok = n.Decode(&i) == nil && !reflect.Zero(t).OverflowInt(i)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if tag == "!!int" {
			var u uint64
			ok = n.Decode(&u) == nil && !strings.HasPrefix(n.Value, "-") && !reflect.Zero(t).OverflowUint(u)
		}
	case reflect.Float32, reflect.Float64:
		ok = tag == "!!int" || tag == "!!float"
	default:
		ok = true // kinds JSON cannot fill (chan, func) do not appear in API types
	}
	if !ok {
		w.typeError(n, path, "got %s, want %s", describeNode(n), describeType(t))
	}
}

// leaf hands the subtree to the type's own decoder (resource.Quantity,
// metav1.Time, intstr.IntOrString, ...), so a bad quantity is reported at its
// own line rather than at the document.
func (w *schemaWalker) leaf(n *yaml.Node, t reflect.Type, path string, kind decoderKind) {
	v := reflect.New(t).Interface()
	var err error
	switch kind {
	case textDecoder:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			w.typeError(n, path, "got %s, want a string", describeNode(n))
			return
		}
		err = v.(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value))
	default:
		var data []byte
		if data, err = nodeJSON(n); err != nil {
			return // reported by the converter
		}
		err = v.(json.Unmarshaler).UnmarshalJSON(data)
	}
	if err != nil {
		w.typeError(n, path, "invalid %s %s: %v", describeType(t), describeNode(n), err)
	}
}

type decoderKind int

const (
	noDecoder decoderKind = iota
	jsonDecoder
	textDecoder
)

// customDecoder reports whether t decodes itself and should be treated as one
// value. Structs whose UnmarshalJSON only post-processes their own JSON fields
// (KubeVirt's VirtualMachineInstanceSpec, PodNetwork, DHCPOptions) are walked
// like any struct, or unknown fields inside them would go unnoticed.
func customDecoder(t reflect.Type) (decoderKind, bool) {
	pt := reflect.PointerTo(t)
	kind := noDecoder
	switch {
	case pt.Implements(jsonUnmarshaler) || t.Implements(jsonUnmarshaler):
		kind = jsonDecoder
	case pt.Implements(textUnmarshaler) || t.Implements(textUnmarshaler):
		kind = textDecoder
	default:
		return noDecoder, false
	}
	if t.Kind() == reflect.Struct && hasJSONFields(t) {
		return noDecoder, false
	}
	return kind, true
}

func hasJSONFields(t reflect.Type) bool {
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			return true
		}
	}
	return false
}

// structFields maps JSON names to field types, promoting the fields of embedded
// structs (json:",inline" is only a convention; encoding/json promotes any
// untagged embedded struct) with shallower fields winning, as encoding/json does.
func (w *schemaWalker) structFields(t reflect.Type) map[string]reflect.Type {
	if w.types == nil {
		w.types = &typeTables{}
	}
	if f, ok := w.types.fields[t]; ok {
		return f
	}
	out := map[string]reflect.Type{}
	var embedded []reflect.Type
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	for _, et := range embedded {
		for name, ft := range w.structFields(et) {
			if _, taken := out[name]; !taken {
				out[name] = ft
			}
		}
	}
	if w.types.fields == nil {
		w.types.fields = map[reflect.Type]map[string]reflect.Type{}
	}
	w.types.fields[t] = out
	return out
}

// typeTables are what the schema walk works out about Go types, kept by
// one worker for every document it decodes.
type typeTables struct {
	fields map[reflect.Type]map[string]reflect.Type
	custom map[reflect.Type]customDecoded
}

type customDecoded struct {
	kind decoderKind
	ok   bool
}

// customDecoder is customDecoder(t), remembered: the method-set checks are
// a twentieth of a document's decode when repeated for every node.
func (tt *typeTables) customDecoder(t reflect.Type) (decoderKind, bool) {
	if tt == nil {
		return customDecoder(t)
	}
	if c, ok := tt.custom[t]; ok {
		return c.kind, c.ok
	}
	kind, ok := customDecoder(t)
	if tt.custom == nil {
		tt.custom = map[reflect.Type]customDecoded{}
	}
	tt.custom[t] = customDecoded{kind, ok}
	return kind, ok
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float":
			return "number " + n.Value
		case "!!bool":
			return "boolean " + n.Value
		}
		return "string " + quote(n.Value)
	}
	return "a YAML node"
}

func describeType(t reflect.Type) string {
	if _, ok := customDecoder(t); ok {
		return t.String()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer (" + t.Kind().String() + ")"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer (" + t.Kind().String() + ")"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "a list"
	}
	return t.String()
}
