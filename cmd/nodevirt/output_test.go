package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	"github.com/nodevirt/nodevirt/internal/api"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
)

const schemaBase = "https://nodevirt.io/schema/v1alpha1/"

// schemas compiles docs/schema, each file under its $id, with formats
// (date-time) asserted.
func schemas(t *testing.T) *jsonschema.Compiler {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	files, err := filepath.Glob("../../docs/schema/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no schemas under docs/schema: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := c.AddResource(schemaBase+filepath.Base(f), doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	return c
}

func validateOutput(t *testing.T, c *jsonschema.Compiler, file, format, out string) error {
	t.Helper()
	sch, err := c.Compile(schemaBase + file)
	if err != nil {
		t.Fatalf("compile %s: %v", file, err)
	}
	b := []byte(out)
	if format == "yaml" {
		if b, err = yaml.YAMLToJSON(b); err != nil {
			t.Fatalf("%s: %v\n%s", format, err, out)
		}
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s output: %v\n%s", format, err, out)
	}
	return sch.Validate(inst)
}

// Every report's real output, json and yaml, on a source and host where
// its lists are not empty, matches its schema under docs/schema.
func TestOutput_matchesSchemas(t *testing.T) {
	d, err := virt.Open(t.Context(), "test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	root := fakeHost(t)
	write(t, root, "etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n")
	for _, size := range []string{"2048kB", "1048576kB"} {
		write(t, root, "sys/kernel/mm/hugepages/hugepages-"+size+"/free_hugepages", "2\n")
	}
	src := t.TempDir()
	for _, dir := range []string{"vms", "host", "storage"} {
		files, _ := filepath.Glob("../../examples/" + dir + "/*")
		for _, f := range files {
			if strings.HasSuffix(f, ".md") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			write(t, src, dir+"/"+filepath.Base(f), string(b))
		}
	}
	bad := t.TempDir()
	write(t, bad, "bad.yaml", "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: bad}\nspec:\n  runStrategy: Sometimes\n")
	state := t.TempDir()
	common := []string{"--libvirt", "test:///default", "--root", root, "--state", state, "--node", "n1"}
	c := schemas(t)
	for _, tc := range []struct {
		schema, kind string
		args         []string
	}{
		{"plan.json", "Plan", []string{"--source", src, "plan"}},
		{"drift-report.json", "DriftReport", []string{"--source", src, "drift"}},
		{"validation-report.json", "ValidationReport", []string{"--source", bad, "validate"}},
		{"validation-report.json", "ValidationReport", []string{"--source", src, "validate"}},
		{"node-description.json", "NodeDescription", []string{"--source", src, "node", "describe"}},
		{"storage-description.json", "StorageDescription", []string{"--source", src, "storage", "describe"}},
		{"storage-plan.json", "StoragePlan", []string{"--source", src, "storage", "plan"}},
		{"host-plan.json", "HostPlan", []string{"--source", src, "host", "plan"}},
		{"host-drift-report.json", "HostDriftReport", []string{"--source", src, "host", "drift"}},
		// No agent runs: status opens the state and plans.
		{"node-status.json", "NodeStatus", []string{"--source", src, "status"}},
	} {
		for _, format := range []string{"json", "yaml"} {
			before := time.Now().UTC().Truncate(time.Second)
			out, errOut, code := run(t, append(append(common, "-o", format), tc.args...)...)
			if code != 0 && tc.kind != "ValidationReport" {
				t.Fatalf("%v -o %s: exit %d\n%s%s", tc.args, format, code, out, errOut)
			}
			if err := validateOutput(t, c, tc.schema, format, out); err != nil {
				t.Errorf("%v -o %s does not match docs/schema/%s:\n%v\n%s", tc.args, format, tc.schema, err, out)
			}
			m := regexp.MustCompile(`"?timestamp"?: "?([0-9TZ:-]+)"?`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("%v -o %s: no timestamp\n%s", tc.args, format, out)
			}
			if at, err := time.Parse(time.RFC3339, m[1]); err != nil || at.Before(before) || at.Location() != time.UTC {
				t.Errorf("%v -o %s: timestamp %s is not now in UTC (%v)", tc.args, format, m[1], err)
			}
			// KubeVirt's and Kubernetes' own objects print an unset time as
			// null (lastProbeTime: null), as kubectl shows them; nodevirt's
			// own fields are checked by the schema.
			if strings.Contains(out, "null") && tc.kind != "NodeStatus" {
				t.Errorf("%v -o %s prints null:\n%s", tc.args, format, out)
			}
			if !strings.Contains(out, "kind: "+tc.kind) && !strings.Contains(out, `"kind": "`+tc.kind+`"`) {
				t.Errorf("%v -o %s: kind is not %s:\n%s", tc.args, format, tc.kind, out)
			}
		}
	}
	if out, _, _ := run(t, "--source", src, "-o", "json", "validate"); validateOutput(t, c, "drift-report.json", "json", out) == nil {
		t.Error("a validation report must not pass as a drift report: the schemas check nothing")
	}
	out, _, _ := run(t, "--source", src, "-o", "json", "validate")
	if err := validateOutput(t, c, "validation-report.json", "json", strings.Replace(out, `"files"`, `"unknownField": 1, "files"`, 1)); err == nil {
		t.Error("a field the schema does not name must fail it, or the schema rots silently")
	}
}

// An empty plan and report print [] for their lists, not null.
func TestOutput_emptyListsAreArrays(t *testing.T) {
	d, err := virt.Open(t.Context(), "test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	src := t.TempDir()
	write(t, src, "README.md", "nothing here\n")
	for _, args := range [][]string{{"plan"}, {"drift"}, {"validate"}} {
		out, errOut, code := run(t, append([]string{"--libvirt", "test:///default", "--source", src, "-o", "json"}, args...)...)
		if code != 0 || strings.Contains(out, "null") || !strings.Contains(out, "[]") {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
}

// With colour on, the columns of the plan and apply tables line up as
// they do without it: escape codes take no width.
func TestOutput_colourKeepsColumnsAligned(t *testing.T) {
	d, err := virt.Open(t.Context(), "test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	src := t.TempDir()
	b, err := os.ReadFile("../../examples/vms/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write(t, src, "web.yaml", string(b))
	args := []string{"--libvirt", "test:///default", "--source", src, "--root", t.TempDir(), "--state", t.TempDir(), "plan"}
	t.Setenv("NO_COLOR", "1")
	plain, _, _ := run(t, args...)
	t.Setenv("NO_COLOR", "")
	t.Setenv("CLICOLOR_FORCE", "1")
	coloured, _, _ := run(t, args...)
	if !strings.Contains(coloured, "\x1b[32mcreate\x1b[0m") {
		t.Fatalf("CLICOLOR_FORCE must colour the actions:\n%q", coloured)
	}
	if got := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(coloured, ""); got != plain {
		t.Errorf("without its escape codes the coloured table differs from the plain one:\n%s\nplain:\n%s", got, plain)
	}
}

// What a running agent answers matches the schemas too: the status and
// events it serves on its socket, and the result of `reconcile -o json`,
// the one action that works through any agent.
func TestOutput_agentAnswersMatchSchemas(t *testing.T) {
	dir := t.TempDir()
	src, state := filepath.Join(dir, "src"), filepath.Join(dir, "state")
	b, err := os.ReadFile("../../examples/vms/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write(t, src, "vms/web.yaml", string(b))
	common := []string{"--source", src, "--state", state, "--root", filepath.Join(dir, "root"), "--libvirt", "test:///default", "--node", "n1"}
	ctx, cancel := context.WithCancel(t.Context())
	agentCmd := newRootCmd()
	agentCmd.SetArgs(append(common, "--log-level", "error", "run", "--interval", "1h", "--listen", ""))
	agentCmd.SetOut(io.Discard)
	agentCmd.SetErr(io.Discard)
	done := make(chan error, 1)
	go func() { done <- agentCmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run after the stop: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not return after the stop")
		}
	})

	// Ready once the first reconcile ended, as /readyz says.
	var client *api.Client
	deadline := time.Now().Add(60 * time.Second)
	for {
		if client == nil {
			client, _ = api.Local(ctx, filepath.Join(state, api.SocketName))
		}
		if client != nil {
			var ready map[string]string
			if client.Get(ctx, "/readyz", &ready) == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent did not get ready on its socket")
		}
		time.Sleep(50 * time.Millisecond)
	}

	c := schemas(t)
	out, errOut, code := run(t, append(common, "-o", "json", "status")...)
	if code != 0 {
		t.Fatalf("status -o json through the agent: exit %d\n%s%s", code, out, errOut)
	}
	if err := validateOutput(t, c, "node-status.json", "json", out); err != nil {
		t.Errorf("the agent's status does not match docs/schema/node-status.json:\n%v\n%s", err, out)
	}
	for _, bad := range [][2]string{{`"source": {`, `"source": {"extra": 1, `}, {`"printableStatus": "`, `"printableStatus": "Sleeping`}} {
		if err := validateOutput(t, c, "node-status.json", "json", strings.Replace(out, bad[0], bad[1], 1)); err == nil {
			t.Errorf("a status with %s must fail its schema", bad[1])
		}
	}
	if !strings.Contains(out, `"count": 1`) || !strings.Contains(out, `"last": "`) {
		t.Errorf("status did not come from the agent, which reconciled once:\n%s", out)
	}

	var result string
	for _, format := range []string{"json", "yaml"} {
		out, errOut, code = run(t, append(common, "-o", format, "reconcile")...)
		if code != 0 {
			t.Fatalf("reconcile -o %s: exit %d\n%s%s", format, code, out, errOut)
		}
		if err := validateOutput(t, c, "action-result.json", format, out); err != nil {
			t.Errorf("reconcile -o %s does not match docs/schema/action-result.json:\n%v\n%s", format, err, out)
		}
		if format == "json" {
			result = out
		}
	}
	if err := validateOutput(t, c, "action-result.json", "json", strings.Replace(result, `"changed"`, `"done"`, 1)); err == nil {
		t.Error("an action result without changed must fail its schema")
	}
	for _, args := range [][]string{{"suspend", "vm/web"}, {"resume", "vm/web"}, {"suspend"}, {"resume"}, {"stop", "web"}, {"start", "web"}} {
		out, errOut, code = run(t, append(append(common, "-o", "json"), args...)...)
		if code != 0 {
			t.Fatalf("%v -o json: exit %d\n%s%s", args, code, out, errOut)
		}
		if err := validateOutput(t, c, "action-result.json", "json", out); err != nil || !strings.Contains(out, `"changed": true`) {
			t.Errorf("%v -o json does not match docs/schema/action-result.json or changed nothing:\n%v\n%s", args, err, out)
		}
	}

	// The reconcile asked for runs (and ends before the agent is stopped).
	for st, _ := client.Status(ctx); st.Reconcile.Count < 2; st, _ = client.Status(ctx) {
		if time.Now().After(deadline) {
			t.Fatalf("the reconcile asked for did not run: %+v", st.Reconcile)
		}
		time.Sleep(50 * time.Millisecond)
	}
	events, err := client.Raw(ctx, api.Prefix+"/events")
	if err != nil {
		t.Fatal(err)
	}
	if err := validateOutput(t, c, "event-list.json", "json", string(events)); err != nil {
		t.Errorf("the agent's events do not match docs/schema/event-list.json:\n%v\n%s", err, events)
	}
	// The VM's definition and the reconcile asked for are events: the
	// list checked is not empty.
	for _, reason := range []string{`"reason":"Create"`, `"reason":"ReconcileRequested"`} {
		if !strings.Contains(string(events), reason) {
			t.Errorf("events lack %s:\n%s", reason, events)
		}
	}
}
