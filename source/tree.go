package source

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"

	"github.com/nodevirt/nodevirt/internal/srctree"
)

// ignoreFile is read from the repository root only; nested ignore files are
// not supported, which keeps the rule set visible in one place.
const ignoreFile = ".sourceignore"

// loadIgnore parses root/.sourceignore. A missing file matches nothing.
func loadIgnore(root string) (gitignore.Matcher, error) {
	f, err := os.Open(filepath.Join(root, ignoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return gitignore.NewMatcher(nil), nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ps []gitignore.Pattern
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		ps = append(ps, gitignore.ParsePattern(line, nil))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", ignoreFile, err)
	}
	return gitignore.NewMatcher(ps), nil
}

// isTempName reports the names editors and atomic-save helpers use for
// scratch files. They are never part of the tree and never trigger the
// watcher; "4913" is the file vim creates to probe whether a directory is
// writable.
func isTempName(name string) bool {
	switch {
	case name == "4913":
		return true
	case strings.HasSuffix(name, "~"), strings.HasSuffix(name, ".tmp"):
		return true
	case strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".swp") ||
		strings.HasSuffix(name, ".swo") || strings.HasSuffix(name, ".swx")):
		return true
	case strings.HasPrefix(name, ".#"): // emacs lock
		return true
	case len(name) > 1 && strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#"): // emacs autosave
		return true
	}
	return false
}

// excluded is the single definition of what is not part of a manifest tree;
// the Git publisher deletes what it returns true for, the digest and Files
// skip it. comps are the path components relative to the repository root.
func excluded(m gitignore.Matcher, comps []string, d fs.DirEntry) bool {
	name := d.Name()
	switch {
	case d.IsDir():
		return strings.HasPrefix(name, ".") || m.Match(comps, true)
	case d.Type().IsRegular(), d.Type()&fs.ModeSymlink != 0:
		// Symlinks stay: the readers follow or refuse them by the one
		// rule of internal/srctree, and the digest covers their text.
		return isTempName(name) || m.Match(comps, false)
	default: // sockets, devices, pipes: never part of a tree
		return true
	}
}

// walkTree calls fn for every file and symlink of the manifest tree below
// root/sub, in sorted order of rel (slash-separated, relative to root/sub);
// abs is the entry's path on disk. Symlinks are reported, not followed.
func walkTree(root, sub string, fn func(rel, abs string, link bool) error) error {
	m, err := loadIgnore(root)
	if err != nil {
		return err
	}
	// The root (or Path) may be a symlink, e.g. a deploy directory swapped
	// with "ln -sfn"; WalkDir would not follow it, so resolve it first.
	// Symlinks below it are still skipped.
	base, err := filepath.EvalSymlinks(filepath.Join(root, sub))
	if err != nil {
		return err
	}
	var subComps []string
	if sub != "" && sub != "." {
		subComps = strings.Split(filepath.ToSlash(sub), "/")
	}
	type entry struct {
		rel, abs string
		link     bool
	}
	var files []entry
	err = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == base {
			if !d.IsDir() {
				return fmt.Errorf("%s is not a directory", p)
			}
			return nil
		}
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		comps := append(append([]string(nil), subComps...), strings.Split(rel, "/")...)
		if excluded(m, comps, d) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0 {
			files = append(files, entry{rel, p, !d.Type().IsRegular()})
		}
		return nil
	})
	if err != nil {
		return err
	}
	// WalkDir's per-directory order puts "a/b" before "a.yaml"; the digest
	// is defined over plain sorted paths.
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	for _, f := range files {
		if err := fn(f.rel, f.abs, f.link); err != nil {
			return err
		}
	}
	return nil
}

// digestTree returns "sha256:<hex>" over the manifest tree below root/sub.
// Each file contributes "<rel>\x00<sha256 hex of content>\n"; each symlink
// "<rel>\x00@<link text>\x00<sha256 hex of the file it leads to>\n", the
// hash empty when the link is refused (it leaves the tree, dangles, or names
// a directory): so changing a link's target, or the content behind it, even
// outside root/sub, changes the digest, and nothing outside the tree is read.
// A path holds no NUL and a content hash is hex of fixed length, so no two
// trees share an input.
func digestTree(root, sub string) (string, error) {
	h := sha256.New()
	buf := make([]byte, 32*1024)
	hashFile := func(f *os.File, name string) (string, error) {
		fh := sha256.New()
		// Hide *os.File's WriteTo, which would ignore buf and allocate a
		// fresh 32 KiB buffer for every file.
		if _, err := io.CopyBuffer(fh, struct{ io.Reader }{f}, buf); err != nil {
			return "", fmt.Errorf("read %s: %w", name, err)
		}
		return hex.EncodeToString(fh.Sum(nil)), nil
	}
	err := walkTree(root, sub, func(rel, abs string, link bool) error {
		io.WriteString(h, rel)
		h.Write([]byte{0})
		if link {
			target, err := os.Readlink(abs)
			if err != nil {
				return err
			}
			h.Write([]byte{'@'})
			io.WriteString(h, target)
			h.Write([]byte{0})
			if f, err := srctree.Open(root, path.Join(filepath.ToSlash(sub), rel)); err == nil {
				sum, err := hashFile(f, abs)
				f.Close()
				if err != nil {
					return err
				}
				io.WriteString(h, sum)
			}
			h.Write([]byte{'\n'})
			return nil
		}
		f, err := os.Open(abs)
		if err != nil {
			return err
		}
		defer f.Close()
		sum, err := hashFile(f, abs)
		if err != nil {
			return err
		}
		io.WriteString(h, sum)
		h.Write([]byte{'\n'})
		return nil
	})
	if err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// pruneTree deletes from a fresh checkout everything that is not part of the
// manifest tree, .git included, so that the published directory and the
// Digest describe the same files.
func pruneTree(root string) error {
	m, err := loadIgnore(root)
	if err != nil {
		return err
	}
	var doomed []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if excluded(m, strings.Split(filepath.ToSlash(rel), "/"), d) {
			doomed = append(doomed, p)
			if d.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range doomed {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// resolveSub checks that root/sub is a directory that, after symlinks are
// resolved, still lies inside root.
func resolveSub(root, sub string) (string, error) {
	dir := filepath.Join(root, sub)
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("path %q does not exist", sub)
		}
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("path %q is not a directory", sub)
	}
	if sub == "" {
		return dir, nil
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(realRoot, realDir); err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("path %q resolves to %s, outside the root", sub, realDir)
	}
	return dir, nil
}
