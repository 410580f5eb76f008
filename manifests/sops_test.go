package manifests_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodevirt/nodevirt/internal/secrets"
	"github.com/nodevirt/nodevirt/manifests"
)

// A Secret sops encrypted (testdata of internal/secrets, written by sops
// itself) is read decrypted, with the lines of the file; without a key,
// or with the wrong one, it is one error on the object and nothing else.
func TestLoad_sopsSecret(t *testing.T) {
	enc, err := os.ReadFile(filepath.Join("..", "internal", "secrets", "testdata", "secret.sops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d := &secrets.Decryptor{KeyFile: filepath.Join("..", "internal", "secrets", "testdata", "age.agekey")}
	set := manifests.Parse("secret.yaml", enc, manifests.Options{Decrypt: d.Decrypt})
	if set.Diags.HasErrors() {
		t.Fatal(set.Diags.Err())
	}
	o := set.Objects[0]
	sec, ok := o.Value.(*corev1.Secret)
	if !ok || !o.Encrypted || !o.Valid {
		t.Fatalf("object = %+v", o)
	}
	if !strings.HasPrefix(string(sec.Data["userdata"]), "#cloud-config\npassword: hunter2") {
		t.Errorf("data.userdata = %q", sec.Data["userdata"])
	}
	if sec.StringData["count"] != "3" || !strings.HasPrefix(sec.StringData["key1"], "ssh-ed25519 ") {
		t.Errorf("stringData = %v", sec.StringData)
	}
	if line, _ := o.Pos("stringData.count"); line != 12 {
		t.Errorf("stringData.count is on line %d, want 12 (the encrypted file's)", line)
	}

	for name, opt := range map[string]manifests.Options{
		"no key":    {},
		"wrong key": {Decrypt: (&secrets.Decryptor{KeyFile: filepath.Join(t.TempDir(), "none.agekey")}).Decrypt},
	} {
		set := manifests.Parse("secret.yaml", enc, opt)
		errs := set.Diags.Errors()
		if len(errs) != 1 || !errors.Is(errs[0], manifests.ErrEncrypted) || errs[0].Path != "sops" || errs[0].Object != "Secret vms/guest-creds" {
			t.Errorf("%s: diagnostics %v, want one error on Secret vms/guest-creds at sops", name, set.Diags)
		}
		if set.Objects[0].Value != nil || set.Objects[0].Valid {
			t.Errorf("%s: an undecrypted Secret has a value", name)
		}
		if strings.Contains(set.Diags.Err().Error(), "ENC[") {
			t.Errorf("%s: the error quotes ciphertext: %v", name, set.Diags.Err())
		}
	}
	if !strings.Contains(manifests.Parse("s.yaml", enc, manifests.Options{}).Diags.Err().Error(), "--sops-age-key-file") {
		t.Error("the no-key error does not say how to give a key")
	}
}
