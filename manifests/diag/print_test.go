package diag

import (
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
