package manifests

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"go.yaml.in/yaml/v3"
)

// A file's documents are parsed in parallel by cutting the file at its
// document-start lines ("---" at the start of a line, then a space, a tab or
// the line's end). YAML forbids such a line inside any scalar, and the parser
// ends every block collection and block scalar at one, so each piece after
// the first is exactly one document, parsed as the whole file's parser would
// parse it. A worker parses a run of pieces with one parser. What the pieces
// cannot reproduce is refused up front (see splitDocuments), and any run
// that does not parse on its own into one document per piece sends the
// whole file back to the sequential parser: syntax errors, the parser's
// resumption after them, and aliases of anchors in an earlier run then come
// out as they always did.

// piece is one document's text: data[start:end], its first line being line
// line+1 of the file.
type piece struct {
	start, end int
	line       int
}

// splitDocuments cuts data before each document-start line. ok is false
// when the file holds something a piece parsed on its own could read
// differently: a directive or document-end line (whose document a cut
// would separate it from), a byte order mark after the first byte or a
// UTF-16 one (the encoding is the stream's), or a line break other than
// "\n" and "\r\n" (lines are counted by "\n").
func splitDocuments(data []byte) (pieces []piece, ok bool) {
	if bytes.HasPrefix(data, []byte{0xfe, 0xff}) || bytes.HasPrefix(data, []byte{0xff, 0xfe}) ||
		(len(data) > 0 && bytes.Contains(data[1:], []byte("\ufeff"))) ||
		bytes.Contains(data, []byte("\u0085")) || bytes.Contains(data, []byte("\u2028")) || bytes.Contains(data, []byte("\u2029")) {
		return nil, false
	}
	var cur piece // end set when the next one starts
	line := 0     // lines before the one at
	for at := 0; at < len(data); line++ {
		end := len(data)
		if i := bytes.IndexByte(data[at:], '\n'); i >= 0 {
			end = at + i + 1
		}
		text := data[at:end]
		if cr := bytes.IndexByte(text, '\r'); cr >= 0 && (cr != len(text)-2 || text[cr+1] != '\n') {
			return nil, false // a lone CR: a line break of its own
		}
		switch {
		case len(text) == 0:
		case text[0] == '%', marker(text, "..."):
			return nil, false
		case marker(text, "---") && at > 0:
			cur.end = at
			pieces = append(pieces, cur)
			cur = piece{start: at, line: line}
		}
		at = end
	}
	cur.end = len(data)
	return append(pieces, cur), true
}

// marker reports whether line (with its line break) is the document marker
// m followed by a space, a tab or the line's end.
func marker(line []byte, m string) bool {
	if !bytes.HasPrefix(line, []byte(m)) {
		return false
	}
	rest := line[len(m):]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r'
}

// parsePiece parses one piece: its documents, with lines those of the file.
func parsePiece(data []byte, p piece) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data[p.start:p.end]))
	var docs []*yaml.Node
	for {
		doc := new(yaml.Node)
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		shiftLines(doc, p.line)
		docs = append(docs, doc)
	}
	return docs, nil
}

// shiftLines adds lines to the line of n and of every node below it. An
// alias's target is in the same tree, reached through Content.
func shiftLines(n *yaml.Node, lines int) {
	if lines == 0 {
		return
	}
	n.Line += lines
	for _, c := range n.Content {
		shiftLines(c, lines)
	}
}

// batchBytes is how much of a split file a worker parses with one parser:
// enough documents that starting a parser (a few KiB) is not a cost of its
// own, few enough that the workers share a file evenly.
const batchBytes = 16 << 10

// splitFile is the state of one file whose pieces are on the workers.
type splitFile struct {
	wg     sync.WaitGroup
	failed atomic.Bool
}

// pieces decodes the file's documents on the workers from its pieces, a run
// of them to a job, and reports whether that gave the file's documents; if
// not, ps is left empty for the sequential parser.
func (d *decoder) pieces(ps *parts, file string, data []byte) bool {
	pieces, ok := splitDocuments(data)
	if !ok || len(pieces) < 2 {
		return false
	}
	// Every piece after the first starts with a document marker, so holds
	// one document; the first may hold none (only comments), which the
	// others' numbers depend on: it is parsed here.
	first, err := parsePiece(data, pieces[0])
	if err != nil || len(first) > 1 {
		return false
	}
	st := &splitFile{}
	n := 1
	for _, doc := range first {
		st.wg.Add(1)
		d.jobs <- docJob{file: file, n: n, doc: doc, outs: []*Set{ps.next()}, split: st}
		n++
	}
	for rest := pieces[1:]; len(rest) > 0 && !st.failed.Load(); {
		k := 1
		for k < len(rest) && rest[k].end-rest[0].start <= d.batch {
			k++
		}
		outs := make([]*Set, k)
		for i := range outs {
			outs[i] = ps.next()
		}
		st.wg.Add(1)
		d.jobs <- docJob{file: file, n: n, split: st, text: data[rest[0].start:rest[k-1].end], line: rest[0].line, outs: outs}
		n += k
		rest = rest[k:]
	}
	st.wg.Wait()
	if st.failed.Load() {
		ps.list = nil
		return false
	}
	return true
}

// pieceJob parses a run of pieces of a split file and decodes their
// documents; a run that does not parse into one document per piece fails
// the split. Its parser keeps the anchors of the run's earlier documents,
// as the whole file's parser does; an alias of an anchor in an earlier run
// is an error here, and the sequential parser then decides.
func (d *decoder) pieceJob(j docJob, types *typeTables) {
	defer j.split.wg.Done()
	if j.doc != nil {
		if !j.split.failed.Load() {
			j.outs[0].parseDocumentAt(j.file, j.n, j.doc, d.opt, types)
		}
		return
	}
	dec := yaml.NewDecoder(bytes.NewReader(j.text))
	for i, out := range j.outs {
		if j.split.failed.Load() {
			return
		}
		doc := new(yaml.Node)
		if err := dec.Decode(doc); err != nil {
			j.split.failed.Store(true)
			return
		}
		shiftLines(doc, j.line)
		out.parseDocumentAt(j.file, j.n+i, doc, d.opt, types)
	}
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		j.split.failed.Store(true)
	}
}
