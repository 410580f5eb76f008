package disks

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestStore_EnsureKernelBoot(t *testing.T) {
	s, root := newStore(t)
	ctx := t.Context()
	layoutDir := filepath.Join(root, "layout")
	kernel, initrd := []byte("MZ kernel v1"), []byte("initramfs v1")
	// KubeVirt's alpine-ext-kernel-boot-demo puts them under /boot.
	ociLayout(t, layoutDir, "v1", map[string][]byte{"boot/vmlinuz-virt": kernel, "boot/initramfs-virt": initrd})
	dir := filepath.Join(root, "disks", "default", "vmi", "kernel-boot")
	ref := "oci:" + layoutDir + ":v1"

	if err := s.EnsureKernelBoot(ctx, ref, dir, "/boot/vmlinuz-virt", "/boot/initramfs-virt"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"kernel": kernel, "initrd": initrd} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	before := idOf(t, filepath.Join(dir, "kernel"))
	if err := s.EnsureKernelBoot(ctx, ref, dir, "/boot/vmlinuz-virt", "/boot/initramfs-virt"); err != nil {
		t.Fatal(err)
	}
	if idOf(t, filepath.Join(dir, "kernel")) != before {
		t.Error("the same image was extracted again")
	}
	assertNoTempFiles(t, dir)

	// A new image under the same tag: its digest differs, so the files are replaced.
	if err := os.RemoveAll(layoutDir); err != nil {
		t.Fatal(err)
	}
	ociLayout(t, layoutDir, "v1", map[string][]byte{"boot/vmlinuz-virt": []byte("MZ kernel v2"), "boot/initramfs-virt": initrd})
	if err := s.EnsureKernelBoot(ctx, ref, dir, "/boot/vmlinuz-virt", ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "kernel")); string(got) != "MZ kernel v2" {
		t.Errorf("kernel after an image change = %q, want the new one", got)
	}
}

func TestStore_EnsureKernelBoot_errors(t *testing.T) {
	s, root := newStore(t)
	ctx := t.Context()
	layoutDir := filepath.Join(root, "layout")
	ociLayout(t, layoutDir, "", map[string][]byte{"boot/vmlinuz": []byte("k")})
	dir := filepath.Join(root, "disks", "default", "vmi", "kernel-boot")
	for _, tc := range []struct {
		name, ref, kernel, initrd, want string
		is                              error
	}{
		{name: "registry", ref: "quay.io/kubevirt/alpine-ext-kernel-boot-demo", kernel: "/boot/vmlinuz", is: ErrRegistryPull, want: "use oci:/DIR:TAG"},
		{name: "missing files named", ref: "oci:" + layoutDir, kernel: "/boot/vmlinuz-virt", initrd: "/boot/initrd", want: "image has no file /boot/initrd nor /boot/vmlinuz-virt"},
		{name: "a disk file", ref: "file:///srv/disk.qcow2", kernel: "/boot/vmlinuz", want: "a disk file is not a container image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.EnsureKernelBoot(ctx, tc.ref, dir, tc.kernel, tc.initrd)
			switch {
			case err == nil:
				t.Fatal("no error")
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Errorf("err = %v, want %v", err, tc.is)
			case !strings.Contains(err.Error(), tc.want):
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if err := s.EnsureKernelBoot(ctx, "oci:"+layoutDir, filepath.Join(root, "elsewhere"), "/boot/vmlinuz", ""); err == nil {
		t.Error("a directory outside the store was written")
	}
}

// An image saved by docker or podman (docker-archive:) works as a layout does.
func TestStore_EnsureKernelBoot_dockerArchive(t *testing.T) {
	s, root := newStore(t)
	layoutDir := filepath.Join(root, "layout")
	ociLayout(t, layoutDir, "v1", map[string][]byte{"boot/vmlinuz": []byte("MZ archived kernel")})
	img, err := selectImage(layoutDir, "v1")
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag("example.com/kernel:v1")
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(root, "kernel.tar")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "disks", "default", "vmi", "kernel-boot")
	if err := s.EnsureKernelBoot(t.Context(), "docker-archive:"+archive, dir, "/boot/vmlinuz", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "kernel")); err != nil || string(got) != "MZ archived kernel" {
		t.Errorf("kernel = %q, %v", got, err)
	}
	if err := s.EnsureKernelBoot(t.Context(), "docker-archive:kernel.tar", dir, "/boot/vmlinuz", ""); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("relative archive: err = %v", err)
	}
}
