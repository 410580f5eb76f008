package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Input bounds. Kubernetes keeps an object under 1.5 MiB (etcd's limit) and
// an API request under 3 MiB, so these leave generous room for real
// manifests while keeping one hostile file from taking the agent's memory.
const (
	// MaxFileBytes is the largest manifest or Butane file read. A file is
	// parsed as a whole tree per document, which takes many times its size.
	MaxFileBytes = 16 << 20
	// MaxDocumentBytes bounds one YAML document after its aliases are
	// expanded: the bytes of every scalar and key as the decoder will see
	// them, one per collection node. A 1 MB string aliased a thousand times
	// is a 1 GB document, though the file is 1 MB.
	MaxDocumentBytes = 32 << 20
)

var (
	ErrFileTooLarge     = fmt.Errorf("file is larger than %d MiB", MaxFileBytes>>20)
	ErrDocumentTooLarge = fmt.Errorf("expands to more than %d MiB once its aliases are expanded (a string aliased many times?); it is not read", MaxDocumentBytes>>20)
	ErrRecursiveAlias   = errors.New("alias refers to a node that contains it")
)

// ReadBounded reads r to the end, refusing more than MaxFileBytes before
// holding it all in memory.
func ReadBounded(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, ErrFileTooLarge
	}
	return data, nil
}

// CheckExpansion applies MaxFileBytes and MaxDocumentBytes to a whole file
// without expanding anything, for readers (Butane) that decode YAML
// themselves. The error names the document (1-based) and its line.
func CheckExpansion(data []byte) error {
	if len(data) > MaxFileBytes {
		return ErrFileTooLarge
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 1; ; i++ {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			return nil // end, or a syntax error the reader reports itself
		}
		if err := checkDocument(&doc); err != nil {
			return fmt.Errorf("document %d (line %d): %w", i, doc.Line, err)
		}
	}
}

// checkDocument measures doc as if its aliases were expanded. go.yaml.in/yaml/v3
// bounds alias expansion ("excessive aliasing") only when it decodes into Go
// values; decoding into a yaml.Node, as this package does to keep positions,
// expands nothing, and the converter would then expand without a byte bound.
// Sizes are memoised per anchored node (the only ones an alias can reach
// again), so even nested aliases ("billion laughs") are measured in time
// linear in the file, and a document without anchors needs no memo at all.
func checkDocument(doc *yaml.Node) error {
	m := sizer{}
	n, err := m.size(doc)
	if err == nil && n > MaxDocumentBytes {
		err = ErrDocumentTooLarge
	}
	return err
}

type sizer struct {
	memo map[*yaml.Node]int
	busy map[*yaml.Node]bool // anchored nodes on the current path: an alias back to one loops
}

func (m *sizer) size(n *yaml.Node) (int, error) {
	if n.Anchor != "" {
		if v, ok := m.memo[n]; ok {
			return v, nil
		}
		if m.busy[n] {
			return 0, ErrRecursiveAlias
		}
		if m.memo == nil {
			m.memo, m.busy = map[*yaml.Node]int{}, map[*yaml.Node]bool{}
		}
		m.busy[n] = true
		defer delete(m.busy, n)
	}
	total := 1
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias != nil {
			v, err := m.size(n.Alias)
			if err != nil {
				return 0, err
			}
			total = v
		}
	case yaml.ScalarNode:
		total += len(n.Value)
	default:
		for _, c := range n.Content {
			v, err := m.size(c)
			if err != nil {
				return 0, err
			}
			// Saturate: the sum of a deep nest of aliases overflows int.
			if total += v; total > MaxDocumentBytes {
				return 0, ErrDocumentTooLarge
			}
		}
	}
	if n.Anchor != "" {
		m.memo[n] = total
	}
	return total, nil
}

// maxQuoted is how much of a value a message quotes: a diagnostic names the
// value, it does not echo a megabyte scalar.
const maxQuoted = 80

// quote is strconv.Quote of at most maxQuoted characters of s, "…" marking
// the cut.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	n := 0
	for i := range s {
		if n == maxQuoted {
			return strconv.Quote(s[:i]) + "…"
		}
		n++
	}
	return strconv.Quote(s)
}
