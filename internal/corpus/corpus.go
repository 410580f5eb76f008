// Package corpus locates the upstream manifests tests run against. They live
// in the project's shared tree beside the repository (../shared/corpus), which
// CI always has and a user's fresh clone does not: tests that need them fail
// in CI and skip elsewhere, saying what is missing.
package corpus

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// KubeVirtExamples returns the directory of KubeVirt's upstream examples, or
// ends the test: Fatal under CI=true, Skip elsewhere.
func KubeVirtExamples(t testing.TB) string {
	t.Helper()
	return need(t, "kubevirt-examples")
}

func need(t testing.TB, name string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	// file is <repo>/internal/corpus/corpus.go; the shared tree is <repo>/../shared.
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "corpus", name)
	if _, err := os.Stat(dir); err != nil {
		msg := "needs the upstream corpus at ../shared/corpus/" + name + " (the project's shared tree beside the repository, present in CI): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}
