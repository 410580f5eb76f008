package manifests

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// mixedDocuments is a file whose documents fail in every way a document can
// fail, in different places: unknown fields, wrong types, a failed check, a
// broken document the parser resumes after, one too large once its aliases
// are expanded, an empty one, a duplicate, and valid ones in between.
func mixedDocuments(n int) string {
	var docs []string
	for i := range n {
		switch i % 8 {
		case 0:
			docs = append(docs, fmt.Sprintf("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: vm%d}\nspec:\n  runStrategy: Halted\n  template:\n    spec:\n      domain:\n        memory: {guest: 64Mi}\n        bogus%d: 1\n", i, i))
		case 1:
			docs = append(docs, fmt.Sprintf("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: vm%d}\nspec:\n  runStrategy: Sometimes\n  template:\n    spec:\n      domain:\n        memory: {guest: 64Mi}\n        cpu: {cores: lots}\n", i))
		case 2:
			docs = append(docs, fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm%d}\ndata: {a: [unclosed\n", i))
		case 3:
			docs = append(docs, fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb%d}\ndata:\n  l0: &l0 \"lol\"\n  l1: *l0\n  self: &s [*s]\n", i))
		case 4:
			docs = append(docs, "# only a comment\n")
		case 5:
			docs = append(docs, "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: vm0}\nspec:\n  runStrategy: Halted\n  template:\n    spec:\n      domain:\n        memory: {guest: 64Mi}\n")
		case 6:
			docs = append(docs, fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: s%d, namespace: 7}\nstringData: {a: b}\n", i))
		default:
			docs = append(docs, fmt.Sprintf("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: ok%d}\nspec:\n  runStrategy: Halted\n  template:\n    spec:\n      domain:\n        memory: {guest: 64Mi}\n", i))
		}
	}
	return strings.Join(docs, "---\n")
}

// outcome is what a decode yields, in the order it yields it.
type outcome struct {
	Objects    []string
	Diags      []string
	Incomplete bool
	Files      int
}

func outcomeOf(s *Set) outcome {
	o := outcome{Incomplete: s.Incomplete, Files: s.Files}
	for _, obj := range s.Objects {
		o.Objects = append(o.Objects, fmt.Sprintf("%s %s:%d valid=%v decoded=%v", obj.Ref, obj.File, obj.Line, obj.Valid, obj.Value != nil))
	}
	for _, d := range s.Diags {
		o.Diags = append(o.Diags, fmt.Sprintf("%s %s:%d:%d %s %s: %s", d.Severity, d.File, d.Line, d.Col, d.Object, d.Path, d.Message))
	}
	return o
}

// Documents decoded on several workers give the same objects and the same
// diagnostics, in the same order, as one after the other.
func TestParse_parallelSameAsSequential(t *testing.T) {
	src := []byte(mixedDocuments(400))
	want := outcomeOf(parseWith("mixed.yaml", src, Options{}, 1))
	if len(want.Objects) < 200 || len(want.Diags) < 300 || !want.Incomplete {
		t.Fatalf("the file should yield many objects and errors: %d objects, %d diagnostics, incomplete %v",
			len(want.Objects), len(want.Diags), want.Incomplete)
	}
	// With its syntax errors the file is parsed whole (see
	// splitDocuments); without them, from one piece per document.
	var valid []string
	for doc := range strings.SplitSeq(string(src), "---\n") {
		if !strings.Contains(doc, "[unclosed") {
			valid = append(valid, doc)
		}
	}
	srcValid := []byte(strings.Join(valid, "---\n"))
	if !decodedFromPieces(srcValid) {
		t.Fatal("the file without syntax errors should be decoded from pieces")
	}
	wantValid := outcomeOf(parseWith("mixed.yaml", srcValid, Options{}, 1))
	for _, workers := range []int{2, 4, 16} {
		for range 3 {
			got := outcomeOf(parseWith("mixed.yaml", src, Options{}, workers))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%d workers: the result differs from one worker's:\n%s", workers, firstDifference(got, want))
			}
			for _, batch := range []int{0, 1000, batchBytes} {
				got = outcomeOf(parseBatched("mixed.yaml", srcValid, workers, batch))
				if !reflect.DeepEqual(got, wantValid) {
					t.Fatalf("%d workers, batches of %d bytes, no syntax error: the result differs from one worker's:\n%s", workers, batch, firstDifference(got, wantValid))
				}
			}
		}
	}
}

// Load over several files merges them in file order, whatever the workers
// finish first.
func TestLoad_parallelSameAsOneFile(t *testing.T) {
	dir := t.TempDir()
	src := mixedDocuments(96)
	docs := strings.Split(src, "---\n")
	var names []string
	for i := 0; i < len(docs); i += 12 {
		name := fmt.Sprintf("f%02d.yaml", i/12)
		names = append(names, name)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(docs[i:i+12], "---\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The files a cut at "---" lines could get wrong, cut or parsed whole.
	for i, c := range splitCases {
		name := fmt.Sprintf("s%02d.yaml", i)
		names = append(names, name)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(c.src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Load cuts files only with more than one worker.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	// The same documents, each file decoded alone and one after the other.
	want := outcome{Files: len(names)}
	seq := &Set{}
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		d := newDecoder(Options{}, 1)
		ps := &parts{}
		d.file(ps, name, data)
		d.wait(seq, ps)
		seq.Files++
	}
	seq.finish()
	want = outcomeOf(seq)
	for range 3 {
		s, err := Load(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := outcomeOf(s); !reflect.DeepEqual(got, want) {
			t.Fatalf("Load differs from decoding file after file:\n%s", firstDifference(got, want))
		}
	}
}

func firstDifference(got, want outcome) string {
	if got.Incomplete != want.Incomplete || got.Files != want.Files {
		return fmt.Sprintf("incomplete %v files %d, want %v and %d", got.Incomplete, got.Files, want.Incomplete, want.Files)
	}
	for _, l := range []struct {
		what      string
		got, want []string
	}{{"object", got.Objects, want.Objects}, {"diagnostic", got.Diags, want.Diags}} {
		for i := range max(len(l.got), len(l.want)) {
			var g, w string
			if i < len(l.got) {
				g = l.got[i]
			}
			if i < len(l.want) {
				w = l.want[i]
			}
			if g != w {
				return fmt.Sprintf("%s %d:\n got  %q\n want %q", l.what, i, g, w)
			}
		}
	}
	return "no difference"
}
