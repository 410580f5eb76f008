package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// version says which Go built the binary for which platform, in a table
// and as JSON.
func TestVersion(t *testing.T) {
	out, errOut, code := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "nodevirt ") || !strings.Contains(out, "built with: "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = run(t, "-o", "json", "version")
	var v buildVersion
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.GoVersion != runtime.Version() || v.Version == "" {
		t.Fatalf("exit %d, %v: %s%s", code, err, out, errOut)
	}
}
