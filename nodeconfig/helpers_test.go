package nodeconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	ign2types "github.com/coreos/ignition/config/v2_4/types"
	"github.com/coreos/ignition/v2/config/v3_6/types"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
)

// source writes files into a temporary source directory and renders it for
// node.
func render(t *testing.T, node Node, files map[string]string) (*HostConfig, *manifests.Set) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := manifests.Load(dir, manifests.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if node.Name == "" {
		node = NodeFor(set, "n1", node.CPUVendor)
	}
	h, diags := Render(set, dir, node)
	checkPaths(t, dir, diags)
	return h, set
}

type summary struct {
	Severity diag.Severity
	File     string
	Line     int
	Object   string
	Path     string
}

func summarize(l diag.List) []summary {
	var out []summary
	for _, d := range l {
		out = append(out, summary{d.Severity, d.File, d.Line, d.Object, d.Path})
	}
	return out
}

var index = regexp.MustCompile(`\[[^\]]*\]`)

// checkPaths fails when a diagnostic names a field that does not exist
// (butane's VerifyReport): for MachineConfigs the path must be a field of
// the MachineConfig and Ignition types, for Butane files a key written in
// the file. Every diagnostic with a file must have a line.
func checkPaths(t *testing.T, dir string, l diag.List) {
	t.Helper()
	for _, d := range l {
		if d.File == "" {
			continue
		}
		if d.Line == 0 {
			t.Errorf("diagnostic without a line: %s", d.Error())
		}
		if d.Path == "" {
			continue
		}
		switch {
		case strings.HasPrefix(d.Object, "Butane "):
			data, err := os.ReadFile(filepath.Join(dir, d.File))
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := indexYAML(data).pos[d.Path]; !ok {
				t.Errorf("diagnostic %q: path is not written in %s", d.Error(), d.File)
			}
		case strings.HasPrefix(d.Path, "spec.config."):
			// A spec 2 config's diagnostics name spec 2 fields.
			fields := strings.Split(index.ReplaceAllString(strings.TrimPrefix(d.Path, "spec.config."), ""), ".")
			if !hasField(reflect.TypeOf(types.Config{}), fields) && !hasField(reflect.TypeOf(ign2types.Config{}), fields) {
				t.Errorf("diagnostic %q: path is not an Ignition field", d.Error())
			}
		case strings.HasPrefix(d.Path, "spec."):
			if !hasField(reflect.TypeOf(manifests.MachineConfigSpec{}), strings.Split(index.ReplaceAllString(strings.TrimPrefix(d.Path, "spec."), ""), ".")) &&
				!hasField(reflect.TypeOf(manifests.HyperConvergedSpec{}), strings.Split(index.ReplaceAllString(strings.TrimPrefix(d.Path, "spec."), ""), ".")) &&
				!hasField(reflect.TypeOf(manifests.HostPathProvisionerSpec{}), strings.Split(index.ReplaceAllString(strings.TrimPrefix(d.Path, "spec."), ""), ".")) {
				t.Errorf("diagnostic %q: path is not a spec field", d.Error())
			}
		}
	}
}

func hasField(t reflect.Type, path []string) bool {
	for len(path) > 0 {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return false
		}
		found := false
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("json"), ",")[0]
			if f.Anonymous && name == "" {
				if hasField(f.Type, path) {
					return true
				}
				continue
			}
			if name == path[0] {
				t, path, found = f.Type, path[1:], true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
