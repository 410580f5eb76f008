// Package flagconfig reads a flat YAML file whose keys are command-line
// flag names and sets the flags the command line left alone, through each
// flag's own parser, so a value means the same in the file as after --name.
package flagconfig

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// File is a parsed configuration file: its settings in file order.
type File struct {
	Path    string
	Entries []Entry
}

// Entry is one key of the file and its value: a scalar, or a list for
// flags that take several values.
type Entry struct {
	Key  string
	Line int
	// List is set for a YAML sequence; Items then holds its elements and
	// Value is empty.
	List  bool
	Items []string
	Value string
}

// Read reads and parses the file at path.
func Read(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses data, the content of the file at path: one mapping of
// flag names to scalars or lists of scalars. An empty file (or one of
// comments only) has no settings.
func Parse(path string, data []byte) (*File, error) {
	f := &File{Path: path}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return f, nil
	}
	m := doc.Content[0]
	if m.Kind == yaml.ScalarNode && m.Tag == "!!null" {
		return f, nil
	}
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping of flag names to values", path, m.Line)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!null" {
			return nil, fmt.Errorf("%s:%d: a key must be a flag name", path, k.Line)
		}
		if first, ok := seen[k.Value]; ok {
			return nil, fmt.Errorf("%s:%d: %s: set again (first at line %d)", path, k.Line, k.Value, first)
		}
		seen[k.Value] = k.Line
		e := Entry{Key: k.Value, Line: k.Line}
		switch {
		case v.Kind == yaml.AliasNode:
			return nil, fmt.Errorf("%s:%d: %s: aliases are not supported", path, v.Line, k.Value)
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			return nil, fmt.Errorf("%s:%d: %s: no value", path, v.Line, k.Value)
		case v.Kind == yaml.ScalarNode:
			e.Value = v.Value
		case v.Kind == yaml.SequenceNode:
			e.List = true
			e.Items = []string{}
			for _, it := range v.Content {
				if it.Kind != yaml.ScalarNode || it.Tag == "!!null" {
					return nil, fmt.Errorf("%s:%d: %s: a list item must be a plain value", path, it.Line, k.Value)
				}
				e.Items = append(e.Items, it.Value)
			}
		default:
			return nil, fmt.Errorf("%s:%d: %s: want a value or a list of values, not a mapping", path, v.Line, k.Value)
		}
		f.Entries = append(f.Entries, e)
	}
	return f, nil
}

// CheckKeys refuses the first key that known says names no flag.
func (f *File) CheckKeys(known func(name string) bool) error {
	for _, e := range f.Entries {
		if !known(e.Key) {
			return fmt.Errorf("%s:%d: unknown key %q: no command has a flag --%s", f.Path, e.Line, e.Key, e.Key)
		}
	}
	return nil
}

// Apply sets, in fs, every flag the file names that fs has and that was
// not set on the command line (flags win), and marks it changed as if it
// had been given. It returns the entries it applied. Keys fs lacks are
// skipped: they belong to another command.
func (f *File) Apply(fs *pflag.FlagSet) ([]Entry, error) {
	var applied []Entry
	for _, e := range f.Entries {
		fl := fs.Lookup(e.Key)
		if fl == nil || fl.Changed {
			continue
		}
		if err := set(fs, fl, e); err != nil {
			return applied, fmt.Errorf("%s:%d: %s: %w", f.Path, e.Line, e.Key, err)
		}
		applied = append(applied, e)
	}
	return applied, nil
}

func set(fs *pflag.FlagSet, fl *pflag.Flag, e Entry) error {
	if !e.List {
		// A scalar goes through the same Set as the command line: a
		// comma-separated list for a slice flag, a duration for a duration.
		return fs.Set(fl.Name, e.Value)
	}
	sv, ok := fl.Value.(pflag.SliceValue)
	if !ok {
		return fmt.Errorf("a list, but --%s takes one value", fl.Name)
	}
	if err := sv.Replace(e.Items); err != nil {
		return err
	}
	fl.Changed = true
	return nil
}

// Encode writes the named flags of fs as a file Parse reads back to the
// same values: lists for slice flags, numbers and booleans plain, the
// rest as strings. header is written first, each line as a comment.
func Encode(fs *pflag.FlagSet, names []string, header string) ([]byte, error) {
	m := &yaml.Node{Kind: yaml.MappingNode}
	for _, name := range names {
		fl := fs.Lookup(name)
		if fl == nil {
			return nil, fmt.Errorf("no flag --%s", name)
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, valueNode(fl))
	}
	var buf bytes.Buffer
	if header != "" {
		for _, l := range strings.Split(strings.TrimRight(header, "\n"), "\n") {
			buf.WriteString(strings.TrimRight("# "+l, " ") + "\n")
		}
	}
	if len(m.Content) == 0 {
		return buf.Bytes(), nil
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func valueNode(fl *pflag.Flag) *yaml.Node {
	if sv, ok := fl.Value.(pflag.SliceValue); ok {
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for _, it := range sv.GetSlice() {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: it})
		}
		return n
	}
	tag := "!!str"
	switch fl.Value.Type() {
	case "bool":
		tag = "!!bool"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		tag = "!!int"
	case "float32", "float64":
		tag = "!!float"
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: fl.Value.String()}
}

// Value is how a flag's current value reads in a report: the list of a
// slice flag, else its text.
func Value(fl *pflag.Flag) any {
	if sv, ok := fl.Value.(pflag.SliceValue); ok {
		return slices.Clone(sv.GetSlice())
	}
	return fl.Value.String()
}
