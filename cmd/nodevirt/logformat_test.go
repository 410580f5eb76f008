package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// --log-format json writes one JSON object per line, with the level, the
// message and every attribute as fields (what journald and shippers parse).
func TestLogFormat_json(t *testing.T) {
	var buf bytes.Buffer
	o := &options{logLevel: "info", logFormat: "json", logTo: &buf}
	o.logger().Warn("held", "object", "VirtualMachine default/web", "reason", "prune guard")
	o.logger().Debug("not shown at info")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one line, got %q", buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not JSON: %v: %s", err, lines[0])
	}
	if rec["level"] != "WARN" || rec["msg"] != "held" || rec["object"] != "VirtualMachine default/web" || rec["reason"] != "prune guard" {
		t.Fatalf("record: %v", rec)
	}
	buf.Reset()
	o.logFormat = "text"
	o.logger().Info("applied", "took", "3ms")
	if got := buf.String(); !strings.Contains(got, "level=INFO msg=applied took=3ms") {
		t.Fatalf("text: %q", got)
	}
}

// An unknown log format or level is refused before anything runs, naming
// the flag and the choices.
func TestLogFormat_refused(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-format", "yaml", "validate", "--source", "../../examples"}, `--log-format "yaml": want text or json`},
		{[]string{"--log-level", "loud", "validate", "--source", "../../examples"}, `--log-level "loud": want debug, info, warn or error`},
	} {
		out, errOut, code := run(t, c.args...)
		if code != 1 || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q, want %q", c.args, code, out, errOut, c.want)
		}
	}
}
