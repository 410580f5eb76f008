// Package srctree is the one rule for reading a file of a source tree (the
// directory or git checkout nodevirt takes its desired state from), shared by
// the source's digest, the manifest walk and Butane's local files:
//
//   - a symlink is followed when its target, read relative to the link's
//     directory, stays inside the tree, outside hidden directories (which are
//     never part of a tree: .git holds credentials), and ends at a regular
//     file;
//   - an absolute target, or a relative one that climbs out with "..", is
//     refused with an error naming the link; nothing behind it is read;
//   - a symlink to a directory is not followed (a walk would otherwise visit
//     files twice or loop).
//
// Files are opened through os.Root, so a link swapped between the check and
// the open still cannot lead out of the tree. It must not import the rest of
// nodevirt.
package srctree

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// The reasons a path is refused; LinkError wraps one of them.
var (
	ErrEscapes = errors.New("leads outside the source tree")
	ErrHidden  = errors.New("leads into a hidden directory, which is not part of the source tree")
	ErrDirLink = errors.New("points to a directory; symlinks to directories are not followed")
	ErrLoop    = errors.New("too many levels of symlinks")
)

// LinkError names the symlink that made a path unreadable.
type LinkError struct {
	// Link is the symlink, slash-separated and relative to the tree.
	Link string
	// Target is the link's text as stored, never what it points to.
	Target string
	Err    error
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("symlink %s (to %q) %v; it is not read", e.Link, e.Target, e.Err)
}

func (e *LinkError) Unwrap() error { return e.Err }

// maxLinks bounds link chains as the kernel does (MAXSYMLINKS).
const maxLinks = 40

// Resolve returns where rel (slash-separated, relative to root) leads inside
// the tree after following its symlinks by the package rule, as a cleaned
// slash path relative to root, and the Lstat of that final entry. Only link
// texts and directory entries are looked at; no file is opened.
func Resolve(root, rel string) (string, fs.FileInfo, error) {
	if !filepath.IsLocal(filepath.FromSlash(rel)) {
		return "", nil, fmt.Errorf("path %q %w", rel, ErrEscapes)
	}
	todo := strings.Split(path.Clean(rel), "/")
	cur := "" // resolved so far: no symlinks in it
	links := 0
	// The error names the first link on rel, the one the caller can see,
	// and the one it led to when another link took the path out.
	var first, last *LinkError
	refuse := func(err error) (string, fs.FileInfo, error) {
		if first == nil {
			return "", nil, fmt.Errorf("path %q %w", rel, err)
		}
		if last != first {
			err = fmt.Errorf("%w (through symlink %s to %q)", err, last.Link, last.Target)
		}
		return "", nil, &LinkError{Link: first.Link, Target: first.Target, Err: err}
	}
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			// cur holds no links, so ".." is lexical.
			if cur == "" {
				return refuse(ErrEscapes)
			}
			cur = strings.TrimPrefix(path.Dir("/"+cur), "/")
			continue
		}
		next := path.Join(cur, c)
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(next)))
		if err != nil {
			return "", nil, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		target, err := os.Readlink(filepath.Join(root, filepath.FromSlash(next)))
		if err != nil {
			return "", nil, err
		}
		last = &LinkError{Link: next, Target: target}
		if first == nil {
			first = last
		}
		if links++; links > maxLinks {
			return refuse(ErrLoop)
		}
		if filepath.IsAbs(target) {
			return refuse(ErrEscapes)
		}
		todo = append(strings.Split(filepath.ToSlash(target), "/"), todo...)
		// cur stays: the target is read relative to the link's directory.
	}
	if inHiddenDir(cur) {
		return refuse(ErrHidden)
	}
	fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(cur)))
	if err != nil {
		return "", nil, err
	}
	if cur == "" {
		cur = "."
	}
	return cur, fi, nil
}

// inHiddenDir reports whether a cleaned relative path lies below a directory
// whose name starts with "." (a git checkout never holds those; hidden files
// themselves are part of the tree).
func inHiddenDir(p string) bool {
	dirs := strings.Split(p, "/")
	for _, c := range dirs[:len(dirs)-1] {
		if strings.HasPrefix(c, ".") {
			return true
		}
	}
	return false
}

// Open opens the regular file rel of the tree at root for reading, following
// symlinks by the package rule. A symlink to a directory is refused with
// ErrDirLink, any other non-regular file with an error naming it.
func Open(root, rel string) (*os.File, error) {
	real, fi, err := Resolve(root, rel)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		if fi.IsDir() {
			if link, target, ok := firstLink(root, rel); ok {
				return nil, &LinkError{Link: link, Target: target, Err: ErrDirLink}
			}
		}
		return nil, fmt.Errorf("%s is not a regular file", rel)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// The resolved path has no symlinks left; os.Root refuses any that
	// appeared since, should they lead out.
	f, err := r.Open(filepath.FromSlash(real))
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", rel)
	}
	return f, nil
}

// firstLink names the first symlink on rel, for errors about where it led.
func firstLink(root, rel string) (string, string, bool) {
	cur := ""
	for _, c := range strings.Split(path.Clean(rel), "/") {
		cur = path.Join(cur, c)
		if t, err := os.Readlink(filepath.Join(root, filepath.FromSlash(cur))); err == nil {
			return cur, t, true
		}
	}
	return "", "", false
}

// ReadFile reads the regular file rel of the tree at root (see Open),
// refusing one larger than limit bytes (limit <= 0: no limit) before holding
// it in memory.
func ReadFile(root, rel string, limit int64) ([]byte, error) {
	f, err := Open(root, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if limit > 0 {
		r = io.LimitReader(f, limit+1)
	}
	// Sized from the file as os.ReadFile does, so a large manifest is read
	// into one buffer rather than grown into one copy by copy. The size is
	// a hint: a file that grows meanwhile is still read to its end.
	size := 512
	if st, err := f.Stat(); err == nil && st.Size() < math.MaxInt32 {
		size += int(st.Size())
	}
	if limit > 0 && int64(size) > limit+1 {
		size = int(limit + 1)
	}
	var buf bytes.Buffer
	buf.Grow(size)
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	if limit > 0 && int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d MiB", rel, limit>>20)
	}
	return data, nil
}

// CheckDir checks that rel is a directory of the tree reached without a
// symlink: a link to a directory is refused (ErrDirLink) as Open refuses
// one, so a reader that walks rel (Butane's storage.trees) stays inside.
func CheckDir(root, rel string) error {
	real, fi, err := Resolve(root, rel)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", rel)
	}
	if real != path.Clean(rel) {
		if link, target, ok := firstLink(root, rel); ok {
			return &LinkError{Link: link, Target: target, Err: ErrDirLink}
		}
	}
	return nil
}
