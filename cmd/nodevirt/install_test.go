package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/internal/testenv"
)

// installJSON runs install -o json with exactly args: the test helper's
// own flags (--state, --log-level) would be settings install writes.
func installJSON(t *testing.T, args ...string) installReport {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{"install", "-o", "json"}, args...))
	if err := cmd.Execute(); err != nil {
		t.Fatalf("install %v: %v\n%s%s", args, err, out.String(), errOut.String())
	}
	var rep installReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("install: %v\n%s", err, out.String())
	}
	return rep
}

func states(rep installReport) map[string]string {
	m := map[string]string{}
	for _, f := range rep.Files {
		m[f.Path] = f.State
	}
	return m
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// install writes the binary, the unit and the config under --root with
// their modes, then nothing on a second run; it keeps a config that
// differs unless --force, which keeps the old one as .bak.
func TestInstall_idempotentFiles(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(root, "usr/local/bin/nodevirt")
	unit := filepath.Join(root, "etc/systemd/system/nodevirt.service")
	cfg := filepath.Join(root, "etc/nodevirt/config.yaml")
	args := []string{"--root", root, "--source", "https://git.example/vms.git", "--branch", "main", "--interval", "30s"}

	rep := installJSON(t, args...)
	st := states(rep)
	if !rep.Changed || len(rep.Files) != 3 || st[bin] != "created" || st[unit] != "created" || st[cfg] != "created" {
		t.Fatalf("first install: %+v", rep)
	}
	for p, want := range map[string]os.FileMode{bin: 0o755, unit: 0o644, cfg: 0o600, filepath.Dir(cfg): 0o755, filepath.Dir(unit): 0o755} {
		if got := mode(t, p); got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
	self, _ := os.Executable()
	if a, b := mode(t, self), mode(t, bin); a&0o100 == 0 || b != 0o755 {
		t.Errorf("binary modes %o %o", a, b)
	}
	selfBytes, _ := os.ReadFile(self)
	binBytes, _ := os.ReadFile(bin)
	if len(binBytes) == 0 || string(selfBytes) != string(binBytes) {
		t.Errorf("the installed binary is not this one (%d vs %d bytes)", len(binBytes), len(selfBytes))
	}
	text, _ := os.ReadFile(cfg)
	for _, want := range []string{"# Every flag of `nodevirt run` may be set here", "\nbranch: main\n", "\ninterval: 30s\n", "\nsource: https://git.example/vms.git\n", "\nlog-format: json\n"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("config lacks %q:\n%s", want, text)
		}
	}
	for _, not := range []string{"root:", "output:", "state:", "config:"} {
		if strings.Contains(string(text), "\n"+not) {
			t.Errorf("config holds %q, which was not given as a setting:\n%s", not, text)
		}
	}

	rep = installJSON(t, args...)
	if rep.Changed {
		t.Fatalf("second install changed something: %+v", rep)
	}
	for p, s := range states(rep) {
		if s != "unchanged" {
			t.Errorf("second install: %s %s", p, s)
		}
	}

	// Other settings, no --force: the config stays and install says so.
	other := []string{"--root", root, "--source", "https://git.example/vms.git", "--branch", "dev"}
	rep = installJSON(t, other...)
	if rep.Changed || len(rep.Files) != 3 || !strings.Contains(rep.Files[2].Note, "--force") {
		t.Fatalf("install over a different config: %+v", rep)
	}
	if now, _ := os.ReadFile(cfg); string(now) != string(text) {
		t.Fatalf("config overwritten without --force:\n%s", now)
	}

	rep = installJSON(t, append(other, "--force")...)
	st = states(rep)
	if !rep.Changed || st[cfg] != "updated" || st[cfg+".bak"] != "created" || st[bin] != "unchanged" {
		t.Fatalf("install --force: %+v", rep)
	}
	if bak, _ := os.ReadFile(cfg + ".bak"); string(bak) != string(text) || mode(t, cfg+".bak") != 0o600 {
		t.Fatalf("config.yaml.bak is not the old config:\n%s", bak)
	}
	if now, _ := os.ReadFile(cfg); !strings.Contains(string(now), "\nbranch: dev\n") || strings.Contains(string(now), "interval") {
		t.Fatalf("config after --force:\n%s", now)
	}

	// A broken config is no obstacle to replacing it: install never reads it.
	if err := os.WriteFile(cfg, []byte("sorce: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(configEnv, cfg)
	rep = installJSON(t, append(other, "--force")...)
	if st := states(rep); st[cfg] != "updated" || st[cfg+".bak"] != "updated" {
		t.Fatalf("install --force over a broken config: %+v", rep)
	}
}

// The config install writes, read back by config show, gives the settings
// install was given, each from the file.
func TestInstall_configReadsBack(t *testing.T) {
	root := t.TempDir()
	given := map[string]any{
		"source":            "https://git.example/vms.git",
		"branch":            "main",
		"interval":          "30s",
		"self-heal":         "false",
		"prune-guard-share": "0.25",
		"allowed-host-dirs": []any{"/srv/images", "/srv/disks"},
		"allowed-root":      []any{"/srv/pv", "/srv/pv2"},
		"log-format":        "text",
		"path":              "",
	}
	installJSON(t, "--root", root, "--source", "https://git.example/vms.git", "--branch", "main", "--interval", "30s",
		"--self-heal=false", "--prune-guard-share", "0.25", "--allowed-host-dirs", "/srv/images,/srv/disks",
		"--allowed-root", "/srv/pv", "--allowed-root", "/srv/pv2", "--log-format", "text", "--path", "")
	cfg := filepath.Join(root, "etc/nodevirt/config.yaml")
	out, err := executeRoot(t, "--config", cfg, "config", "show", "-o", "json")
	var rep configReport
	if err == nil {
		err = json.Unmarshal([]byte(out), &rep)
	}
	if err != nil || rep.File != cfg {
		t.Fatalf("config show read %q: %v\n%s", rep.File, err, out)
	}
	fromConfig := 0
	for _, set := range rep.Settings {
		want, ok := given[set.Name]
		if !ok {
			if set.Source != "default" && set.Name != "output" {
				t.Errorf("%s = %v from %s, want its default", set.Name, set.Value, set.Source)
			}
			continue
		}
		fromConfig++
		if set.Source != "config" || !jsonEqual(t, set.Value, want) {
			t.Errorf("%s = %v from %s, want %v from config", set.Name, set.Value, set.Source, want)
		}
	}
	if fromConfig != len(given) {
		t.Errorf("%d of %d settings came back: %+v", fromConfig, len(given), rep.Settings)
	}
}

// The unit install writes is the packaged one and systemd accepts it, with
// the binary install put where ExecStart says.
func TestInstall_unitVerifies(t *testing.T) {
	root := t.TempDir()
	installJSON(t, "--root", root, "--source", "https://git.example/vms.git")
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/nodevirt.service"))
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile("../../packaging/nodevirt.service")
	if err != nil {
		t.Fatal(err)
	}
	if string(unit) != string(shipped) {
		t.Fatal("the installed unit is not packaging/nodevirt.service")
	}
	if !strings.Contains(string(unit), "\nExecStart=/usr/local/bin/nodevirt run --config /etc/nodevirt/config.yaml ") {
		t.Fatalf("ExecStart does not read the config file:\n%s", unit)
	}
	testenv.VerifyUnit(t, unit, filepath.Join(root, "usr/local/bin/nodevirt"))
}

// --now starts the service of this host only: with another root it is
// refused before anything is written.
func TestInstall_nowOnlyForTheHost(t *testing.T) {
	root := t.TempDir()
	out, errOut, code := run(t, "install", "--root", root, "--now", "--source", "https://git.example/vms.git")
	if code != 1 || !strings.Contains(errOut, "--now starts the service on this host; with --root "+root) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("--now refused but %d entries written under the root", len(entries))
	}
}
