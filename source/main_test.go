package source

import (
	"flag"
	"os"
	"testing"
)

// TestMain widens -parallel unless it was given: the watch tests spend their
// time waiting for debounce timers, not on a CPU, and the default
// (GOMAXPROCS, 2 on small builders) would serialise them into most of the
// package's run time.
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		if err := flag.Set("test.parallel", "32"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
