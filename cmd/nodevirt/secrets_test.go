package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sopsVM = `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: guest, namespace: vms}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          disks: [{name: seed, disk: {bus: virtio}}, {name: creds, disk: {}}]
      volumes:
      - name: seed
        cloudInitNoCloud: {secretRef: {name: guest-creds}}
      - name: creds
        secret: {secretName: guest-creds}
`

// A SOPS-encrypted Secret in the repository (written by sops itself) is
// decrypted with --sops-age-key-file and used by a VM; nothing validate,
// plan or render print carries its values. Without the key the Secret is
// one error saying which flag is missing, and the VM names the Secret.
func TestSecrets_sopsSecretNeverPrinted(t *testing.T) {
	enc, err := os.ReadFile(filepath.Join("..", "..", "internal", "secrets", "testdata", "secret.sops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "secret.yaml"), string(enc))
	writeFile(t, filepath.Join(src, "vm.yaml"), sopsVM)
	key := filepath.Join("..", "..", "internal", "secrets", "testdata", "age.agekey")
	// The Secret's values in clear and as written in data (base64).
	values := []string{"hunter2", "I2Nsb3VkLWNvbmZpZwpwYXNzd29yZDogaHVudGVyMgpjaHBhc3N3ZDogeyBleHBpcmU6IEZhbHNlIH0K", "test@example"}
	common := []string{"--source", src, "--node", "n1", "--libvirt", "test:///default", "--domain-type", "qemu", "--sops-age-key-file", key}
	for _, args := range [][]string{
		{"validate"},
		{"plan"},
		{"plan", "-o", "json"},
		{"render", "domain", "guest", "--namespace", "vms"},
	} {
		out, errOut, code := run(t, append(args, common...)...)
		if code != 0 {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		for _, v := range values {
			if strings.Contains(out+errOut, v) {
				t.Errorf("%v prints the Secret's value %q:\n%s%s", args, v, out, errOut)
			}
		}
	}
	out, errOut, code := run(t, "validate", "--source", src, "--node", "n1", "--sops-age-key-file", filepath.Join(t.TempDir(), "none.agekey"))
	all := out + errOut
	if code == 0 || !strings.Contains(all, "Secret vms/guest-creds") || !strings.Contains(all, "none.agekey") ||
		!strings.Contains(all, "spec.template.spec.volumes[0].cloudInitNoCloud.secretRef") {
		t.Errorf("validate without the key: exit %d\n%s", code, all)
	}
}
