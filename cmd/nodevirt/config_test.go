package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// showConfig runs config show -o json with args and returns its settings by
// name.
func showConfig(t *testing.T, args ...string) (configReport, map[string]setting) {
	t.Helper()
	out, errOut, code := run(t, append(args, "config", "show", "-o", "json")...)
	if code != 0 {
		t.Fatalf("config show %v: exit %d\n%s%s", args, code, out, errOut)
	}
	var rep configReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("config show: %v\n%s", err, out)
	}
	byName := map[string]setting{}
	for _, s := range rep.Settings {
		byName[s.Name] = s
	}
	return rep, byName
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// executeRoot runs the CLI with exactly args (no --config of the test
// helper), so the default path and NODEVIRT_CONFIG are in play.
func executeRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// A value from the file is used where the command line says nothing; a
// flag wins; lists, scalars for list flags, durations, booleans and
// numbers all go through the flag's own parser.
func TestConfig_fileSetsWhatTheCommandLineLeavesAlone(t *testing.T) {
	p := writeConfig(t, `# the service's settings
source: https://git.example/vms.git
branch: dev
interval: "30s"
drift-interval: 2m
node-lease: 30s
self-heal: false
prune-guard-share: 0.5
allowed-host-dirs: [/srv/images, /srv/disks]
allowed-root: /srv/pv
`)
	rep, s := showConfig(t, "--config", p, "--branch", "main")
	if rep.File != p {
		t.Errorf("file read %q, want %q", rep.File, p)
	}
	want := map[string]setting{
		"source":            {Value: "https://git.example/vms.git", Source: "config"},
		"branch":            {Value: "main", Source: "flag"},
		"interval":          {Value: "30s", Source: "config"},
		"drift-interval":    {Value: "2m0s", Source: "config"},
		"node-lease":        {Value: "30s", Source: "config"},
		"self-heal":         {Value: "false", Source: "config"},
		"prune-guard-share": {Value: "0.5", Source: "config"},
		"allowed-host-dirs": {Value: []any{"/srv/images", "/srv/disks"}, Source: "config"},
		"allowed-root":      {Value: []any{"/srv/pv"}, Source: "config"},
		"namespace":         {Value: "default", Source: "default"},
	}
	for name, w := range want {
		got := s[name]
		if got.Source != w.Source || !jsonEqual(t, got.Value, w.Value) {
			t.Errorf("%s = %v from %s, want %v from %s", name, got.Value, got.Source, w.Value, w.Source)
		}
	}
	// A comma-separated scalar for a slice flag reads like the command line.
	_, s = showConfig(t, "--config", writeConfig(t, "allowed-host-dirs: /a,/b\n"))
	if !jsonEqual(t, s["allowed-host-dirs"].Value, []any{"/a", "/b"}) {
		t.Errorf("scalar list: %v", s["allowed-host-dirs"].Value)
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// The file's values reach the command itself: validate reads the source
// the file names, and a log format the file sets is checked like a flag's.
func TestConfig_valuesReachTheCommand(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "vms/typo.yaml", "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: typo}\nspec:\n  runStrategy: Sometimes\n")
	p := writeConfig(t, "source: "+dir+"\ninterval: 30s\n")
	out, errOut, code := run(t, "--config", p, "validate")
	if code != 1 || !strings.Contains(out+errOut, "typo.yaml") {
		t.Fatalf("validate with the source from the file: exit %d\n%s%s", code, out, errOut)
	}
	// The flag wins over the file: the examples validate.
	if out, errOut, code := run(t, "--config", p, "validate", "--source", "../../examples"); code != 0 {
		t.Fatalf("validate --source over the file: exit %d\n%s%s", code, out, errOut)
	}
	_, errOut, code = run(t, "--config", writeConfig(t, "log-format: yaml\n"), "version")
	if code != 1 || !strings.Contains(errOut, `--log-format "yaml": want text or json`) {
		t.Fatalf("log-format from the file: exit %d, %s", code, errOut)
	}
}

// Bad files are refused naming the file, the line, the key and what is
// wrong; keys of another command are left for it.
func TestConfig_refused(t *testing.T) {
	for _, c := range []struct{ name, text, want string }{
		{"unknown key", "source: /x\n\nsorce: /y\n", `:3: unknown key "sorce": no command has a flag --sorce`},
		{"bad duration", "branch: main\ninterval: soon\n", `:2: interval: invalid argument "soon" for "--interval" flag: time: invalid duration "soon"`},
		{"bad bool", "self-heal: maybe\n", `:1: self-heal: invalid argument "maybe"`},
		{"list for one value", "branch: [a, b]\n", `:1: branch: a list, but --branch takes one value`},
		{"mapping value", "source:\n  url: x\n", `:2: source: want a value or a list of values, not a mapping`},
		{"repeated key", "branch: a\nbranch: b\n", `:2: branch: set again (first at line 1)`},
		{"no mapping", "- source\n", `:1: want a mapping of flag names to values`},
		{"config in config", "config: /etc/other.yaml\n", `:1: config: a config file cannot name another one`},
	} {
		p := writeConfig(t, c.text)
		out, errOut, code := run(t, "--config", p, "run")
		if code != 1 || out != "" || !strings.Contains(errOut, p+c.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q, want %q", c.name, code, out, errOut, p+c.want)
		}
	}
	// interval and self-heal are flags of run, not of validate: a file
	// shared by run and the one-shot commands is fine for validate.
	p := writeConfig(t, "interval: 30s\nself-heal: false\nsource: ../../examples\n")
	if out, errOut, code := run(t, "--config", p, "validate", "--strict"); code != 0 {
		t.Fatalf("keys of run while validating: exit %d\n%s%s", code, out, errOut)
	}
}

// The default file may be absent; a file named by --config or
// NODEVIRT_CONFIG may not; --config wins over NODEVIRT_CONFIG.
func TestConfig_whichFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.yaml")
	if _, err := executeRoot(t, "--config", missing, "version"); err == nil || !strings.Contains(err.Error(), "config file: open "+missing+": no such file") {
		t.Fatalf("absent --config: %v", err)
	}
	t.Setenv(configEnv, missing)
	if _, err := executeRoot(t, "version"); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("absent %s: %v", configEnv, err)
	}
	fromEnv := writeConfig(t, "branch: from-env\n")
	fromFlag := writeConfig(t, "branch: from-flag\n")
	t.Setenv(configEnv, fromEnv)
	out, err := executeRoot(t, "config", "show", "-o", "json")
	if err != nil || !strings.Contains(out, `"value": "from-env"`) {
		t.Fatalf("%s: %v\n%s", configEnv, err, out)
	}
	out, err = executeRoot(t, "--config", fromFlag, "config", "show", "-o", "json")
	if err != nil || !strings.Contains(out, `"value": "from-flag"`) || strings.Contains(out, "from-env") {
		t.Fatalf("--config over %s: %v\n%s", configEnv, err, out)
	}

	// The default path, pointed somewhere absent without marking the flag
	// given (the way its default is): nothing is read, no error.
	t.Setenv(configEnv, "")
	cmd := newRootCmd()
	f := cmd.PersistentFlags().Lookup("config")
	if err := f.Value.Set(missing); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	cmd.SetOut(&buf)
	cmd.SetArgs([]string{"config", "show", "-o", "json"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("absent default file: %v", err)
	}
	var rep configReport
	if err := json.Unmarshal(buf.Bytes(), &rep); err != nil || rep.File != "" {
		t.Fatalf("absent default file read as %q (%v)", rep.File, err)
	}
	// Present at the default path: read.
	if err := f.Value.Set(fromFlag); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	cmd.SetArgs([]string{"config", "show", "-o", "json"})
	if err := cmd.Execute(); err != nil || !strings.Contains(buf.String(), `"value": "from-flag"`) {
		t.Fatalf("default file: %v\n%s", err, buf.String())
	}
}

// A node lease that is not positive would let any VM start beside a
// running one: run refuses it before opening anything.
func TestConfig_nodeLeaseMustBePositive(t *testing.T) {
	p := writeConfig(t, "node-lease: 0s\n")
	_, errOut, code := run(t, "--config", p, "--source", t.TempDir(), "--state", t.TempDir(), "run")
	if code == 0 || !strings.Contains(errOut, "--node-lease 0s: must be positive") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}
