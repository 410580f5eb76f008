package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	splitVM = "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: %s}\nspec:\n  runStrategy: Halted\n  template:\n    spec:\n      domain:\n        memory: {guest: 64Mi}\n"
	// badVM has an unknown field, so its diagnostic's line shows where
	// the document was placed.
	badVM = "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: bad}\nspec:\n  runStrategy: Halted\n  template:\n    spec:\n      domain:\n        memory: {guest: 64Mi}\n        bogus: 1\n"
)

func splitDoc(name string) string { return strings.Replace(splitVM, "%s", name, 1) }

// splitCases are files whose documents a cut at "---" lines could get
// wrong. split says whether the file is decoded from pieces, each parsed on
// its own; the others must fall back to the sequential parser.
var splitCases = []struct {
	name  string
	src   string
	split bool
}{
	{"plain", splitDoc("a") + "---\n" + badVM + "---\n" + splitDoc("b"), true},
	{"starts with a marker", "---\n" + splitDoc("a") + "---\n" + badVM, true},
	{"comments before the first marker", "# generated\n\n---\n" + splitDoc("a") + "---\n" + badVM, true},
	{"empty documents", "---\n---\n# only a comment\n---\n" + splitDoc("a") + "---\n" + badVM + "---\n", true},
	{"block scalar holding indented markers", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: script}\ndata:\n  run: |\n    a\n    ---\n    ...\n    %YAML\n    b\n---\n" + badVM, true},
	{"content on the marker line", "--- !!map\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: tagged}\n--- {apiVersion: v1, kind: ConfigMap, metadata: {name: flow}, data: {a: '1'}}\n---\t\n" + badVM, true},
	{"markers inside flow and quoted scalars", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: q}\ndata: {a: \"x\n  --- y\", b: 'p\n  --- q'}\n---\n" + badVM, true},
	{"CRLF", strings.ReplaceAll(splitDoc("a")+"---\n"+badVM+"---\n"+splitDoc("b"), "\n", "\r\n"), true},
	{"byte order mark", "\ufeff" + splitDoc("a") + "---\n" + badVM, true},
	{"no trailing newline", splitDoc("a") + "---\n" + strings.TrimSuffix(badVM, "\n"), true},
	{"anchors within documents", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: &v one, y: *v}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {x: &v two, y: *v}\n---\n" + badVM, true},
	{"only one document", badVM, false},
	{"document end", splitDoc("a") + "...\n---\n" + badVM, false},
	{"directive", splitDoc("a") + "...\n%YAML 1.1\n---\n" + badVM, false},
	{"byte order mark later", splitDoc("a") + "---\n\ufeff" + badVM, false},
	{"lone CR", splitDoc("a") + "---\n" + strings.Replace(badVM, "\n", "\r", 1), false},
	{"alias of an earlier document's anchor", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: &v one}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {y: *v}\n---\n" + badVM, false},
	{"syntax error", splitDoc("a") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: [unclosed\n---\n" + badVM, false},
	{"marker at column 0 in a quoted scalar", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: q}\ndata: {a: \"x\n--- y\"}\n---\n" + badVM, false},
	{"marker in a flow collection", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: f}\ndata: {a: b,\n---\n}\n---\n" + badVM, false},
}

// decodedFromPieces says whether the file's documents come from its
// pieces: it splits and every piece is one document (the first one at most).
func decodedFromPieces(data []byte) bool {
	pieces, ok := splitDocuments(data)
	if !ok || len(pieces) < 2 {
		return false
	}
	for i, p := range pieces {
		docs, err := parsePiece(data, p)
		if err != nil || len(docs) > 1 || (i > 0 && len(docs) == 0) {
			return false
		}
	}
	return true
}

// sequentialNodes parses data with one parser, as the sequential path does.
func sequentialNodes(t *testing.T, data []byte) []*yaml.Node {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		doc := new(yaml.Node)
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("sequential parse: %v", err)
		}
		docs = append(docs, doc)
	}
}

// Every split case decodes to the same objects and diagnostics, in the same
// order, whether its pieces are parsed on workers or the file is parsed
// whole; the cases that cannot be cut safely are parsed whole.
func TestParse_piecesSameAsSequential(t *testing.T) {
	for _, c := range splitCases {
		t.Run(c.name, func(t *testing.T) {
			data := []byte(c.src)
			if got := decodedFromPieces(data); got != c.split {
				t.Fatalf("decoded from pieces: %v, want %v", got, c.split)
			}
			d := newDecoder(Options{}, 2)
			d.batch = 0 // a piece to a job, so aliases cannot reach back
			ps := &parts{}
			if got := d.pieces(ps, "split.yaml", data); got != c.split {
				t.Fatalf("the decoder decoded from pieces: %v, want %v", got, c.split)
			}
			if !c.split && len(ps.list) != 0 {
				t.Fatalf("%d parts left for the sequential parser to add to", len(ps.list))
			}
			d.wait(&Set{}, ps)
			want := parseWith("split.yaml", data, Options{}, 1)
			if len(want.Diags) == 0 {
				t.Fatal("every case should have a diagnostic whose line shows where its document is")
			}
			for _, workers := range []int{2, 4} {
				for _, batch := range []int{0, batchBytes} {
					got := parseBatched("split.yaml", data, workers, batch)
					if g, w := outcomeOf(got), outcomeOf(want); !reflect.DeepEqual(g, w) {
						t.Fatalf("%d workers, batches of %d bytes: the result differs from one worker's:\n%s", workers, batch, firstDifference(g, w))
					}
					if !reflect.DeepEqual(got.Objects, want.Objects) {
						t.Fatalf("%d workers, batches of %d bytes: the objects differ from one worker's", workers, batch)
					}
				}
			}
			if !c.split {
				return
			}
			// The pieces' node trees are the whole file's, positions included.
			seq := sequentialNodes(t, data)
			var pieced []*yaml.Node
			pieces, _ := splitDocuments(data)
			for _, p := range pieces {
				docs, _ := parsePiece(data, p)
				pieced = append(pieced, docs...)
			}
			if len(pieced) != len(seq) {
				t.Fatalf("%d documents from pieces, %d from the whole file", len(pieced), len(seq))
			}
			for i := range seq {
				clearComments(seq[i])
				clearComments(pieced[i])
				if !reflect.DeepEqual(pieced[i], seq[i]) {
					t.Fatalf("document %d differs:\n got  %s\n want %s", i+1, dumpNode(pieced[i]), dumpNode(seq[i]))
				}
			}
		})
	}
}

// parseBatched is parseWith with batch bytes of pieces to a job.
func parseBatched(file string, data []byte, workers, batch int) *Set {
	s := &Set{Files: 1}
	d := newDecoder(Options{}, workers)
	d.batch = batch
	ps := &parts{}
	d.file(ps, file, data)
	d.wait(s, ps)
	s.finish()
	return s
}

// clearComments drops the comments of n and the nodes below it: nothing
// reads them, and a comment between two documents is attached to the one
// before or the one after depending on whether the parser sees both.
func clearComments(n *yaml.Node) {
	n.HeadComment, n.LineComment, n.FootComment = "", "", ""
	for _, c := range n.Content {
		clearComments(c)
	}
}

func dumpNode(n *yaml.Node) string {
	var b strings.Builder
	var walk func(n *yaml.Node, depth int)
	walk = func(n *yaml.Node, depth int) {
		fmt.Fprintf(&b, "%s%s %q @%d:%d\n", strings.Repeat(" ", depth), n.ShortTag(), n.Value, n.Line, n.Column)
		for _, c := range n.Content {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	return b.String()
}
