//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A disk that fills during an import: apply fails naming the reason, the
// partial files are removed and nothing else on that file system or under
// the root changes.
func TestFaults_diskFullDuringImport(t *testing.T) {
	sw := newStorageWorld(t)
	hp := filepath.Join(sw.hostRoot, "var/hpvolumes")
	if err := os.MkdirAll(hp, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "nodevirt-e2e-full", hp).CombinedOutput(); err != nil {
		missingPrecondition(t, "cannot mount a tmpfs for the full disk: "+strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", hp).Run() })
	// Bystanders: a file on the small file system and one beside it.
	keep := map[string][]byte{
		filepath.Join(hp, "other-volume/disk.img"): bytes.Repeat([]byte("keep me "), 1<<16),
		filepath.Join(sw.hostRoot, "srv/data.txt"): []byte("unrelated data\n"),
	}
	for p, b := range keep {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := newImageHost(t)
	img := make([]byte, 24<<20) // does not compress, does not fit
	_, _ = rand.Read(img)
	dv := "full-" + randHex(3)
	sw.commit("disk full", map[string]string{
		"classes.yaml": storageClasses + sw.caConfigMap(h),
		"dv.yaml":      httpDV(dv, h.put("big.raw", img), "64Mi"),
	})
	out, errOut, err := sw.nodevirt("--secrets-dir", sw.secrets, "--node", storageNode, "apply", "--timeout", "3m")
	if err == nil {
		t.Fatalf("apply must fail when the disk fills:\n%s\n%s", out, errOut)
	}
	if !strings.Contains(errOut, "import "+sw.ns+"/"+dv+" failed") || !strings.Contains(errOut, "no space left on device") {
		t.Fatalf("apply must name the import and the reason:\n%s\n%s", out, errOut)
	}
	// Only the claim's (empty) volume directory is new; no partial file.
	err = filepath.Walk(hp, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		if _, ok := keep[p]; !ok {
			t.Errorf("left behind on the full file system: %s (%d bytes)", p, info.Size())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range keep {
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s changed (%v)", p, err)
		}
	}
}
