package importer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// upload runs an upload of data into a file target of size bytes in dir.
func upload(t testing.TB, dir string, r io.Reader, n, size int64, received func()) (Result, error) {
	t.Helper()
	return New(Config{}).Import(context.Background(), Request{
		Source:   Source{Kind: Upload, Reader: r, Size: n},
		Target:   Target{Path: filepath.Join(dir, "disk.img"), Size: size},
		Scratch:  filepath.Join(t.TempDir(), "scratch"),
		Received: received,
	})
}

// Every format CDI's upload server takes lands byte-identical in the
// target; only qcow2 goes through scratch space, the rest streams in.
func TestUpload_formats(t *testing.T) {
	requireQemuImg(t)
	raw := rawImage(4 * mib)
	iso := isoImage(t)
	for _, c := range []struct {
		name, format, comp string
		data, want         []byte
		scratch            bool
	}{
		{"raw", FormatRaw, "", raw, raw, false},
		{"raw.gz", FormatRaw, Gzip, gz(t, raw), raw, false},
		{"raw.xz", FormatRaw, XZ, xzData(t, raw), raw, false},
		{"qcow2", FormatQcow2, "", qcow2Of(t, raw), raw, true},
		{"qcow2.xz", FormatQcow2, XZ, xzData(t, qcow2Of(t, raw)), raw, true},
		{"iso", FormatISO, "", iso, iso, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			told := 0
			res, err := upload(t, dir, bytes.NewReader(c.data), int64(len(c.data)), 8*mib, func() { told++ })
			if err != nil {
				t.Fatal(err)
			}
			if res.Format != c.format || res.Compression != c.comp || res.Transferred != int64(len(c.data)) {
				t.Errorf("result %+v, want format %s compression %q, %d bytes", res, c.format, c.comp, len(c.data))
			}
			if (res.Scratch != "") != c.scratch {
				t.Errorf("scratch %q, want used=%v", res.Scratch, c.scratch)
			}
			if told != 1 {
				t.Errorf("Received called %d times", told)
			}
			target := filepath.Join(dir, "disk.img")
			if got := readN(t, target, len(c.want)); !bytes.Equal(got, c.want) {
				t.Error("the disk differs from the uploaded image")
			}
			if st, err := os.Stat(target); err != nil || st.Size() != 8*mib {
				t.Errorf("disk not grown to the target size: %v %v", st.Size(), err)
			}
			noLeftovers(t, dir, "disk.img")
		})
	}
}

// Zero blocks of a raw upload stay holes.
func TestUpload_sparse(t *testing.T) {
	dir := t.TempDir()
	raw := rawImage(16 * mib)
	if _, err := upload(t, dir, bytes.NewReader(raw), int64(len(raw)), 16*mib, nil); err != nil {
		t.Fatal(err)
	}
	if a := allocated(t, filepath.Join(dir, "disk.img")); a > 4*mib {
		t.Errorf("%d bytes allocated for a 16 MiB image with two data blocks", a)
	}
}

// Too large an image, garbage and an empty stream fail with a reason and
// leave nothing in place.
func TestUpload_refused(t *testing.T) {
	requireQemuImg(t)
	raw := rawImage(4 * mib)
	for _, c := range []struct {
		name string
		data []byte
		size int64 // -1: not told
		want error
		text string
	}{
		{"raw too large", raw, 4 * mib, ErrTooSmall, "a larger PVC is required"},
		{"raw too large, size unknown", raw, -1, ErrTooSmall, "a larger PVC is required"},
		{"xz too large", xzData(t, raw), -1, ErrTooSmall, "a larger PVC is required"},
		{"qcow2 too large", qcow2Of(t, raw), -1, ErrTooSmall, "larger than the reported available storage"},
		{"bad gz", append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte("x"), 100)...), -1, ErrFormat, "gz"},
		{"zstd", append([]byte{0x28, 0xb5, 0x2f, 0xfd}, make([]byte, 100)...), -1, ErrUnsupported, "zstd"},
		{"empty", nil, 0, ErrFormat, "empty"},
		{"empty, size unknown", nil, -1, ErrFormat, "empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			n := c.size
			if n > 0 {
				n = int64(len(c.data))
			}
			told := false
			_, err := upload(t, dir, bytes.NewReader(c.data), n, 2*mib, func() { told = true })
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("error %v, want %v with %q", err, c.want, c.text)
			}
			if told {
				t.Error("Received was called for a refused image")
			}
			noLeftovers(t, dir)
		})
	}
}

// dropping is a connection that breaks after n bytes.
type dropping struct {
	r io.Reader
	n int
}

func (d *dropping) Read(b []byte) (int, error) {
	if d.n <= 0 {
		return 0, errors.New("connection reset by peer")
	}
	k, err := d.r.Read(b[:min(len(b), d.n)])
	d.n -= k
	return k, err
}

// A dropped connection fails the upload, whether the stream errs or just
// ends short of its announced size; nothing half-written is left, and the
// retry succeeds.
func TestUpload_dropped(t *testing.T) {
	requireQemuImg(t)
	raw := rawImage(8 * mib)
	qcow := qcow2Of(t, raw)
	for _, c := range []struct {
		name string
		data []byte
		r    func(d []byte) io.Reader
		want string
	}{
		{"raw reset", raw, func(d []byte) io.Reader { return &dropping{bytes.NewReader(d), len(d) / 2} }, "connection reset"},
		{"raw short", raw, func(d []byte) io.Reader { return bytes.NewReader(d[:len(d)/2]) }, "ended after"},
		{"qcow2 short", qcow, func(d []byte) io.Reader { return bytes.NewReader(d[:len(d)/2]) }, "ended after"},
		{"xz short", xzData(t, raw), func(d []byte) io.Reader { return bytes.NewReader(d[:len(d)/2]) }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := upload(t, dir, c.r(c.data), int64(len(c.data)), 8*mib, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one with %q", err, c.want)
			}
			noLeftovers(t, dir)
			if _, err := upload(t, dir, bytes.NewReader(c.data), int64(len(c.data)), 8*mib, nil); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if !bytes.Equal(readN(t, filepath.Join(dir, "disk.img"), len(raw)), raw) {
				t.Error("the retried upload differs")
			}
		})
	}
}

// An upload into a Block volume (a loop device) is written in place; old
// content never shows through.
func TestUpload_blockTarget(t *testing.T) {
	requireQemuImg(t)
	raw := rawImage(4 * mib)
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"raw", raw},
		{"raw.gz", gz(t, raw)},
		{"qcow2", qcow2Of(t, raw)},
	} {
		t.Run(c.name, func(t *testing.T) {
			dev, _ := loopDevice(t, 8*mib)
			f, err := os.OpenFile(dev, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = f.WriteAt(bytes.Repeat([]byte{0xAB}, mib), mib)
			f.Close()
			res, err := New(Config{}).Import(context.Background(), Request{
				Source:  Source{Kind: Upload, Reader: bytes.NewReader(c.data), Size: int64(len(c.data))},
				Target:  Target{Path: dev, Block: true},
				Scratch: filepath.Join(t.TempDir(), "scratch"),
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := readN(t, dev, len(raw)); !bytes.Equal(got, raw) {
				t.Errorf("device content differs from the image (format %s)", res.Format)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		dev, _ := loopDevice(t, 2*mib)
		_, err := New(Config{}).Import(context.Background(), Request{
			Source: Source{Kind: Upload, Reader: bytes.NewReader(raw), Size: int64(len(raw))}, Target: Target{Path: dev, Block: true},
		})
		if !errors.Is(err, ErrTooSmall) {
			t.Fatalf("a 4 MiB upload into a 2 MiB device: %v", err)
		}
	})
}
