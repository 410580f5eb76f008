package manifests

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// parse decodes one in-memory file named test.yaml.
func parse(t *testing.T, src string) *Set {
	t.Helper()
	s := Parse("test.yaml", []byte(src), Options{})
	checkPaths(t, s)
	return s
}

// summary is the part of a diagnostic tests compare.
type summary struct {
	Severity  diag.Severity
	Line, Col int
	Object    string
	Path      string
}

func summarize(l diag.List) []summary {
	var out []summary
	for _, d := range l {
		out = append(out, summary{d.Severity, d.Line, d.Col, d.Object, d.Path})
	}
	return out
}

// checkPaths fails the test when a diagnostic names a path that is not a field
// of the object's Go type (butane's VerifyReport): a typo in a validator's path
// would otherwise send users to a field that does not exist. Unknown-field
// diagnostics are exempt, by definition.
func checkPaths(t *testing.T, s *Set) {
	t.Helper()
	types := map[string]reflect.Type{}
	for _, o := range s.Objects {
		if info, ok := lookupKind(o.APIVersion, o.Ref.Kind); ok {
			types[o.Ref.String()] = info.typ
		}
	}
	for _, d := range s.Diags {
		typ, ok := types[d.Object]
		if !ok || d.Path == "" || errors.Is(d, ErrUnknownField) || errors.Is(d, ErrIgnoredField) ||
			errors.Is(d, ErrDuplicateKey) || errors.Is(d, ErrMergeKey) {
			continue
		}
		if err := typeHasPath(typ, d.Path); err != nil {
			t.Errorf("diagnostic %q: path is not a field of %s: %v", d.Error(), typ, err)
		}
	}
}

func typeHasPath(t reflect.Type, path string) error {
	w := schemaWalker{}
	for _, seg := range splitPath(path) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if seg == "[]" {
			if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
				return fmt.Errorf("%s is not a list", t)
			}
			t = t.Elem()
			continue
		}
		if _, leaf := customDecoder(t); leaf {
			return fmt.Errorf("%s has no fields", t)
		}
		switch t.Kind() {
		case reflect.Struct:
			ft, ok := w.structFields(t)[seg]
			if !ok {
				return fmt.Errorf("%s has no field %q", t, seg)
			}
			t = ft
		case reflect.Map:
			t = t.Elem()
		default:
			return fmt.Errorf("%s has no field %q", t, seg)
		}
	}
	return nil
}

// splitPath splits a.b[2]["c.d"] into a, b, [], c.d.
func splitPath(p string) []string {
	var out []string
	for p != "" {
		switch {
		case strings.HasPrefix(p, `["`):
			end := strings.Index(p, `"]`)
			out = append(out, p[2:end])
			p = p[end+2:]
		case strings.HasPrefix(p, "["):
			out = append(out, "[]")
			p = p[strings.Index(p, "]")+1:]
		case strings.HasPrefix(p, "."):
			p = p[1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			out = append(out, p[:end])
			p = p[end:]
		}
	}
	return out
}

func TestTypeHasPath(t *testing.T) {
	info, _ := lookupKind("kubevirt.io/v1", "VirtualMachine")
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"spec.template.spec.domain.devices.disks[1].disk.bus", true},
		{"spec.template.spec.networks[0].pod", true},
		{`metadata.labels["kubevirt.io/vm"]`, true},
		{"spec.template.spec.domain.resources.requests.memory", true},
		{"spec.template.spec.domain.devices.disks[1].buss", false},
		{"spec.template.spec.domain.memory.guest.value", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if err := typeHasPath(info.typ, tc.path); (err == nil) != tc.ok {
				t.Errorf("typeHasPath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
			}
		})
	}
}
