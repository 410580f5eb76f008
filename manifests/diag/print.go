package diag

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Fprint writes each diagnostic's Error() line to w. When source returns the
// file's content and the diagnostic has a line, the offending source line follows
// with a caret under the column, so a reader sees the problem without opening
// the file (the butane report layout). source may be nil. Write errors are
// ignored, as with fmt.Fprintln: the report is best effort output for people.
func Fprint(w io.Writer, l List, source func(file string) []byte) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	for _, d := range l {
		fmt.Fprintln(bw, d.Error())
		if source == nil || d.File == "" || d.Line <= 0 {
			continue
		}
		text, ok := sourceLine(source(d.File), d.Line)
		if !ok {
			continue
		}
		gutter := fmt.Sprintf("%5d | ", d.Line)
		fmt.Fprintf(bw, "%s%s\n", gutter, text)
		if d.Col > 0 {
			fmt.Fprintf(bw, "%s| %s^\n", strings.Repeat(" ", len(gutter)-2), caretPad(text, d.Col))
		}
	}
}

// sourceLine returns the 1-based line n of src without its line ending.
func sourceLine(src []byte, n int) (string, bool) {
	if src == nil {
		return "", false
	}
	for i := 1; ; i++ {
		line, rest, found := bytes.Cut(src, []byte("\n"))
		if i == n {
			return strings.TrimSuffix(string(line), "\r"), true
		}
		if !found {
			return "", false
		}
		src = rest
	}
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
