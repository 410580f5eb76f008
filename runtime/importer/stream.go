package importer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// Image formats and compressions, as Result reports them.
const (
	FormatQcow2 = "qcow2"
	FormatRaw   = "raw"
	FormatISO   = "iso"
	FormatVMDK  = "vmdk"
	FormatVHDX  = "vhdx"

	Gzip = "gz"
	XZ   = "xz"
)

// isoMagicEnd is how far detection looks: ISO 9660's "CD001" sits at 0x8001.
const isoMagicEnd = 0x8006

var (
	gzipMagic  = []byte{0x1f, 0x8b}
	xzMagic    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	zstdMagic  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	bzip2Magic = []byte("BZh")
)

// Compression returns gz, xz or "" from a stream's first bytes; other
// compressions CDI does not take are an ErrUnsupported error.
func Compression(head []byte) (string, error) {
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return Gzip, nil
	case bytes.HasPrefix(head, xzMagic):
		return XZ, nil
	case bytes.HasPrefix(head, zstdMagic):
		return "", fmt.Errorf("zstd compressed image: %w (use gz or xz)", ErrUnsupported)
	case bytes.HasPrefix(head, bzip2Magic) && len(head) > 3 && head[3] >= '1' && head[3] <= '9':
		return "", fmt.Errorf("bzip2 compressed image: %w (use gz or xz)", ErrUnsupported)
	}
	return "", nil
}

// Format tells the image format from its first isoMagicEnd bytes: qcow2,
// vmdk and vhdx by their headers, ISO 9660 by "CD001" at 0x8001; the rest is
// raw.
func Format(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		return FormatQcow2
	case bytes.HasPrefix(head, []byte("KDMV")):
		return FormatVMDK
	case bytes.HasPrefix(head, []byte("vhdxfile")):
		return FormatVHDX
	case len(head) >= isoMagicEnd && string(head[0x8001:isoMagicEnd]) == "CD001":
		return FormatISO
	}
	return FormatRaw
}

// needsQemuImg: formats only qemu-img can turn into raw.
func needsQemuImg(format string) bool {
	return format != FormatRaw && format != FormatISO
}

// NeedsScratch is the seed's CDI support matrix (8.18.8.2, 8.18.18.5):
// whether an import of this content needs scratch space. qcow2 over http
// needs it when compressed, over https also with a custom CA; registry
// imports always need it; raw content over http(s) never does. The matrix
// reserves scratch space for every upload, but like CDI's upload server
// only formats qemu-img converts are staged there: raw is written in place.
func NeedsScratch(kind SourceKind, https, customCA bool, format, compression string) bool {
	switch kind {
	case Registry:
		return true
	case Upload:
		return needsQemuImg(format)
	case HTTP:
		if !needsQemuImg(format) {
			return false
		}
		return compression != "" || (https && customCA)
	}
	return false
}

// decompress wraps r by compression. xz goes through the xz program when
// it is installed (C and multi-threaded, several times faster than the Go
// decoder) under the request's limits, else through github.com/ulikunitz/xz.
func (j *job) decompress(ctx context.Context, r io.Reader, compression string) (io.Reader, error) {
	switch compression {
	case Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w: %w", ErrFormat, err)
		}
		return corruptReader{zr, compression}, nil
	case XZ:
		if bin := j.im.xzPath(); bin != "" {
			return j.im.xzProgram(ctx, bin, r, j.req.Limits, &j.res)
		}
		xr, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("xz: %w: %w", ErrFormat, err)
		}
		return corruptReader{xr, compression}, nil
	}
	return r, nil
}

// corruptReader says which decompressor failed.
type corruptReader struct {
	r    io.Reader
	kind string
}

func (c corruptReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%s data is corrupt or truncated: %w: %w", c.kind, ErrFormat, err)
	}
	return n, err
}

func peek(br *bufio.Reader, n int) ([]byte, error) {
	head, err := br.Peek(n)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	return head, nil
}

// stream fills the target from r: the source's bytes as transferred. local
// names the file r reads when the source was already copied to one (a
// registry's disk, an upload), so a qcow2 is converted from it in place.
// verify, if set, checks the transferred bytes once all were read.
func (j *job) stream(ctx context.Context, r io.Reader, local string, verify func() error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	head, err := peek(br, len(xzMagic))
	if err != nil {
		return fmt.Errorf("read %s: %w", j.what(), err)
	}
	comp, err := Compression(head)
	if err != nil {
		return fmt.Errorf("%s: %w", j.what(), err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops an xz program whose output is no longer read
	data, err := j.decompress(ctx, br, comp)
	if err != nil {
		return fmt.Errorf("%s: %w", j.what(), err)
	}
	if p, ok := data.(*programReader); ok {
		defer p.close()
	}
	dr := bufio.NewReaderSize(data, 1<<20)
	head, err = peek(dr, isoMagicEnd)
	if err != nil {
		return fmt.Errorf("read %s: %w", j.what(), err)
	}
	format := Format(head)
	j.res.Format, j.res.Compression = format, comp
	src := j.req.Source
	if src.Kind == Registry && comp != "" {
		return fmt.Errorf("%s: the disk inside the image is %s compressed: %w for registry imports (CDI support matrix: registry takes qcow2 and raw only)", j.what(), comp, ErrUnsupported)
	}
	drain := func() error {
		// Read what the decompressor left (trailing padding) so the
		// checksum covers every transferred byte.
		if _, err := io.Copy(io.Discard, br); err != nil {
			return fmt.Errorf("read %s: %w", j.what(), err)
		}
		if verify != nil {
			return verify()
		}
		return nil
	}

	if !needsQemuImg(format) {
		if src.Kind == Upload && comp == "" && src.Size > j.size {
			// Known before a byte is written: refuse at once.
			return fmt.Errorf("%s: virtual image size %d is larger than the reported available storage %d: %w", j.what(), src.Size, j.size, ErrTooSmall)
		}
		f, err := j.openTarget()
		if err != nil {
			return err
		}
		n, err := copySparse(f, dr, j.size, !j.req.Target.Block || j.zeroed)
		if err != nil {
			f.Close()
			if errors.Is(err, ErrTooSmall) {
				return fmt.Errorf("%s: virtual image size is at least %d bytes, larger than the reported available storage %d: %w", j.what(), n, j.size, ErrTooSmall)
			}
			return fmt.Errorf("%s: %w", j.what(), err)
		}
		j.res.VirtualSize = n
		if n == 0 && src.Kind == Upload {
			f.Close()
			return fmt.Errorf("%s: the image is empty: %w", j.what(), ErrFormat)
		}
		if err := drain(); err != nil {
			f.Close()
			return err
		}
		j.received()
		return j.finish(f)
	}

	// qcow2 and friends: qemu-img needs a file it can seek in.
	scratch := NeedsScratch(src.Kind, strings.HasPrefix(src.URL, "https://"), len(src.CA) > 0, format, comp)
	if local == "" || comp != "" || (src.Kind == HTTP && scratch) {
		// An HTTP download kept beside the target to resume from still goes
		// through scratch space where the matrix asks for it.
		j.prog.phase(0, 50)
		stage, err := j.stagePath(scratch, "image")
		if err != nil {
			return err
		}
		f, err := os.OpenFile(stage, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("create staging file: %w", err)
		}
		if _, err := copySparse(f, dr, 1<<62, true); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", j.what(), err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		local = stage
	}
	if err := drain(); err != nil {
		return err
	}
	return j.convert(ctx, local, format)
}

// stagePath picks where a file goes before conversion: the scratch
// directory when the matrix asks for scratch space, else beside the target.
// name tells apart the files of one import (the source as received, the
// decompressed image).
func (j *job) stagePath(scratch bool, name string) (string, error) {
	t := j.req.Target
	var p string
	switch {
	case (scratch || t.Block) && j.req.Scratch != "":
		if err := os.MkdirAll(j.req.Scratch, 0o700); err != nil {
			return "", fmt.Errorf("scratch space: %w", err)
		}
		p = filepath.Join(j.req.Scratch, name)
		j.res.Scratch = j.req.Scratch
	case t.Block:
		return "", fmt.Errorf("import into %s: a block target needs scratch space to stage the image", t.Path)
	default:
		// No scratch directory given: stage beside the target.
		p = stageName(t.Path) + "." + name
	}
	_ = os.Remove(p)
	j.stages = append(j.stages, p)
	return p, nil
}

// convert turns the image at src into raw in the target with qemu-img.
func (j *job) convert(ctx context.Context, src, format string) error {
	info, err := j.im.info(ctx, src, format)
	if err != nil {
		return fmt.Errorf("%s: %w", j.what(), err)
	}
	j.res.VirtualSize = info.VirtualSize
	if info.VirtualSize > j.size {
		return fmt.Errorf("%s: Virtual image size %d is larger than the reported available storage %d: %w", j.what(), info.VirtualSize, j.size, ErrTooSmall)
	}
	j.received()
	j.prog.phase(50, 50)
	dst := j.partial
	if j.req.Target.Block {
		dst = j.req.Target.Path
		f, err := j.openTarget()
		if err != nil {
			return err
		}
		f.Close()
	}
	note, err := j.im.qemuConvert(ctx, src, format, dst, j.req.Target.Block, j.req.Limits, j.prog)
	j.res.Limits = note
	if err != nil {
		return fmt.Errorf("%s: %w", j.what(), err)
	}
	j.removeStages()
	f, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	return j.finish(f)
}

// what names the source in errors.
func (j *job) what() string {
	s := j.req.Source
	switch s.Kind {
	case HTTP, Registry:
		return s.URL
	case Clone:
		return "clone of " + s.Path
	case Upload:
		return "upload"
	}
	return string(s.Kind)
}

// copySparse copies r into f from offset 0, leaving holes where whole
// chunks are zero (skip says that the target already reads as zeros), and
// fails with ErrTooSmall past limit bytes. It returns the bytes read.
// Reading and writing overlap (a network stream is decrypted or
// decompressed while the previous chunk is written), and writeback starts
// as it goes, so the final sync does not wait for all of it.
func copySparse(f *os.File, r io.Reader, limit int64, skip bool) (int64, error) {
	const chunk, depth = 4 << 20, 3
	type block struct {
		b   []byte
		n   int
		err error
	}
	free := make(chan []byte, depth)
	for range depth {
		free <- make([]byte, chunk)
	}
	full := make(chan block, depth)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(full)
		var read int64
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			n, err := fill(r, buf)
			read += int64(n)
			if err == nil && read > limit {
				err = ErrTooSmall // no need to read on
			}
			select {
			case full <- block{buf, n, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// The reader never outlives the copy: the caller reads r after it.
	defer func() {
		close(stop)
		<-done
	}()
	zero := make([]byte, chunk)
	wb := writeback{f: f}
	var off int64
	for blk := range full {
		if n := blk.n; n > 0 {
			if off+int64(n) > limit {
				return off + int64(n), ErrTooSmall
			}
			b := blk.b[:n]
			if !skip || !bytes.Equal(b, zero[:n]) {
				if _, werr := f.WriteAt(b, off); werr != nil {
					return off, werr
				}
				wb.wrote(off + int64(n))
			}
			off += int64(n)
		}
		if errors.Is(blk.err, io.EOF) {
			break
		}
		if blk.err != nil {
			return off, blk.err
		}
		free <- blk.b
	}
	st, err := f.Stat()
	if err == nil && st.Mode().IsRegular() && st.Size() < off {
		err = f.Truncate(off)
	}
	return off, err
}

// writeback starts writing dirty pages of f to the disk every
// writebackStep bytes (sync_file_range, which does not wait), so the copy
// and the disk work at once and the page cache never holds a whole image.
type writeback struct {
	f    *os.File
	from int64
}

const writebackStep = 32 << 20

func (w *writeback) wrote(end int64) {
	if end-w.from < writebackStep {
		return
	}
	// Best effort: a file system without it syncs everything at the end.
	_ = unix.SyncFileRange(int(w.f.Fd()), w.from, end-w.from, unix.SYNC_FILE_RANGE_WRITE)
	w.from = end
}

// fill reads until buf is full or r fails; unlike io.ReadFull it passes
// r's own io.ErrUnexpectedEOF (a truncated gzip stream) through as an error
// and reports a clean end as io.EOF.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
