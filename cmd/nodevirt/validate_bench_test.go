package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// manyInvalid writes one file of n VirtualMachines, each with one unknown
// field, the shape of a generated repository gone wrong.
func manyInvalid(tb testing.TB, n int) string {
	tb.Helper()
	dir := tb.TempDir()
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: vm%d}\nspec:\n  runStrategy: Halted\n  template:\n    spec:\n      domain:\n        memory: {guest: 64Mi}\n        bogus: 1\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, "vms.yaml"), []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// BenchmarkValidate_manyErrors is `nodevirt validate` over a source whose
// every document is invalid: decoding, rendering and printing the report
// must stay linear in the number of errors.
func BenchmarkValidate_manyErrors(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir := manyInvalid(b, n)
			for b.Loop() {
				_, errOut, code := run(b, "validate", "--source", dir)
				if code != 1 || strings.Count(errOut, "unknown field") != n {
					b.Fatalf("exit %d, %d errors reported", code, strings.Count(errOut, "unknown field"))
				}
			}
		})
	}
}
