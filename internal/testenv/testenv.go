// Package testenv holds the one rule for tests whose environment is not
// there: under CI=true it is a failure (CI installs and starts everything, so
// a skip would hide a broken set-up), elsewhere a skip that says what is
// missing, so a user's fresh clone still passes `make test`. It also locates
// the upstream corpus, which lives beside the repository in the project's
// shared tree (../shared/corpus) that CI has and a fresh clone does not.
package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Missing ends the test because what it needs is not there: Fatal under
// CI=true, Skip elsewhere.
func Missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("test precondition missing in CI: %s", what)
	}
	t.Skipf("test precondition missing (set-up not run here): %s", what)
}

// KubeVirtExamples returns the directory of KubeVirt's upstream examples,
// or ends the test through Missing.
func KubeVirtExamples(t testing.TB) string {
	t.Helper()
	return corpus(t, "kubevirt-examples")
}

func corpus(t testing.TB, name string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	// file is <repo>/internal/testenv/testenv.go; the shared tree is <repo>/../shared.
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "corpus", name)
	if _, err := os.Stat(dir); err != nil {
		Missing(t, "the upstream corpus at ../shared/corpus/"+name+" (the project's shared tree beside the repository): "+err.Error())
	}
	return dir
}
