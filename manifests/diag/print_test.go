package diag

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFprint(t *testing.T) {
	src := map[string][]byte{
		"vm.yaml": []byte("spec:\n  domain:\n\tcores: \"two\"\r\n"),
	}
	l := List{
		{Severity: Error, File: "vm.yaml", Line: 3, Col: 9, Object: "VirtualMachine default/vm1",
			Path: "spec.domain.cores", Message: "wrong type"},
		{Severity: Warning, File: "vm.yaml", Line: 40, Col: 1, Message: "past the end"},
		{Severity: Error, File: "other.yaml", Message: "no line"},
	}
	var b strings.Builder
	Fprint(&b, l, func(file string) []byte { return src[file] })
	want := strings.Join([]string{
		`vm.yaml:3:9: VirtualMachine default/vm1: spec.domain.cores: wrong type`,
		"    3 | \tcores: \"two\"",
		"      | \t       ^",
		`vm.yaml:40:1: warning: past the end`,
		`other.yaml: no line`,
		``,
	}, "\n")
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("Fprint (-want +got):\n%s", diff)
	}
}

func TestFprint_nilSource(t *testing.T) {
	var b strings.Builder
	Fprint(&b, List{{Severity: Error, File: "a.yaml", Line: 1, Col: 1, Message: "m"}}, nil)
	if got, want := b.String(), "a.yaml:1:1: m\n"; got != want {
		t.Errorf("Fprint = %q, want %q", got, want)
	}
}

// A huge single-line file (minified JSON, a pasted blob) shows only the part
// of the line around the error, not megabytes of it.
func TestFprint_longLineCutAroundColumn(t *testing.T) {
	line := strings.Repeat("a", 5<<20) + "BAD" + strings.Repeat("b", 5<<20)
	col := 5<<20 + 1
	var b strings.Builder
	Fprint(&b, List{{Severity: Error, File: "big.yaml", Line: 1, Col: col, Message: "bad"}},
		func(string) []byte { return []byte(line + "\n") })
	out := b.String()
	if len(out) > 600 {
		t.Fatalf("report is %d bytes; the line must be cut around the column", len(out))
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 3 || !strings.Contains(lines[1], "…") || !strings.HasSuffix(lines[1], "…") || !strings.Contains(lines[1], "BAD") {
		t.Fatalf("excerpt should hold the column between … markers:\n%s", out)
	}
	// The caret still points at the B of BAD.
	caret := strings.IndexRune(lines[2], '^')
	if got := []rune(lines[1])[len([]rune(lines[2][:caret]))]; got != 'B' {
		t.Fatalf("caret under %q, want B:\n%s", got, out)
	}
}

// The source of a file is read once however many diagnostics point into it,
// so a report of thousands of errors is linear in their number.
func TestFprint_readsEachFileOnce(t *testing.T) {
	var src strings.Builder
	var l List
	for i := 1; i <= 1000; i++ {
		src.WriteString("key: value\n")
		l = append(l, Diagnostic{Severity: Error, File: "a.yaml", Line: i, Col: 1, Message: "m"})
	}
	reads := 0
	var b strings.Builder
	Fprint(&b, l, func(string) []byte { reads++; return []byte(src.String()) })
	if reads != 1 {
		t.Fatalf("source read %d times for one file, want 1", reads)
	}
	if got := strings.Count(b.String(), "key: value"); got != 1000 {
		t.Fatalf("%d excerpts, want 1000", got)
	}
}

// TestFprint_manySameAsOneByOne: a report large enough to be formatted in
// batches on several workers reads as the diagnostics printed one by one.
func TestFprint_manySameAsOneByOne(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	src := map[string][]byte{}
	var l List
	for f := range 3 {
		name := fmt.Sprintf("f%d.yaml", f)
		var b strings.Builder
		for i := 1; i <= 1500; i++ {
			fmt.Fprintf(&b, "key%d:\tvalue %s\n", i, strings.Repeat("é", i%200))
			d := Diagnostic{Severity: []Severity{Error, Warning}[i%2], File: name, Line: i, Col: 1 + i%250,
				Object: "VirtualMachine default/vm" + strconv.Itoa(i), Message: "m" + strconv.Itoa(i)}
			if i%7 == 0 {
				d.Line = 0 // no excerpt
			}
			l = append(l, d)
		}
		src[name] = []byte(b.String())
	}
	l = append(l, Diagnostic{Severity: Error, File: "gone.yaml", Line: 3, Message: "file without source"})
	reads := map[string]int{}
	var got strings.Builder
	Fprint(&got, l, func(f string) []byte { reads[f]++; return src[f] })
	var want strings.Builder
	for _, d := range l {
		Fprint(&want, List{d}, func(f string) []byte { return src[f] })
	}
	if got.String() != want.String() {
		t.Fatalf("batched report differs from one by one:\n%s", cmp.Diff(want.String(), got.String()))
	}
	for f, n := range reads {
		if n != 1 {
			t.Errorf("source %s read %d times, want 1", f, n)
		}
	}
	if n := strings.Count(got.String(), "^\n"); n < 3000 {
		t.Fatalf("%d carets in the report: excerpts went missing", n)
	}
}
