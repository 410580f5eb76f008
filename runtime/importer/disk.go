package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blockSize returns a block device's size in bytes.
func blockSize(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", dev, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Mode()&os.ModeDevice == 0 {
		return 0, fmt.Errorf("%s is not a block device", dev)
	}
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dev, err)
	}
	return n, nil
}

// zeroDevice makes the first size bytes of a block device read as zeros
// without writing them: BLKDISCARD (a loop device punches holes in its
// file), else BLKZEROOUT. A nil error means zero chunks may be skipped.
func zeroDevice(f *os.File, size int64) error {
	rng := [2]uint64{0, uint64(size)}
	for _, req := range []uintptr{unix.BLKDISCARD, unix.BLKZEROOUT} {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(unsafe.Pointer(&rng)))
		if e == 0 {
			// Discard only guarantees zeros where the device says so;
			// check the first block as loop devices do honour it.
			buf := make([]byte, 4096)
			if _, err := f.ReadAt(buf, 0); err == nil || errors.Is(err, io.EOF) {
				allZero := true
				for _, b := range buf {
					if b != 0 {
						allZero = false
						break
					}
				}
				if allZero {
					return nil
				}
			}
		}
	}
	return errors.New("device cannot be zeroed in place")
}

// forceFullPreallocation makes preallocate skip fallocate (tests use it to
// reach the fallback on file systems that support fallocate).
var forceFullPreallocation = false

// preallocate allocates every block of f up to size: fallocate where the
// file system supports it, else by writing zeros into the holes (CDI's
// "full" mode). It returns the method used.
func preallocate(f *os.File, size int64) (string, error) {
	if !forceFullPreallocation {
		err := unix.Fallocate(int(f.Fd()), 0, 0, size)
		if err == nil {
			return "fallocate", nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
			return "", fmt.Errorf("fallocate: %w", err)
		}
	}
	return "full", fillHoles(f, size)
}

// fillHoles writes zeros into every hole of f below size.
func fillHoles(f *os.File, size int64) error {
	fd := int(f.Fd())
	zero := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		hole, err := unix.Seek(fd, off, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("find holes: %w", err)
		}
		if hole >= size {
			return nil
		}
		data, err := unix.Seek(fd, hole, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) || data > size {
			data = size
		} else if err != nil {
			return fmt.Errorf("find data: %w", err)
		}
		for p := hole; p < data; {
			n := min(int64(len(zero)), data-p)
			if _, err := f.WriteAt(zero[:n], p); err != nil {
				return err
			}
			p += n
		}
		off = data
	}
	return nil
}

// blank makes an empty disk: a sparse file of the target size, or a device
// whose content is zeroed.
func (j *job) blank(ctx context.Context) error {
	j.res.Format = FormatRaw
	f, err := j.openTarget()
	if err != nil {
		return err
	}
	if j.req.Target.Block && !j.zeroed {
		// Zero it by writing: a blank disk must not show old data.
		if _, err := copySparse(f, io.LimitReader(zeroReader{}, j.size), j.size, false); err != nil {
			f.Close()
			return fmt.Errorf("zero %s: %w", j.req.Target.Path, err)
		}
	}
	return j.finish(f)
}

type zeroReader struct{}

func (zeroReader) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// clone copies the source volume: a reflink (FICLONE) between files of one
// copy-on-write file system, else a sparse copy. Preallocation is ignored for
// clones, as CDI does.
func (j *job) clone(ctx context.Context) error {
	srcPath := j.req.Source.Path
	src, err := os.Open(srcPath)
	if err != nil {
		return fmt.Errorf("clone source: %w", err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if st.Mode()&os.ModeDevice != 0 {
		if size, err = src.Seek(0, io.SeekEnd); err != nil {
			return fmt.Errorf("size of %s: %w", srcPath, err)
		}
		if _, err := src.Seek(0, io.SeekStart); err != nil {
			return err
		}
	}
	j.res.Format, j.res.VirtualSize = FormatRaw, size
	if size > j.size {
		return fmt.Errorf("clone of %s: the target (%d bytes) is smaller than the source (%d bytes): %w", srcPath, j.size, size, ErrTooSmall)
	}
	j.req.Target.Preallocate = false
	f, err := j.openTarget()
	if err != nil {
		return err
	}
	if !j.req.Target.Block && st.Mode().IsRegular() {
		if err := unix.IoctlFileClone(int(f.Fd()), int(src.Fd())); err == nil {
			j.res.Clone = "reflink"
			j.res.Transferred = size
			j.prog.set(99)
			return j.finish(f)
		}
	}
	j.res.Clone = "copy"
	j.prog.phase(0, 100)
	c := &counter{r: src, total: size, prog: j.prog, ctx: ctx}
	if _, err := copySparse(f, c, j.size, !j.req.Target.Block || j.zeroed); err != nil {
		f.Close()
		return fmt.Errorf("clone of %s: %w", srcPath, err)
	}
	j.res.Transferred = c.n
	return j.finish(f)
}
