package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/nodevirt/nodevirt/internal/token"
)

func TestTokenCommands(t *testing.T) {
	state := t.TempDir()
	tok := func(args ...string) (string, string, int) {
		t.Helper()
		return run(t, append([]string{"--state", state, "token"}, args...)...)
	}
	// create prints the secret alone, and says on stderr it is shown once.
	out, errOut, code := tok("create", "--name", "ci", "--ttl", "2h")
	secret := strings.TrimSuffix(out, "\n")
	if code != 0 || strings.Contains(secret, "\n") || !strings.HasPrefix(secret, "nvt_") || !strings.Contains(errOut, "shown only this once") {
		t.Fatalf("create: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	store, err := token.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := store.Verify(secret)
	if err != nil || ci.Name != "ci" || ci.Expires.Sub(ci.Created).Hours() != 2 {
		t.Fatalf("the printed secret: %+v, %v", ci, err)
	}

	out, errOut, code = tok("-o", "json", "create")
	var created struct {
		Changed bool   `json:"changed"`
		Token   string `json:"token"`
		ID      string `json:"id"`
		Name    string `json:"name"`
		Expires string `json:"expires"`
	}
	if err := json.Unmarshal([]byte(out), &created); code != 0 || err != nil || !created.Changed || created.Name != "token-"+created.ID || created.Expires == "" {
		t.Fatalf("create -o json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if info, err := store.Verify(created.Token); err != nil || info.ID != created.ID || info.Expires.Sub(info.Created).Hours() != 24 {
		t.Errorf("the JSON secret: %+v, %v (want the default 24h)", info, err)
	}

	out, _, code = tok("list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "ID NAME CREATED EXPIRES STATUS" ||
		!strings.HasPrefix(lines[1], ci.ID+"  ") || !strings.HasSuffix(lines[1], "active") || !strings.HasPrefix(lines[2], created.ID) {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	out, _, code = tok("-o", "yaml", "list")
	var list []token.Info
	if err := yaml.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 2 || list[0].ID != ci.ID {
		t.Fatalf("list -o yaml: exit %d, %v\n%s", code, err, out)
	}
	for _, s := range []string{secret, created.Token} {
		if mac := s[strings.LastIndex(s, ".")+1:]; strings.Contains(out, mac) {
			t.Error("list shows a secret")
		}
	}

	// revoke by name reports a change once, then none.
	var revoked struct {
		Changed bool         `json:"changed"`
		Tokens  []token.Info `json:"tokens"`
	}
	for i, want := range []bool{true, false} {
		out, errOut, code = tok("-o", "json", "revoke", "ci")
		if err := json.Unmarshal([]byte(out), &revoked); code != 0 || err != nil || revoked.Changed != want ||
			len(revoked.Tokens) != 1 || revoked.Tokens[0].ID != ci.ID || revoked.Tokens[0].Revoked == nil {
			t.Fatalf("revoke #%d: exit %d, %v, want changed %v\n%s%s", i+1, code, err, want, out, errOut)
		}
	}
	if _, err := store.Verify(secret); !errors.Is(err, token.ErrRevoked) {
		t.Errorf("revoked secret: %v", err)
	}
	out, _, _ = tok("list")
	if !strings.Contains(out, "revoked") {
		t.Errorf("list after revoke:\n%s", out)
	}
	out, _, code = tok("revoke", created.ID)
	if code != 0 || !strings.Contains(out, created.ID) || !strings.Contains(out, "revoked") {
		t.Errorf("revoke by id: exit %d\n%s", code, out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"revoke", "nope"}, `"nope"`},
		{[]string{"create", "--ttl", "9000h"}, "--ttl 9000h0m0s: longer than a year"},
		{[]string{"create", "--ttl", "0s"}, "--ttl 0s: want a positive duration"},
		{[]string{"create", "--name", "Not_A_Label"}, `--name: token name "Not_A_Label"`},
		{[]string{"revoke"}, "accepts 1 arg"},
	} {
		if out, errOut, code := tok(c.args...); code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("token %v: exit %d, want 1 and %q\n%s%s", c.args, code, c.want, out, errOut)
		}
	}
	if list, _ := store.List(); len(list) != 2 {
		t.Errorf("refused creates left records: %+v", list)
	}
}
