package disks

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// ErrRegistryPull is returned by ResolveImage for image references that
// would need a registry pull, which is not implemented yet.
var ErrRegistryPull = errors.New("pulling containerDisk images from a registry is not supported yet; " +
	"use file:///abs/path/disk.qcow2 or oci:/abs/layout-dir[:tag]")

// refNameAnnotation is the OCI annotation naming an image inside a layout.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// Disk image formats reported by ResolveImage and DetectFormat.
const (
	FormatQcow2 = "qcow2"
	FormatRaw   = "raw"
	FormatISO   = "iso"
)

// ResolveImage turns a containerDisk image reference into a local file and its
// format:
//   - "file:///abs/disk.qcow2" or "/abs/disk.qcow2": that file, used in place;
//   - "oci:/abs/layout-dir[:tag]": the image in that OCI image layout with ref
//     name tag (or its only image), whose single regular file under /disk/
//     (where KubeVirt's containerDisk convention puts it) is extracted once
//     into the image cache as "<digest algorithm>-<hex>.img", named by the
//     image's manifest digest;
//   - anything else (a registry reference): ErrRegistryPull.
func (s *Store) ResolveImage(ctx context.Context, ref string) (file, format string, err error) {
	if err := ctx.Err(); err != nil {
		return "", "", fmt.Errorf("resolve image %s: %w", ref, err)
	}
	switch {
	case strings.HasPrefix(ref, "file://"):
		return localImage(ref, strings.TrimPrefix(ref, "file://"))
	case strings.HasPrefix(ref, "/"):
		return localImage(ref, ref)
	case strings.HasPrefix(ref, "oci:"):
		return s.ociImage(ctx, ref)
	}
	return "", "", fmt.Errorf("resolve image %s: %w", ref, ErrRegistryPull)
}

func localImage(ref, p string) (string, string, error) {
	if !filepath.IsAbs(p) {
		return "", "", fmt.Errorf("resolve image %s: %q is not an absolute path", ref, p)
	}
	p = filepath.Clean(p)
	st, err := os.Stat(p)
	if err != nil {
		return "", "", fmt.Errorf("resolve image %s: %w", ref, err)
	}
	if !st.Mode().IsRegular() {
		return "", "", fmt.Errorf("resolve image %s: %s is not a regular file", ref, p)
	}
	format, err := DetectFormat(p)
	if err != nil {
		return "", "", fmt.Errorf("resolve image %s: %w", ref, err)
	}
	return p, format, nil
}

// splitOCIRef splits "oci:/dir:tag" into dir and tag. The tag is whatever
// follows the last ':' unless that contains a '/', so directories containing
// ':' still work without a tag.
func splitOCIRef(ref string) (dir, tag string) {
	rest := strings.TrimPrefix(ref, "oci:")
	if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.Contains(rest[i+1:], "/") {
		return rest[:i], rest[i+1:]
	}
	return rest, ""
}

func (s *Store) ociImage(ctx context.Context, ref string) (string, string, error) {
	dir, tag := splitOCIRef(ref)
	if !filepath.IsAbs(dir) {
		return "", "", fmt.Errorf("resolve image %s: layout directory %q is not an absolute path", ref, dir)
	}
	img, err := selectImage(dir, tag)
	if err != nil {
		return "", "", fmt.Errorf("resolve image %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", "", fmt.Errorf("resolve image %s: %w", ref, err)
	}
	// "sha256-<hex>" rather than "sha256:<hex>": QEMU reads a ':' in a file
	// name as a protocol prefix in some places (backing file names).
	target, err := within(filepath.Join(s.cache, digest.Algorithm+"-"+digest.Hex+".img"), s.cache, s.realCache)
	if err != nil {
		return "", "", fmt.Errorf("resolve image %s: %w", ref, err)
	}
	if !s.Exists(target) {
		if err := writeAtomic(target, func(tmp string) error { return extractDisk(ctx, img, tmp) }); err != nil {
			return "", "", fmt.Errorf("resolve image %s: %w", ref, err)
		}
	}
	format, err := DetectFormat(target)
	if err != nil {
		return "", "", fmt.Errorf("resolve image %s: %w", ref, err)
	}
	return target, format, nil
}

// selectImage picks the image named tag (by ref-name annotation, either the
// bare tag or a full reference ending in ":tag") from the layout at dir, or its
// only image when tag is empty. A multi-platform index is resolved to this
// machine's linux platform.
func selectImage(dir, tag string) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("open OCI layout: %w", err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("read OCI layout index: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read OCI layout index: %w", err)
	}
	var (
		picked []v1.Descriptor
		names  []string
	)
	for _, desc := range im.Manifests {
		name := desc.Annotations[refNameAnnotation]
		names = append(names, fmt.Sprintf("%q", name))
		if tag == "" || name == tag || strings.HasSuffix(name, ":"+tag) {
			picked = append(picked, desc)
		}
	}
	switch {
	case len(picked) == 0 && tag != "":
		return nil, fmt.Errorf("no image with tag %q in OCI layout (ref names: %s)", tag, strings.Join(names, ", "))
	case len(picked) == 0:
		return nil, errors.New("OCI layout holds no image")
	case len(picked) > 1 && tag == "":
		return nil, fmt.Errorf("OCI layout holds %d images; name one with oci:%s:<tag> (ref names: %s)", len(picked), dir, strings.Join(names, ", "))
	case len(picked) > 1:
		return nil, fmt.Errorf("OCI layout holds %d images with tag %q", len(picked), tag)
	}
	desc := picked[0]
	switch {
	case desc.MediaType.IsImage():
		return idx.Image(desc.Digest)
	case desc.MediaType.IsIndex():
		child, err := idx.ImageIndex(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("read image index %s: %w", desc.Digest, err)
		}
		return platformImage(child)
	}
	return nil, fmt.Errorf("OCI layout entry %s has media type %q, neither an image nor an index", desc.Digest, desc.MediaType)
}

func platformImage(idx v1.ImageIndex) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	for _, desc := range im.Manifests {
		if desc.Platform != nil && desc.Platform.OS == "linux" && desc.Platform.Architecture == runtime.GOARCH {
			return idx.Image(desc.Digest)
		}
	}
	return nil, fmt.Errorf("image index has no linux/%s image", runtime.GOARCH)
}

// extractDisk copies the single regular file under /disk/ of img's flattened
// filesystem (whiteouts applied) into dst.
func extractDisk(ctx context.Context, img v1.Image, dst string) error {
	rc := mutate.Extract(img)
	// Closing stops the extraction goroutine if we return early.
	defer func() { _ = rc.Close() }()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	defer func() { _ = out.Close() }()

	tr := tar.NewReader(rc)
	var found string
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
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if hdr.Typeflag != tar.TypeReg || path.Dir(name) != "disk" {
			continue
		}
		if found != "" {
			return fmt.Errorf("image has several files under /disk/ (%s, /%s); a containerDisk has exactly one", "/"+found, name)
		}
		found = name
		if _, err := io.Copy(out, &ctxReader{ctx: ctx, r: tr}); err != nil {
			return fmt.Errorf("extract /%s: %w", name, err)
		}
	}
	if found == "" {
		return errors.New("image has no regular file under /disk/; a containerDisk puts its disk there (ADD disk.qcow2 /disk/)")
	}
	return out.Close()
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// DetectFormat tells qcow2, ISO 9660 and raw images apart by their magic
// bytes: "QFI\xfb" at offset 0 for qcow2, "CD001" at 0x8001 for ISO 9660.
// Everything else is raw.
func DetectFormat(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("detect image format: %w", err)
	}
	defer func() { _ = f.Close() }()
	buf := make([]byte, 5)
	if n, err := f.ReadAt(buf[:4], 0); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("detect image format of %s: %w", p, err)
	} else if n == 4 && bytes.Equal(buf[:4], []byte("QFI\xfb")) {
		return FormatQcow2, nil
	}
	if n, err := f.ReadAt(buf, 0x8001); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("detect image format of %s: %w", p, err)
	} else if n == 5 && string(buf) == "CD001" {
		return FormatISO, nil
	}
	return FormatRaw, nil
}
