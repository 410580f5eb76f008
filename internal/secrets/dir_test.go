package secrets

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestDir(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "ns", "creds")
	if err := os.MkdirAll(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"accessKeyId": "user", "secretKey": "pass", "..data": "ignored"} {
		if err := os.WriteFile(filepath.Join(creds, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Dir{Dir: dir}.Read("ns", "creds")
	if err != nil || string(got["accessKeyId"]) != "user" || string(got["secretKey"]) != "pass" || len(got) != 2 {
		t.Fatalf("Read = %v, %v", got, err)
	}
	if _, err := (Dir{Dir: dir}).Read("ns", "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := (Dir{Dir: dir}).Read("ns", "../etc"); err == nil {
		t.Fatal("path traversal accepted")
	}
}
