package disks

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/kdomanski/iso9660"
)

// requireQemuImg fails (never skips) without qemu-img: qcow2 handling is the
// core of this package and must be tested for real.
func requireQemuImg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img is not installed; `make test` installs qemu-utils")
	}
}

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	s, err := New(filepath.Join(root, "disks"), filepath.Join(root, "images"))
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

// fileID identifies one version of a file: a rewrite through temp+rename
// gives a new inode, an in-place write a new mtime.
type fileID struct {
	ino   uint64
	mtime time.Time
}

func idOf(t *testing.T, p string) fileID {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fileID{st.Sys().(*syscall.Stat_t).Ino, st.ModTime()}
}

func TestStore_EnsureQcow2(t *testing.T) {
	requireQemuImg(t)
	s, root := newStore(t)
	p := filepath.Join(root, "disks", "vm1", "scratch.qcow2")
	const size = 64 << 20
	if err := s.EnsureQcow2(t.Context(), p, size); err != nil {
		t.Fatal(err)
	}
	info, err := ImageInfo(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != "qcow2" || info.VirtualSize != size {
		t.Errorf("info = %+v, want qcow2 of %d bytes", info, size)
	}
	before := idOf(t, p)
	if err := s.EnsureQcow2(t.Context(), p, 2*size); err != nil {
		t.Fatal(err)
	}
	if after := idOf(t, p); after != before {
		t.Errorf("second EnsureQcow2 rewrote the file: %+v -> %+v", before, after)
	}
	assertNoTempFiles(t, filepath.Dir(p))
}

func TestStore_EnsureRaw(t *testing.T) {
	s, root := newStore(t)
	p := filepath.Join(root, "disks", "host.img")
	const size = 1 << 30
	if err := s.EnsureRaw(t.Context(), p, size); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != size {
		t.Errorf("size = %d, want %d", st.Size(), size)
	}
	if blocks := st.Sys().(*syscall.Stat_t).Blocks; blocks*512 >= size {
		t.Errorf("raw disk is not sparse: %d bytes allocated", blocks*512)
	}
	if f, err := DetectFormat(p); err != nil || f != FormatRaw {
		t.Errorf("DetectFormat = %q, %v; want raw", f, err)
	}
	before := idOf(t, p)
	if err := s.EnsureRaw(t.Context(), p, size); err != nil {
		t.Fatal(err)
	}
	if after := idOf(t, p); after != before {
		t.Errorf("second EnsureRaw rewrote the file")
	}
	if err := s.EnsureRaw(t.Context(), filepath.Join(root, "disks", "zero.img"), 0); err == nil {
		t.Error("EnsureRaw accepted size 0")
	}
}

// readISO returns the label and root files of the ISO at p.
func readISO(t *testing.T, p string) (string, map[string]string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := iso9660.OpenImage(f)
	if err != nil {
		t.Fatal(err)
	}
	label, err := img.Label()
	if err != nil {
		t.Fatal(err)
	}
	rootDir, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	var walk func(dir *iso9660.File, prefix string)
	walk = func(dir *iso9660.File, prefix string) {
		children, err := dir.GetChildren()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range children {
			if c.IsDir() {
				walk(c, prefix+c.Name()+"/")
				continue
			}
			b, err := io.ReadAll(c.Reader())
			if err != nil {
				t.Fatal(err)
			}
			files[prefix+c.Name()] = string(b)
		}
	}
	walk(rootDir, "")
	return label, files
}

func TestStore_EnsureSeedISO(t *testing.T) {
	s, root := newStore(t)
	p := filepath.Join(root, "disks", "vm1", "cloudinit.iso")
	files := map[string][]byte{
		"user-data":      []byte("#cloud-config\npassword: secret\n"),
		"meta-data":      []byte("instance-id: vm1\nlocal-hostname: vm1\n"),
		"network-config": []byte("version: 2\n"),
	}
	if err := s.EnsureSeedISO(t.Context(), p, "cidata", files); err != nil {
		t.Fatal(err)
	}
	label, got := readISO(t, p)
	if label != "cidata" {
		t.Errorf("label = %q, want cidata", label)
	}
	for name, want := range files {
		if got[name] != string(want) {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
	if len(got) != len(files) {
		t.Errorf("ISO holds %v, want exactly %d files", got, len(files))
	}
	if f, err := DetectFormat(p); err != nil || f != FormatISO {
		t.Errorf("DetectFormat = %q, %v; want iso", f, err)
	}

	before := idOf(t, p)
	same := map[string][]byte{}
	for k, v := range files {
		same[k] = bytes.Clone(v)
	}
	if err := s.EnsureSeedISO(t.Context(), p, "cidata", same); err != nil {
		t.Fatal(err)
	}
	if after := idOf(t, p); after != before {
		t.Errorf("unchanged inputs rewrote the ISO")
	}

	files["user-data"] = []byte("#cloud-config\npassword: other\n")
	if err := s.EnsureSeedISO(t.Context(), p, "cidata", files); err != nil {
		t.Fatal(err)
	}
	if after := idOf(t, p); after == before {
		t.Errorf("changed inputs did not rewrite the ISO")
	}
	if _, got := readISO(t, p); got["user-data"] != string(files["user-data"]) {
		t.Errorf("user-data after rewrite = %q", got["user-data"])
	}
	assertNoTempFiles(t, filepath.Dir(p))

	// Without xorrisofs, names plain ISO 9660 cannot hold are refused.
	t.Setenv("PATH", t.TempDir())
	for _, bad := range []string{"User-Data", "openstack/Latest/x", "has space", strings.Repeat("x", 29)} {
		err := s.EnsureSeedISO(t.Context(), p, "cidata", map[string][]byte{bad: nil})
		if err == nil || !strings.Contains(err.Error(), "cannot be stored unchanged") || !strings.Contains(err.Error(), "install xorriso") {
			t.Errorf("file name %q: err = %v, want a refusal", bad, err)
		}
	}
	for _, bad := range []string{"a/../b", "a//b", "."} {
		if err := s.EnsureSeedISO(t.Context(), p, "cidata", map[string][]byte{bad: nil}); err == nil {
			t.Errorf("file name %q accepted", bad)
		}
	}
}

// A ConfigDrive seed keeps its files in openstack/latest/.
func TestStore_EnsureSeedISO_configDrive(t *testing.T) {
	s, root := newStore(t)
	p := filepath.Join(root, "disks", "vm1", "configdrive.iso")
	files := map[string][]byte{
		"openstack/latest/user_data":         []byte("#cloud-config\n"),
		"openstack/latest/meta_data.json":    []byte(`{"uuid":"u"}`),
		"openstack/latest/network_data.json": []byte(`{}`),
	}
	if err := s.EnsureSeedISO(t.Context(), p, "config-2", files); err != nil {
		t.Fatal(err)
	}
	label, got := readISO(t, p)
	if label != "config-2" {
		t.Errorf("label = %q", label)
	}
	for name, want := range files {
		if got[name] != string(want) {
			t.Errorf("%s = %q, want %q (image holds %v)", name, got[name], want, got)
		}
	}
}

func TestStore_EnsureOverlay(t *testing.T) {
	requireQemuImg(t)
	s, root := newStore(t)
	ctx := t.Context()
	base1 := filepath.Join(root, "images", "one.qcow2")
	base2 := filepath.Join(root, "images", "two.raw")
	if err := s.EnsureQcow2(ctx, filepath.Join(root, "disks", "tmp.qcow2"), 32<<20); err != nil {
		t.Fatal(err)
	}
	// Backing files may live outside base (the image cache); make them with
	// qemu-img directly.
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base1, "32M").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := os.WriteFile(base2, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}

	p := filepath.Join(root, "disks", "vm1", "root.qcow2")
	if err := s.EnsureOverlay(ctx, p, base1, "qcow2"); err != nil {
		t.Fatal(err)
	}
	info, err := ImageInfo(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != "qcow2" || info.BackingFilename != base1 || info.BackingFormat != "qcow2" || info.VirtualSize != 32<<20 {
		t.Errorf("overlay info = %+v, want qcow2 on %s (qcow2, 32 MiB)", info, base1)
	}

	before := idOf(t, p)
	if err := s.EnsureOverlay(ctx, p, base1, "qcow2"); err != nil {
		t.Fatal(err)
	}
	if after := idOf(t, p); after != before {
		t.Errorf("same backing file rewrote the overlay")
	}

	if err := s.EnsureOverlay(ctx, p, base2, "raw"); err != nil {
		t.Fatal(err)
	}
	if info, err := ImageInfo(ctx, p); err != nil || info.BackingFilename != base2 || info.BackingFormat != "raw" {
		t.Errorf("after new backing: info = %+v, %v; want backed by %s (raw)", info, err, base2)
	}
	// ResolveImage reports ISOs as "iso"; to QEMU they are raw.
	before = idOf(t, p)
	if err := s.EnsureOverlay(ctx, p, base2, "iso"); err != nil {
		t.Fatal(err)
	}
	if after := idOf(t, p); after != before {
		t.Errorf("iso (= raw) backing format rewrote a raw-backed overlay")
	}
	assertNoTempFiles(t, filepath.Dir(p))

	if err := s.EnsureOverlay(ctx, p, base1, "vmdk"); err == nil {
		t.Error("accepted backing format vmdk")
	}
	if err := s.EnsureOverlay(ctx, p, filepath.Join(root, "missing.qcow2"), "qcow2"); err == nil {
		t.Error("accepted a missing backing file")
	}
}

func TestStore_outsideBase(t *testing.T) {
	s, root := newStore(t)
	ctx := t.Context()
	outside := filepath.Join(root, "elsewhere")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	// A symlink inside base that points out of it must not let writes escape.
	if err := os.Symlink(outside, filepath.Join(root, "disks", "escape")); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"sibling":       filepath.Join(outside, "x.img"),
		"dot-dot":       filepath.Join(root, "disks", "..", "elsewhere", "x.img"),
		"relative":      "disks/x.img",
		"base itself":   filepath.Join(root, "disks"),
		"through link":  filepath.Join(root, "disks", "escape", "x.img"),
		"image cache":   filepath.Join(root, "images", "x.img"),
		"prefix string": filepath.Join(root, "disks-other", "x.img"),
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			if err := s.EnsureRaw(ctx, p, 1<<20); !errors.Is(err, ErrOutsideBase) {
				t.Errorf("EnsureRaw(%s) = %v, want ErrOutsideBase", p, err)
			}
			if err := s.EnsureSeedISO(ctx, p, "cidata", nil); !errors.Is(err, ErrOutsideBase) {
				t.Errorf("EnsureSeedISO(%s) = %v, want ErrOutsideBase", p, err)
			}
			if err := s.RemoveAll(ctx, p); !errors.Is(err, ErrOutsideBase) {
				t.Errorf("RemoveAll(%s) = %v, want ErrOutsideBase", p, err)
			}
		})
	}
	entries, err := os.ReadDir(outside)
	if err != nil || len(entries) != 0 {
		t.Errorf("files appeared outside base: %v %v", entries, err)
	}
}

func TestStore_RemoveAll(t *testing.T) {
	s, root := newStore(t)
	dir := filepath.Join(root, "disks", "vm1")
	if err := s.EnsureRaw(t.Context(), filepath.Join(dir, "a.img"), 1<<20); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.RemoveAll(t.Context(), dir); err != nil {
			t.Fatal(err)
		}
	}
	if s.Exists(dir) {
		t.Errorf("%s still exists", dir)
	}
	if !s.Exists(filepath.Join(root, "disks")) {
		t.Errorf("base was removed")
	}
}

func TestNew_relative(t *testing.T) {
	if _, err := New("disks", "/tmp/images"); err == nil {
		t.Error("New accepted a relative base")
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

// ociLayout writes an OCI image layout holding one image tagged tag whose
// single layer carries files (path → content), as `docker build` of
// KubeVirt's containerDisk Dockerfile (ADD disk.qcow2 /disk/) would.
func ociLayout(t *testing.T, dir, tag string, files map[string][]byte) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "disk/", Typeflag: tar.TypeDir, Mode: 0o555}); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o444, Size: int64(len(b)), Uid: 107, Gid: 107}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refNameAnnotation: tag})); err != nil {
		t.Fatal(err)
	}
}

func TestStore_ResolveImage_oci(t *testing.T) {
	requireQemuImg(t)
	s, root := newStore(t)
	ctx := t.Context()
	src := filepath.Join(root, "src.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", src, "16M").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	disk, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "layout")
	ociLayout(t, dir, "v1", map[string][]byte{"disk/disk.qcow2": disk})

	for _, ref := range []string{"oci:" + dir + ":v1", "oci:" + dir} {
		p, format, err := s.ResolveImage(ctx, ref)
		if err != nil {
			t.Fatalf("ResolveImage(%s): %v", ref, err)
		}
		if format != FormatQcow2 {
			t.Errorf("format = %q, want qcow2", format)
		}
		if filepath.Dir(p) != filepath.Join(root, "images") || !strings.HasPrefix(filepath.Base(p), "sha256-") || filepath.Ext(p) != ".img" {
			t.Errorf("path = %s, want images/sha256-<hex>.img", p)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, disk) {
			t.Errorf("extracted disk differs from the one in the image")
		}
	}
	p, _, _ := s.ResolveImage(ctx, "oci:"+dir+":v1")
	before := idOf(t, p)
	if _, _, err := s.ResolveImage(ctx, "oci:"+dir+":v1"); err != nil {
		t.Fatal(err)
	}
	if after := idOf(t, p); after != before {
		t.Errorf("second resolve re-extracted the image")
	}
	assertNoTempFiles(t, filepath.Dir(p))

	if _, _, err := s.ResolveImage(ctx, "oci:"+dir+":v2"); err == nil || !strings.Contains(err.Error(), `no image with tag "v2"`) {
		t.Errorf("unknown tag: err = %v", err)
	}
}

func TestStore_ResolveImage_ociBadDiskDir(t *testing.T) {
	s, root := newStore(t)
	cases := map[string]struct {
		files map[string][]byte
		want  string
	}{
		"two files": {map[string][]byte{"disk/a.img": []byte("a"), "disk/b.img": []byte("b")}, "several files under /disk/"},
		"no file":   {map[string][]byte{"other/a.img": []byte("a")}, "no regular file under /disk/"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(root, strings.ReplaceAll(name, " ", "-"))
			ociLayout(t, dir, "latest", tc.files)
			_, _, err := s.ResolveImage(t.Context(), "oci:"+dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			assertNoTempFiles(t, filepath.Join(root, "images"))
		})
	}
}

func TestStore_ResolveImage_file(t *testing.T) {
	s, root := newStore(t)
	raw := filepath.Join(root, "plain.img")
	if err := os.WriteFile(raw, []byte("not an image header"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"file://" + raw, raw} {
		p, format, err := s.ResolveImage(t.Context(), ref)
		if err != nil || p != raw || format != FormatRaw {
			t.Errorf("ResolveImage(%s) = %s, %s, %v; want %s, raw", ref, p, format, err, raw)
		}
	}
	if _, _, err := s.ResolveImage(t.Context(), "file://"+filepath.Join(root, "missing.img")); err == nil {
		t.Error("missing file resolved")
	}
}

func TestStore_ResolveImage_registry(t *testing.T) {
	s, _ := newStore(t)
	for _, ref := range []string{"quay.io/containerdisks/fedora:40", "docker://quay.io/x/y", "fedora"} {
		_, _, err := s.ResolveImage(t.Context(), ref)
		if !errors.Is(err, ErrRegistryPull) {
			t.Errorf("ResolveImage(%s) = %v, want ErrRegistryPull", ref, err)
		}
		if err != nil && !strings.Contains(err.Error(), "not supported yet") {
			t.Errorf("message %q does not say registry pulls are unsupported", err)
		}
	}
}

func TestSplitOCIRef(t *testing.T) {
	cases := map[string][2]string{
		"oci:/a/b":        {"/a/b", ""},
		"oci:/a/b:v1":     {"/a/b", "v1"},
		"oci:/a:b/c":      {"/a:b/c", ""},
		"oci:/a:b/c:v1.2": {"/a:b/c", "v1.2"},
	}
	for in, want := range cases {
		dir, tag := splitOCIRef(in)
		if dir != want[0] || tag != want[1] {
			t.Errorf("splitOCIRef(%q) = %q, %q; want %q, %q", in, dir, tag, want[0], want[1])
		}
	}
}

// The VM stage declares this interface (reconciler/vm.Disks); it is mirrored
// here, not imported, because runtime must not import reconciler.
var _ interface {
	EnsureQcow2(ctx context.Context, path string, size int64) error
	EnsureRaw(ctx context.Context, path string, size int64) error
	EnsureSeedISO(ctx context.Context, path, label string, files map[string][]byte) error
	EnsureOverlay(ctx context.Context, path, backing, backingFormat string) error
	ResolveImage(ctx context.Context, ref string) (path, format string, err error)
	EnsureKernelBoot(ctx context.Context, ref, dir, kernelPath, initrdPath string) error
	RemoveAll(ctx context.Context, dir string) error
	Exists(path string) bool
} = (*Store)(nil)
