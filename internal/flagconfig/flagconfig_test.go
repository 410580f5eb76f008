package flagconfig

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func flags() (*pflag.FlagSet, *[]string, *time.Duration, *bool) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	dirs := fs.StringSlice("dirs", nil, "")
	every := fs.Duration("every", time.Minute, "")
	heal := fs.Bool("heal", true, "")
	fs.String("name", "", "")
	fs.Float64("share", 1, "")
	return fs, dirs, every, heal
}

// What Encode writes, Parse and Apply read back to the same values, and
// flags set on the command line keep theirs.
func TestEncodeParseApply_roundTrip(t *testing.T) {
	src, _, _, _ := flags()
	if err := src.Parse([]string{"--dirs", "/a,/b", "--every", "90s", "--heal=false", "--name", "", "--share", "0.25"}); err != nil {
		t.Fatal(err)
	}
	data, err := Encode(src, []string{"dirs", "every", "heal", "name", "share"}, "settings\nof a test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "# settings\n# of a test\n") || !strings.Contains(string(data), "heal: false\n") || !strings.Contains(string(data), "share: 0.25\n") {
		t.Fatalf("encoded:\n%s", data)
	}
	f, err := Parse("c.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	dst, dirs, every, heal := flags()
	if err := dst.Parse([]string{"--every", "5s"}); err != nil {
		t.Fatal(err)
	}
	applied, err := f.Apply(dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 4 || strings.Join(*dirs, ",") != "/a,/b" || *every != 5*time.Second || *heal {
		t.Fatalf("applied %d: dirs %v every %v heal %v", len(applied), *dirs, *every, *heal)
	}
	if fl := dst.Lookup("dirs"); !fl.Changed {
		t.Error("a flag the file set is not marked changed")
	}
}

// Parse gives each entry its line; an empty file has none.
func TestParse_lines(t *testing.T) {
	f, err := Parse("c.yaml", []byte("# comment\n\nname: x\ndirs:\n  - /a\n"))
	if err != nil || len(f.Entries) != 2 || f.Entries[0].Line != 3 || f.Entries[1].Line != 4 || !f.Entries[1].List {
		t.Fatalf("%+v %v", f, err)
	}
	if f, err := Parse("c.yaml", []byte("# only comments\n")); err != nil || len(f.Entries) != 0 {
		t.Fatalf("%+v %v", f, err)
	}
	if _, err := Parse("c.yaml", []byte("name: [\n")); err == nil || !strings.HasPrefix(err.Error(), "c.yaml: ") {
		t.Fatalf("broken YAML: %v", err)
	}
}
