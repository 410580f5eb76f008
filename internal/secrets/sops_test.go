package secrets

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"go.yaml.in/yaml/v3"
)

func loadDoc(t *testing.T, name string) *yaml.Node {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Content[0]
}

func decoded(t *testing.T, root *yaml.Node) map[string]any {
	t.Helper()
	var m map[string]any
	if err := root.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// Documents sops itself encrypted decrypt to what was encrypted, values
// typed as sops typed them, metadata gone.
func TestDecrypt_sopsFiles(t *testing.T) {
	d := &Decryptor{KeyFile: filepath.Join("testdata", "age.agekey")}

	root := loadDoc(t, "secret.sops.yaml")
	if !IsEncrypted(root) {
		t.Fatal("IsEncrypted = false for a sops document")
	}
	if err := d.Decrypt(root); err != nil {
		t.Fatal(err)
	}
	if IsEncrypted(root) {
		t.Error("the sops metadata is still there")
	}
	got := decoded(t, root)
	data := got["data"].(map[string]any)
	if data["userdata"] != "I2Nsb3VkLWNvbmZpZwpwYXNzd29yZDogaHVudGVyMgpjaHBhc3N3ZDogeyBleHBpcmU6IEZhbHNlIH0K" {
		t.Errorf("data.userdata = %q", data["userdata"])
	}
	sd := got["stringData"].(map[string]any)
	if !strings.HasPrefix(sd["key1"].(string), "ssh-ed25519 AAAA") || sd["count"] != "3" || sd["nested-list-ok"] != "yes" {
		t.Errorf("stringData = %v", sd)
	}
	if got["kind"] != "Secret" || got["metadata"].(map[string]any)["name"] != "guest-creds" {
		t.Errorf("clear fields changed: %v", got)
	}

	typed := loadDoc(t, "typed.sops.yaml")
	if err := d.Decrypt(typed); err != nil {
		t.Fatal(err)
	}
	tm := decoded(t, typed)
	s := tm["settings"].(map[string]any)
	if s["enabled"] != true || s["ratio"] != 1.5 || s["count"] != 42 || s["empty"] != "" || s["nothing"] != nil {
		t.Errorf("settings = %#v", s)
	}
	if l := s["list"].([]any); len(l) != 2 || l[0] != "one" || l[1] != 2 {
		t.Errorf("settings.list = %#v", l)
	}
	if dm := tm["data"].(map[string]any); dm["text"] != "hello" || dm["port_unencrypted"] != 8080 {
		t.Errorf("data = %#v", dm)
	}
}

// What a decryption refuses, it names without printing a value.
func TestDecrypt_refusals(t *testing.T) {
	good := &Decryptor{KeyFile: filepath.Join("testdata", "age.agekey")}

	// A clear value edited after encryption breaks the MAC.
	root := loadDoc(t, "secret.sops.yaml")
	root.Content[5].Content[1].Value = "someone-else" // metadata.name
	if err := good.Decrypt(root); !errors.Is(err, ErrSOPS) || !strings.Contains(err.Error(), "MAC does not match") {
		t.Errorf("tampered clear value: %v", err)
	}

	// An encrypted value moved to another key fails its authentication.
	root = loadDoc(t, "secret.sops.yaml")
	sd := mapValue(root, "stringData")
	sd.Content[1].Value, sd.Content[3].Value = sd.Content[3].Value, sd.Content[1].Value
	err := good.Decrypt(root)
	if !errors.Is(err, ErrSOPS) || !strings.Contains(err.Error(), "stringData.key1") {
		t.Errorf("swapped values: %v", err)
	}

	// Encrypted for a key the file does not hold.
	err = good.Decrypt(loadDoc(t, "other.sops.yaml"))
	if !errors.Is(err, ErrSOPS) || !strings.Contains(err.Error(), "no identity of testdata/age.agekey") {
		t.Errorf("foreign recipient: %v", err)
	}

	// No key file given, or one that does not exist.
	if err := (&Decryptor{}).Decrypt(loadDoc(t, "secret.sops.yaml")); !errors.Is(err, ErrSOPS) || !strings.Contains(err.Error(), "--sops-age-key-file") {
		t.Errorf("no key file: %v", err)
	}
	missing := &Decryptor{KeyFile: filepath.Join(t.TempDir(), "absent.agekey")}
	if err := missing.Decrypt(loadDoc(t, "secret.sops.yaml")); !errors.Is(err, ErrSOPS) || !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "no such file") {
		t.Errorf("absent key file: %v", err)
	}

	// A key made here opens nothing sealed for another.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	kf := filepath.Join(t.TempDir(), "keys.agekey")
	if err := os.WriteFile(kf, []byte("# created: test\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (&Decryptor{KeyFile: kf}).Decrypt(loadDoc(t, "secret.sops.yaml")); !errors.Is(err, ErrSOPS) {
		t.Errorf("unrelated key: %v", err)
	}
}
