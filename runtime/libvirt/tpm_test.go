package virt

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSwtpmDirFor(t *testing.T) {
	for uri, want := range map[string]string{
		"qemu:///system":            "/var/lib/libvirt/swtpm",
		"qemu:///session":           "",
		"qemu+ssh://host/system":    "",
		"qemu://host/system":        "",
		"test:///default":           "",
		"test:///tmp/node.xml":      "",
		"qemu+unix:///system":       "",
		"::not a uri":               "",
		"qemu:///system?socket=/x":  "/var/lib/libvirt/swtpm",
		"qemu:///embed?root=/x/y/z": "",
	} {
		if got := swtpmDirFor(uri); got != want {
			t.Errorf("swtpmDirFor(%q) = %q, want %q", uri, got, want)
		}
	}
}

// A domain booting from shut off starts with an empty TPM unless the TPM
// is persistent; the state of other domains is left alone.
func TestDriver_Start_resetsNonPersistentTPM(t *testing.T) {
	const uuidC = "5b0f1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
	const off = "<test:runstate>5</test:runstate>"
	tpm := func(attrs string) string {
		return off + `<devices><tpm model="tpm-tis"><backend type="emulator" version="2.0"` + attrs + `/></tpm></devices>`
	}
	d := openTest(t,
		testDomain("fresh", uuidA, tpm("")),
		testDomain("kept", uuidB, tpm(` persistent_state="yes"`)),
		testDomain("none", uuidC, off),
	)
	d.swtpmDir = t.TempDir()
	state := map[string]string{}
	for name, uuid := range map[string]string{"fresh": uuidA, "kept": uuidB, "none": uuidC} {
		state[name] = filepath.Join(d.TPMStateDir(uuid), "tpm2", "tpm2-00.permall")
		if err := os.MkdirAll(filepath.Dir(state[name]), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(state[name], []byte("nv"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := d.Start(t.Context(), name); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
	}
	if _, err := os.Stat(d.TPMStateDir(uuidA)); !os.IsNotExist(err) {
		t.Errorf("non-persistent TPM state survived the start: %v", err)
	}
	for _, name := range []string{"kept", "none"} {
		if b, err := os.ReadFile(state[name]); err != nil || string(b) != "nv" {
			t.Errorf("%s: TPM state changed by the start: %q, %v", name, b, err)
		}
	}

	// Start on a running domain is a no-op: its TPM is in use.
	if err := os.MkdirAll(d.TPMStateDir(uuidA), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context(), "fresh"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.TPMStateDir(uuidA)); err != nil {
		t.Errorf("Start of a running domain touched its TPM state: %v", err)
	}
}
