package manifests

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// aliasBomb is one VirtualMachine whose annotations alias one big string
// n times: a file of size+n lines that expands to size×n bytes.
func aliasBomb(size, n int) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: bomb\n  annotations:\n    a0: &s \"")
	b.WriteString(strings.Repeat("x", size))
	b.WriteString("\"\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "    a%d: *s\n", i)
	}
	b.WriteString("spec:\n  runStrategy: Halted\n  template:\n    spec:\n      domain:\n        memory: {guest: 64Mi}\n")
	return []byte(b.String())
}

// A 1 MB string aliased 200 times is refused with an error naming the file
// and document, in bounded memory: before the bound, the decode marshalled
// and unmarshalled the 200 MB document several times over (a thousand
// aliases took more than 5 GB).
func TestParse_aliasBombBoundedInMemory(t *testing.T) {
	data := aliasBomb(1<<20, 200)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s := Parse("bomb.yaml", data, Options{})
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 128<<20 {
		t.Errorf("decoding a %d KiB file allocated %d MiB; it must be refused before expanding", len(data)>>10, alloc>>20)
	}
	errs := s.Diags.Errors()
	if len(errs) != 1 || !errors.Is(errs[0], ErrDocumentTooLarge) || errs[0].File != "bomb.yaml" ||
		!strings.Contains(errs[0].Message, "document 1") {
		t.Fatalf("want one error naming bomb.yaml and document 1 as too large, got %v", s.Diags)
	}
	if !s.Incomplete || len(s.Objects) != 0 {
		t.Errorf("a refused document must suspend pruning (Incomplete) and yield no object")
	}
}

// Nested aliases ("billion laughs") are measured without expanding them.
func TestParse_nestedAliasesRefused(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n  l0: &l0 \"lol\"\n")
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&b, "  l%d: &l%d [*l%d, *l%d]\n", i, i, i-1, i-1)
	}
	s := Parse("lol.yaml", []byte(b.String()), Options{})
	if !errors.Is(s.Diags.Err(), ErrDocumentTooLarge) {
		t.Fatalf("want the document refused as too large, got %v", s.Diags)
	}
}

// Alias expansion within the bound still decodes.
func TestParse_smallAliasesDecode(t *testing.T) {
	s := Parse("ok.yaml", aliasBomb(1<<10, 10), Options{})
	if errs := s.Diags.Errors(); len(errs) != 0 || len(s.Objects) != 1 {
		t.Fatalf("small aliases must decode: %v", s.Diags)
	}
}

func TestParse_fileTooLarge(t *testing.T) {
	s := Parse("big.yaml", make([]byte, MaxFileBytes+1), Options{})
	if !errors.Is(s.Diags.Err(), ErrFileTooLarge) || !s.Incomplete {
		t.Fatalf("want the file refused: %v", s.Diags)
	}
}

func TestCheckExpansion(t *testing.T) {
	if err := CheckExpansion(aliasBomb(1<<20, 200)); !errors.Is(err, ErrDocumentTooLarge) || !strings.Contains(err.Error(), "document 1") {
		t.Fatalf("CheckExpansion = %v", err)
	}
	if err := CheckExpansion([]byte("a: &x [*x]\n")); !errors.Is(err, ErrRecursiveAlias) {
		t.Fatalf("recursive alias: %v", err)
	}
	if err := CheckExpansion(aliasBomb(10, 10)); err != nil {
		t.Fatal(err)
	}
}

// A huge scalar is named, not echoed, in a type error or unknown field.
func TestParse_longValueNotEchoed(t *testing.T) {
	long := strings.Repeat("y", 1<<20)
	key := strings.Repeat("k", 1000) // YAML's longest plain key is 1024
	s := Parse("long.yaml", []byte("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: v}\nspec:\n  runStrategy: Halted\n  "+key+": 1\n  template:\n    spec:\n      domain:\n        memory: {guest: 64Mi}\n        cpu: {cores: \""+long+"\"}\n"), Options{})
	if len(s.Diags.Errors()) < 2 {
		t.Fatalf("want the unknown field and the type error, got %d diagnostics", len(s.Diags))
	}
	for _, d := range s.Diags {
		if len(d.Error()) > 400 {
			t.Errorf("diagnostic of %d bytes echoes the value", len(d.Error()))
		}
	}
}
