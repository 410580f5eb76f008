package main

import (
	"path"
	"path/filepath"

	"github.com/nodevirt/nodevirt/internal/srctree"
	"github.com/nodevirt/nodevirt/manifests"
)

// sourceText returns the reader diag.Fprint quotes source lines with, for
// files named relative to dir inside the source tree: it reads by the
// tree's symlink rule, so an excerpt never shows a host file a link points
// to. tree "" means dir.
func sourceText(tree, dir string) func(file string) []byte {
	if tree == "" {
		tree = dir
	}
	prefix, err := filepath.Rel(tree, dir)
	if err != nil || !filepath.IsLocal(prefix) {
		return nil
	}
	return func(file string) []byte {
		b, err := srctree.ReadFile(tree, path.Join(filepath.ToSlash(prefix), file), manifests.MaxFileBytes)
		if err != nil {
			return nil
		}
		return b
	}
}
