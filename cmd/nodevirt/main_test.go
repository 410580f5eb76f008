package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// run executes the CLI in-process and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{"--state", t.TempDir(), "--root", t.TempDir(), "--log-level", "error"}, args...))
	err := cmd.Execute()
	code := 0
	var ec exitCode
	switch {
	case errors.As(err, &ec):
		code = int(ec)
	case err != nil:
		errOut.WriteString(err.Error())
		code = 1
	}
	return out.String(), errOut.String(), code
}

// Every example passes validate --strict (what `make demo` applies).
func TestValidate_examplesStrict(t *testing.T) {
	out, errOut, code := run(t, "validate", "--strict", "--source", "../../examples")
	if code != 0 {
		t.Fatalf("examples must validate strictly (exit %d):\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, " files are valid (") {
		t.Fatalf("unexpected summary: %q", out)
	}
}

// Every error of the source at once, each with file:line, object and field path.
func TestValidate_reportsEveryErrorWithPosition(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "vms/bad.yaml", `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: bad, namespace: default}
spec:
  runStrategy: Sometimes
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          disks:
            - name: a
              disk: {bus: floppy}
      volumes:
        - {name: a, emptyDisk: {capacity: 1Gi}}
`)
	write(t, dir, "vms/typo.yaml", `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: typo}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memroy: {guest: 64Mi}
`)
	out, errOut, code := run(t, "validate", "--source", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"vms/bad.yaml:5:3: VirtualMachine default/bad: spec.runStrategy: runStrategy must be one of",
		"vms/bad.yaml:13:22: VirtualMachine default/bad: spec.template.spec.domain.devices.disks[0].disk.bus: bus must be one of",
		"vms/typo.yaml:9:9: VirtualMachine default/typo: spec.template.spec.domain.memroy:",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, errOut)
		}
	}
}

// render domain prints XML that libvirt's own schema accepts.
func TestRenderDomain_passesVirtXMLValidate(t *testing.T) {
	out, errOut, code := run(t, "render", "domain", "--source", "../../examples", "web")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "<name>default_web</name>") || !strings.Contains(out, "https://nodevirt.io/xmlns/domain/1") {
		t.Fatalf("unexpected XML:\n%s", out)
	}
	bin, err := exec.LookPath("virt-xml-validate")
	if err != nil {
		t.Fatal("virt-xml-validate is not installed; `make test` installs libvirt-clients")
	}
	f := filepath.Join(t.TempDir(), "web.xml")
	if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(bin, f, "domain").CombinedOutput(); err != nil {
		t.Fatalf("virt-xml-validate: %v\n%s", err, msg)
	}
	if _, errOut, code := run(t, "render", "domain", "--source", "../../examples", "nope"); code == 0 || !strings.Contains(errOut, "no VirtualMachine default/nope") {
		t.Fatalf("unknown VM: exit %d, %q", code, errOut)
	}
}

// The demo (make demo) goes through plan, apply, drift and heal on the test driver.
func TestDemo(t *testing.T) {
	out, errOut, code := run(t, "demo", "--source", "../../examples")
	if code != 0 {
		t.Fatalf("demo exit %d:\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"create  VirtualMachine default/web", "DRIFTED", "vcpu: host has 3, source wants", "is not nodevirt's", "No drift: 4 domains match the source."} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "DRIFTED"), strings.LastIndex(out, "No drift"); i < 0 || j < i {
		t.Errorf("drift must be reported before it is healed")
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
