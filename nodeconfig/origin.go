package nodeconfig

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/nodeconfig/butane"
)

// origin places diagnostics and sources of one config: a MachineConfig
// object (paths under spec) or a Butane file (paths as the file spells
// them, found through a YAML index).
type origin struct {
	object string
	file   string
	obj    *manifests.Object
	bu     *yamlIndex
	// filePaths and unitNames are the Ignition config's files and units by
	// index, so Butane positions can be found by path and name (Butane may
	// add entries, e.g. from trees, so indices do not always match).
	filePaths []string
	unitNames []string
	// spec2 is set when the config was translated from Ignition spec 2.
	spec2 *spec2
	// res maps a Butane file's output back to what the file wrote; fields
	// records the positions it gave, by user path, and sugar the output
	// path made from a user path that names another field (boot_device.luks
	// makes storage.luks).
	res    *butane.Result
	fields map[string]butane.Field
	sugar  map[string]string
}

// ign returns the user path for a path in the Ignition config, e.g.
// storage.files[0].mode.
func (g *origin) ign(p string) string {
	p = g.spec2.path(p)
	if g.obj != nil {
		if p == "" {
			return "spec.config"
		}
		return "spec.config." + p
	}
	if f, ok := g.res.Source(p); ok {
		if g.fields == nil {
			g.fields, g.sugar = map[string]butane.Field{}, map[string]string{}
		}
		g.fields[f.Path] = f
		if indexRE.ReplaceAllString(f.Path, "") != indexRE.ReplaceAllString(snakePath(p), "") {
			g.sugar[f.Path] = p
		}
		return f.Path
	}
	return g.buPath(p)
}

var indexRE = regexp.MustCompile(`\[[0-9]*\]`)

var indexed = regexp.MustCompile(`^(storage\.files|systemd\.units)\[(\d+)\](.*)$`)

func (g *origin) buPath(p string) string {
	if m := indexed.FindStringSubmatch(p); m != nil && g.bu != nil {
		i, _ := strconv.Atoi(m[2])
		key, want := "path", ""
		switch m[1] {
		case "storage.files":
			if i < len(g.filePaths) {
				want = g.filePaths[i]
			}
		case "systemd.units":
			key = "name"
			if i < len(g.unitNames) {
				want = g.unitNames[i]
			}
		}
		for j := 0; ; j++ {
			at := fmt.Sprintf("%s[%d]", m[1], j)
			v, ok := g.bu.scalar[at+"."+key]
			if !ok {
				if _, exists := g.bu.pos[at]; !exists {
					break
				}
				continue
			}
			if v == want {
				return at + snakePath(m[3])
			}
		}
		if m[1] == "storage.files" {
			return "storage" // e.g. a file Butane made from storage.trees
		}
		return "systemd"
	}
	return snakePath(p)
}

// spec returns the user path for a MachineConfig spec field.
func (g *origin) spec(field string) string {
	if g.obj != nil {
		return "spec." + field
	}
	name, rest, _ := strings.Cut(field, "[")
	if rest != "" {
		rest = "[" + rest
	}
	return "openshift." + snake(name) + rest
}

func (g *origin) pos(p string) (int, int) {
	if g.obj != nil {
		return g.obj.Pos(p)
	}
	if f, ok := g.fields[p]; ok && f.Line > 0 {
		return f.Line, f.Col
	}
	if g.bu != nil {
		return g.bu.at(p)
	}
	return 0, 0
}

func (g *origin) source(p string) Source {
	line, _ := g.pos(p)
	return Source{Object: g.object, File: g.file, Line: line, Path: p}
}

func (g *origin) diag(sev diag.Severity, p string, err error) diag.Diagnostic {
	line, col := g.pos(p)
	if made, ok := g.sugar[p]; ok {
		err = fmt.Errorf("%w (Butane makes %s from %s)", err, made, p)
	}
	return diag.Diagnostic{Severity: sev, File: g.file, Line: line, Col: col, Object: g.object, Path: p, Message: err.Error(), Err: err}
}

func (g *origin) errorf(p, format string, args ...any) diag.Diagnostic {
	return g.diag(diag.Error, p, fmt.Errorf(format, args...))
}

func (g *origin) warnf(p, format string, args ...any) diag.Diagnostic {
	return g.diag(diag.Warning, p, fmt.Errorf(format, args...))
}

// snakePath turns an Ignition (camelCase) path into Butane's snake_case.
func snakePath(p string) string {
	var b strings.Builder
	word := strings.Builder{}
	flush := func() {
		b.WriteString(snake(word.String()))
		word.Reset()
	}
	for _, r := range p {
		switch r {
		case '.', '[', ']':
			flush()
			b.WriteRune(r)
		default:
			word.WriteRune(r)
		}
	}
	flush()
	return b.String()
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

type yamlPos struct{ line, col int }

// yamlIndex records where each path of a YAML document is written and the
// value of each scalar.
type yamlIndex struct {
	pos    map[string]yamlPos
	scalar map[string]string
}

func indexYAML(data []byte) *yamlIndex {
	ix := &yamlIndex{pos: map[string]yamlPos{}, scalar: map[string]string{}}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return ix
	}
	ix.walk(doc.Content[0], "")
	return ix
}

func (ix *yamlIndex) walk(n *yaml.Node, p string) {
	if _, ok := ix.pos[p]; !ok {
		ix.pos[p] = yamlPos{n.Line, n.Column}
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			child := k.Value
			if p != "" {
				child = p + "." + k.Value
			}
			ix.pos[child] = yamlPos{k.Line, k.Column}
			ix.walk(v, child)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			ix.walk(c, fmt.Sprintf("%s[%d]", p, i))
		}
	case yaml.ScalarNode:
		ix.scalar[p] = n.Value
	case yaml.AliasNode:
		if n.Alias != nil {
			ix.walk(n.Alias, p)
		}
	}
}

// at returns where p, or its nearest written ancestor, is.
func (ix *yamlIndex) at(p string) (int, int) {
	for {
		if q, ok := ix.pos[p]; ok {
			return q.line, q.col
		}
		if p == "" {
			return 0, 0
		}
		p = parent(p)
	}
}

func parent(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}
