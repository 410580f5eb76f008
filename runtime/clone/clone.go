// Package clone copies disk images for snapshots and restores: a reflink
// (FICLONE) where the file system shares extents, else a sparse copy that
// moves only the allocated extents, so a mostly empty disk stays mostly
// empty. A copy into a file is atomic (temporary name, fsync, rename); a
// copy onto a block device writes the device whole.
package clone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nodevirt/nodevirt/runtime/atomicfile"
)

// Method is how a copy was made.
type Method string

const (
	// Reflink: the copy shares the source's extents (XFS, btrfs).
	Reflink Method = "reflink"
	// Copy: the allocated extents were copied, holes left as holes.
	Copy Method = "copy"
)

// chunk is the unit of block-device reads and of the plain-read fallback.
const chunk = 1 << 20

// File copies src (a regular file or a block device) to the file dst,
// replacing dst atomically: a failure or a crash leaves the old dst. An
// existing dst keeps its mode and owner (libvirt's DAC labels stay valid).
func File(ctx context.Context, dst, src string) (Method, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("open copy source: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return "", fmt.Errorf("stat %s: %w", src, err)
	}
	perm, uid, gid := os.FileMode(0o600), -1, -1
	if old, err := os.Stat(dst); err == nil {
		perm = old.Mode().Perm()
		if st, ok := old.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	method := Copy
	err = atomicfile.Write(dst, perm, func(out *os.File) error {
		if uid >= 0 {
			if err := out.Chown(uid, gid); err != nil {
				return fmt.Errorf("keep the owner of %s: %w", dst, err)
			}
		}
		if fi.Mode()&os.ModeDevice != 0 {
			return fromDevice(ctx, out, in)
		}
		if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err == nil {
			method = Reflink
			return nil
		} else if !cannotClone(err) {
			return fmt.Errorf("reflink %s to %s: %w", src, dst, err)
		}
		if err := enoughSpace(out, fi); err != nil {
			return err
		}
		return sparse(ctx, out, in, fi.Size())
	})
	if err != nil {
		return "", fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return method, nil
}

// cannotClone reports an error that means "this file system (or this pair
// of files) cannot share extents", which the sparse copy handles.
func cannotClone(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM)
}

// enoughSpace refuses a copy the file system cannot hold, before a byte is
// written: a half-written copy would only be thrown away.
func enoughSpace(out *os.File, src os.FileInfo) error {
	st, ok := src.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(out.Fd()), &fs); err != nil {
		return nil // unknown: the write itself reports ENOSPC
	}
	need, free := uint64(st.Blocks)*512, fs.Bavail*uint64(fs.Bsize)
	if need > free {
		return fmt.Errorf("%d bytes are allocated in the source and only %d are free at the destination", need, free)
	}
	return nil
}

// sparse copies the data extents of in (SEEK_DATA/SEEK_HOLE) with
// copy_file_range and gives out in's size: holes stay holes.
func sparse(ctx context.Context, out, in *os.File, size int64) error {
	ifd := int(in.Fd())
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := unix.Seek(ifd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return fmt.Errorf("find data at %d: %w", off, err)
		}
		hole, err := unix.Seek(ifd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("find hole at %d: %w", data, err)
		}
		if err := copyRange(ctx, out, in, data, hole); err != nil {
			return err
		}
		off = hole
	}
	return out.Truncate(size)
}

// copyRange copies [from, to) of in to the same offsets of out, in the
// kernel when it can.
func copyRange(ctx context.Context, out, in *os.File, from, to int64) error {
	for from < to {
		if err := ctx.Err(); err != nil {
			return err
		}
		ro, wo := from, from
		n, err := unix.CopyFileRange(int(in.Fd()), &ro, int(out.Fd()), &wo, int(min(to-from, 1<<30)), 0)
		if err != nil {
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
				return readCopy(ctx, out, in, from, to)
			}
			return fmt.Errorf("copy bytes %d-%d: %w", from, to, err)
		}
		if n == 0 {
			return fmt.Errorf("copy bytes %d-%d: %w", from, to, io.ErrUnexpectedEOF)
		}
		from += int64(n)
	}
	return nil
}

// readCopy is copyRange through user space.
func readCopy(ctx context.Context, out, in *os.File, from, to int64) error {
	buf := make([]byte, chunk)
	for from < to {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := in.ReadAt(buf[:min(int64(len(buf)), to-from)], from)
		if n > 0 {
			if _, werr := out.WriteAt(buf[:n], from); werr != nil {
				return werr
			}
			from += int64(n)
		}
		if err != nil && !(errors.Is(err, io.EOF) && from >= to) {
			return fmt.Errorf("read at %d: %w", from, err)
		}
	}
	return nil
}

// fromDevice reads a block device whole and writes only the chunks that
// are not all zeros, so the copy of a mostly empty device stays sparse.
func fromDevice(ctx context.Context, out, in *os.File) error {
	size, err := in.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("size of %s: %w", in.Name(), err)
	}
	buf := make([]byte, chunk)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := in.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if n > 0 && !zero(buf[:n]) {
			if _, werr := out.WriteAt(buf[:n], off); werr != nil {
				return werr
			}
		}
		off += int64(n)
		if err != nil && !(errors.Is(err, io.EOF) && off >= size) {
			return fmt.Errorf("read %s at %d: %w", in.Name(), off, err)
		}
	}
	return out.Truncate(size)
}

func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// ToDevice writes the file src over the block device dst from its start,
// holes as zeros, and syncs it. src must not be larger than the device.
func ToDevice(ctx context.Context, dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open copy source: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open device %s: %w", dst, err)
	}
	defer out.Close()
	size, err := in.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	dev, err := out.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("size of %s: %w", dst, err)
	}
	if size > dev {
		return fmt.Errorf("%s holds %d bytes, more than device %s (%d bytes)", src, size, dst, dev)
	}
	buf := make([]byte, chunk)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := in.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if n > 0 {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				return fmt.Errorf("write %s at %d: %w", dst, off, err)
			}
			off += int64(n)
		}
		if rerr != nil && !(errors.Is(rerr, io.EOF) && off >= size) {
			return fmt.Errorf("read %s at %d: %w", src, off, rerr)
		}
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dst, err)
	}
	return nil
}
