package manifests

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// problem is a finding located in a document before it becomes an Object (the
// object's identity may not be known yet).
type problem struct {
	path      string
	line, col int
	err       error
	warn      bool
}

// converter turns a yaml.Node tree into the value encoding/json would produce for
// the same document, recording where every path is written. Doing this ourselves
// (instead of sigs.k8s.io/yaml) keeps line numbers and resolves scalars by their
// YAML tag, so a quoted "2" stays a string and an explicit !!str tag is obeyed.
type converter struct {
	pos      map[string]position // nil: do not record (alias expansion, re-encoding)
	problems []problem
	// nodes counts converted nodes, so aliases of aliases ("billion laughs")
	// cannot make one small file expand without bound.
	nodes int
}

const (
	// Aliases can point at their own ancestors; stop long before the stack does.
	maxDepth = 100
	// maxNodes bounds a document after alias expansion; real manifests have a
	// few thousand nodes at most.
	maxNodes = 1_000_000
)

func (c *converter) fail(n *yaml.Node, path string, err error) {
	c.problems = append(c.problems, problem{path: path, line: n.Line, col: n.Column, err: err})
}

func (c *converter) record(path string, n *yaml.Node) {
	if c.pos != nil {
		c.pos[path] = nodePosition(n)
	}
}

func (c *converter) convert(n *yaml.Node, path string, depth int) any {
	if depth > maxDepth {
		c.fail(n, path, fmt.Errorf("%w: nesting deeper than %d levels (recursive alias?)", ErrSyntax, maxDepth))
		return nil
	}
	c.nodes++
	if c.nodes == maxNodes {
		c.fail(n, "", fmt.Errorf("%w: document expands to more than %d nodes (nested aliases?)", ErrSyntax, maxNodes))
	}
	if c.nodes >= maxNodes {
		return nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return c.convert(n.Content[0], path, depth+1)
	case yaml.AliasNode:
		// The expansion's positions would point at the anchor, elsewhere in the
		// file; leaving them out makes Pos fall back to the alias itself.
		saved := c.pos
		c.pos = nil
		v := c.convert(n.Alias, path, depth+1)
		c.pos = saved
		return v
	case yaml.MappingNode:
		return c.mapping(n, path, depth)
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, item := range n.Content {
			ip := joinIndex(path, i)
			c.record(ip, item)
			out[i] = c.convert(item, ip, depth+1)
		}
		return out
	case yaml.ScalarNode:
		return c.scalar(n, path)
	}
	c.fail(n, path, fmt.Errorf("%w: unexpected node kind %d", ErrSyntax, n.Kind))
	return nil
}

func (c *converter) mapping(n *yaml.Node, path string, depth int) map[string]any {
	out := make(map[string]any, len(n.Content)/2)
	first := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			c.fail(k, joinKey(path, k.Value), ErrMergeKey)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			c.fail(k, path, ErrKeyNotScalar)
			continue
		}
		kp := joinKey(path, k.Value)
		if line, dup := first[k.Value]; dup {
			c.fail(k, kp, fmt.Errorf("%w %q (first at line %d)", ErrDuplicateKey, k.Value, line))
			continue
		}
		first[k.Value] = k.Line
		c.record(kp, k)
		out[k.Value] = c.convert(v, kp, depth+1)
	}
	return out
}

// jsonNumber matches the literals JSON accepts, which can be passed through
// unchanged (keeping big integers and quantities such as 1e3 exact).
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

func (c *converter) scalar(n *yaml.Node, path string) any {
	switch tag := n.ShortTag(); tag {
	case "!!null":
		return nil
	case "!!str", "!!timestamp", "!!binary":
		// Kubernetes keeps timestamps and binary as their text.
		return n.Value
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			c.fail(n, path, fmt.Errorf("%w: %q is not a boolean", ErrType, n.Value))
			return nil
		}
		return b
	case "!!int", "!!float":
		if jsonNumber.MatchString(n.Value) {
			return json.Number(n.Value)
		}
		var v any
		if err := n.Decode(&v); err != nil {
			c.fail(n, path, fmt.Errorf("%w: %q is not a number", ErrType, n.Value))
			return nil
		}
		switch x := v.(type) {
		case int:
			return json.Number(strconv.Itoa(x))
		case int64:
			return json.Number(strconv.FormatInt(x, 10))
		case uint64:
			return json.Number(strconv.FormatUint(x, 10))
		case float64:
			if math.IsInf(x, 0) || math.IsNaN(x) {
				c.fail(n, path, fmt.Errorf("%w: %s cannot be represented in JSON", ErrType, n.Value))
				return nil
			}
			return json.Number(strconv.FormatFloat(x, 'g', -1, 64))
		}
		c.fail(n, path, fmt.Errorf("%w: %q is not a number", ErrType, n.Value))
		return nil
	default:
		c.fail(n, path, fmt.Errorf("%w %s", ErrTag, tag))
		return nil
	}
}

// nodeJSON re-encodes a subtree, for handing it to a type's own UnmarshalJSON.
func nodeJSON(n *yaml.Node) ([]byte, error) {
	c := converter{}
	v := c.convert(n, "", 0)
	if len(c.problems) > 0 {
		return nil, c.problems[0].err
	}
	return json.Marshal(v)
}

// nodePosition is where n is written.
func nodePosition(n *yaml.Node) position { return position{int32(n.Line), int32(n.Column)} }

// countNodes counts n and the nodes below it, not following aliases.
func countNodes(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}
