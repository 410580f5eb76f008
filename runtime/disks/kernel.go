package disks

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Names of a kernel boot directory's files: the extracted kernel and
// initrd (the converter's domain.KernelFile and domain.InitrdFile), and the
// digest of the image they came from.
const (
	kernelFile  = "kernel"
	initrdFile  = "initrd"
	digestStamp = "image-digest"
)

// dockerArchive prefixes an image archive written by docker or podman save,
// as in skopeo's and podman's transport names.
const dockerArchive = "docker-archive:"

// EnsureKernelBoot extracts the kernel (kernelPath) and initrd (initrdPath)
// of a kernel boot container image into dir as "kernel" and "initrd",
// where the domain's <os><kernel>/<initrd> point, as KubeVirt's init
// container copies them out of the image. Empty paths are skipped. ref is
// an OCI image layout (oci:/dir[:tag]) or an image archive of one image
// (docker-archive:/file.tar); a registry reference is ErrRegistryPull. The files are extracted again only when the image's
// digest changed since the last extraction.
func (s *Store) EnsureKernelBoot(ctx context.Context, ref, dir, kernelPath, initrdPath string) error {
	dir, err := s.inBase(dir)
	if err != nil {
		return fmt.Errorf("kernel boot: %w", err)
	}
	var img v1.Image
	switch {
	case strings.HasPrefix(ref, "oci:"):
		layoutDir, tag := splitOCIRef(ref)
		if !filepath.IsAbs(layoutDir) {
			return fmt.Errorf("kernel boot image %s: layout directory %q is not an absolute path", ref, layoutDir)
		}
		if img, err = selectImage(layoutDir, tag); err != nil {
			return fmt.Errorf("kernel boot image %s: %w", ref, err)
		}
	case strings.HasPrefix(ref, dockerArchive):
		// `docker save` / `podman save` output holding one image.
		file := strings.TrimPrefix(ref, dockerArchive)
		if !filepath.IsAbs(file) {
			return fmt.Errorf("kernel boot image %s: archive %q is not an absolute path", ref, file)
		}
		if img, err = tarball.ImageFromPath(file, nil); err != nil {
			return fmt.Errorf("kernel boot image %s: %w", ref, err)
		}
	case strings.HasPrefix(ref, "file://"), strings.HasPrefix(ref, "/"):
		return fmt.Errorf("kernel boot image %s: a disk file is not a container image; use oci:/abs/layout-dir[:tag]", ref)
	default:
		return kernelRegistryError{ref: ref}
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("kernel boot image %s: %w", ref, err)
	}
	want := map[string]string{} // path in the image → file in dir
	if kernelPath != "" {
		want[path.Clean(kernelPath)] = kernelFile
	}
	if initrdPath != "" {
		want[path.Clean(initrdPath)] = initrdFile
	}
	if s.extracted(dir, digest.String(), want) {
		return nil
	}
	if err := extractFiles(ctx, img, dir, want); err != nil {
		return fmt.Errorf("kernel boot image %s: %w", ref, err)
	}
	// The stamp last: a crash before it leaves files that are extracted
	// again next time.
	return writeAtomic(filepath.Join(dir, digestStamp), func(tmp string) error {
		return os.WriteFile(tmp, []byte(digest.String()+"\n"), 0o600)
	})
}

// kernelRegistryError is ErrRegistryPull for a kernel boot image, whose
// advice differs: a kernel comes from an image layout, never a disk file.
type kernelRegistryError struct{ ref string }

func (e kernelRegistryError) Error() string {
	return "kernel boot image " + e.ref + ": pulling images from a registry is not supported yet; " +
		"copy the image into an OCI layout on the host (skopeo copy docker://IMAGE oci:/DIR:TAG) and use oci:/DIR:TAG, or save it (docker save -o FILE IMAGE) and use docker-archive:FILE"
}

func (e kernelRegistryError) Is(target error) bool { return target == ErrRegistryPull }

// extracted reports whether dir holds want's files from the image digest.
func (s *Store) extracted(dir, digest string, want map[string]string) bool {
	b, err := os.ReadFile(filepath.Join(dir, digestStamp))
	if err != nil || strings.TrimSpace(string(b)) != digest {
		return false
	}
	for _, name := range want {
		if !s.Exists(filepath.Join(dir, name)) {
			return false
		}
	}
	return true
}

// extractFiles copies the regular files want names out of img's flattened
// filesystem (whiteouts applied) into dir.
func extractFiles(ctx context.Context, img v1.Image, dir string, want map[string]string) error {
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	found := map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read image filesystem: %w", err)
		}
		name := path.Clean("/" + hdr.Name)
		file, ok := want[name]
		if !ok {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
		case tar.TypeSymlink, tar.TypeLink:
			return fmt.Errorf("%s is a link to %s in the image; name the file it links to", name, hdr.Linkname)
		default:
			return fmt.Errorf("%s is not a regular file in the image", name)
		}
		err = writeAtomic(filepath.Join(dir, file), func(tmp string) error {
			out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, &ctxReader{ctx: ctx, r: tr}); err != nil {
				_ = out.Close()
				return err
			}
			return out.Close()
		})
		if err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		found[name] = true
	}
	missing := []string{}
	for p := range want {
		if !found[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("image has no file %s", strings.Join(missing, " nor "))
	}
	return nil
}
