package diag

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"
)

// excerptWidth is how many characters of a source line Fprint shows at most:
// a minified or generated file can hold megabytes on one line, and the report
// must not echo them.
const excerptWidth = 120

// Fprint writes each diagnostic's Error() line to w. When source returns the
// file's content and the diagnostic has a line, the offending source line follows
// with a caret under the column, so a reader sees the problem without opening
// the file (the butane report layout); a line longer than 120 characters is
// cut to the part around the column, with "…" where text was left out. source
// may be nil; it is called once per file. A write error ends the report
// without one: it is best effort output for people, and a closed pipe will
// not take the rest.
func Fprint(w io.Writer, l List, source func(file string) []byte) {
	// Thousands of diagnostics usually share a few files: read and index
	// each once, so the report stays linear in the number of diagnostics.
	files := map[string]*lineIndex{}
	if source != nil {
		for _, d := range l {
			if d.File == "" || d.Line <= 0 {
				continue
			}
			if _, seen := files[d.File]; !seen {
				idx := newLineIndex(source(d.File))
				idx.build() // before the workers share it
				files[d.File] = idx
			}
		}
	}
	// Ten thousand VMs with a warning each is a report of megabytes, written
	// after everything else: formatting it on one CPU was a tenth of a
	// validate. Batches are formatted on every CPU and written in order, so
	// the report reads as one CPU would write it and memory stays bounded.
	workers := runtime.GOMAXPROCS(0)
	if len(l) < printBatch {
		workers = 1
	}
	bufs := make([]bytes.Buffer, workers)
	for len(l) > 0 {
		batch := l[:min(len(l), printBatch*workers)]
		l = l[len(batch):]
		per := (len(batch) + workers - 1) / workers
		var wg sync.WaitGroup
		for i := range bufs {
			part := batch[min(i*per, len(batch)):min((i+1)*per, len(batch))]
			bufs[i].Reset()
			if i == 0 {
				continue // this goroutine's share, below
			}
			wg.Go(func() { printTo(&bufs[i], part, files) })
		}
		printTo(&bufs[0], batch[:min(per, len(batch))], files)
		wg.Wait()
		for i := range bufs {
			if _, err := w.Write(bufs[i].Bytes()); err != nil {
				return
			}
		}
	}
}

// printBatch is how many diagnostics one worker formats before the report
// is written on: enough to pay for a goroutine, few enough to bound memory.
const printBatch = 256

// printTo formats l into b: each diagnostic's line, then the excerpt of its
// source line from files when there is one.
func printTo(b *bytes.Buffer, l List, files map[string]*lineIndex) {
	for _, d := range l {
		b.WriteString(d.Error())
		b.WriteByte('\n')
		if d.File == "" || d.Line <= 0 {
			continue
		}
		raw, ok := files[d.File].line(d.Line)
		if !ok {
			continue
		}
		text, col := excerpt(raw, d.Col)
		gutter := fmt.Sprintf("%5d | ", d.Line)
		b.WriteString(gutter)
		b.WriteString(text)
		b.WriteByte('\n')
		if col > 0 {
			b.WriteString(strings.Repeat(" ", len(gutter)-2))
			b.WriteString("| ")
			b.WriteString(caretPad(text, col))
			b.WriteString("^\n")
		}
	}
}

// lineIndex finds lines of one file without scanning it from the start for
// every diagnostic.
type lineIndex struct {
	src    []byte
	starts []int // byte offset of each line's start
}

func newLineIndex(src []byte) *lineIndex {
	if src == nil {
		return nil
	}
	return &lineIndex{src: src}
}

// build indexes the line starts.
func (x *lineIndex) build() {
	if x == nil {
		return
	}
	// Counting first sizes the index once; bytes.IndexByte and Count scan
	// a word at a time where a byte loop would not.
	x.starts = make([]int, 1, bytes.Count(x.src, []byte{'\n'})+1)
	for i := 0; ; {
		j := bytes.IndexByte(x.src[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
		x.starts = append(x.starts, i)
	}
}

// line returns the 1-based line n without its line ending.
func (x *lineIndex) line(n int) ([]byte, bool) {
	if x == nil {
		return nil, false
	}
	if n < 1 || n > len(x.starts) {
		return nil, false
	}
	start, end := x.starts[n-1], len(x.src)
	if n < len(x.starts) {
		end = x.starts[n] - 1
	}
	return bytes.TrimSuffix(x.src[start:end], []byte("\r")), true
}

// excerpt cuts line to at most excerptWidth characters around col (1-based,
// in characters; 0 for none) and returns the column within the excerpt. It
// reads the line only as far as the excerpt reaches, so many diagnostics on
// one huge line stay cheap.
func excerpt(line []byte, col int) (string, int) {
	if len(line) <= excerptWidth { // never more characters than bytes
		return string(line), col
	}
	first := 0 // in characters; keep the column near the middle
	if col > 0 {
		first = max(0, col-1-excerptWidth/2)
	}
	var b strings.Builder
	i, rest := 0, line
	for ; i < first && len(rest) > 0; i++ {
		_, size := utf8.DecodeRune(rest)
		rest = rest[size:]
	}
	if len(rest) == 0 {
		// The column is past the end of the line: show its start.
		return excerpt(line, 0)
	}
	out := col
	if first > 0 {
		b.WriteString("…")
		out = col - first + 1 // the marker takes one column
	}
	for j := 0; j < excerptWidth && len(rest) > 0; j++ {
		_, size := utf8.DecodeRune(rest)
		b.Write(rest[:size])
		rest = rest[size:]
	}
	if len(rest) > 0 {
		b.WriteString("…")
	}
	return b.String(), out
}

// caretPad returns the whitespace that puts a caret under column col (1-based,
// counted in characters as YAML parsers do). Tabs are kept so the caret lines up
// however the terminal expands them.
func caretPad(line string, col int) string {
	var b strings.Builder
	for i := 1; i < col && line != ""; i++ {
		r, size := utf8.DecodeRuneInString(line)
		line = line[size:]
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}
