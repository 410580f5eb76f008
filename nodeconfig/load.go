package nodeconfig

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nodevirt/nodevirt/internal/srctree"
	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
)

// ButaneFile is one *.bu file of the source.
type ButaneFile struct {
	// File is slash-separated and relative to the source directory.
	File string
	Data []byte
}

// LoadButane reads every *.bu file under dir, recursively, skipping hidden
// files and directories as manifests.Load does. Unreadable files are
// diagnostics. dir is taken as the whole source tree; see LoadButaneIn.
func LoadButane(dir string) ([]ButaneFile, diag.List) {
	return LoadButaneIn(dir, dir)
}

// LoadButaneIn is LoadButane for a dir inside the source tree root: a *.bu
// symlink is read when it leads to a file inside root and refused by name
// otherwise (internal/srctree), so a Butane file linked to a host file is
// never read. Files over manifests.MaxFileBytes are refused.
func LoadButaneIn(root, dir string) ([]ButaneFile, diag.List) {
	var out []ButaneFile
	var diags diag.List
	if dir == "" {
		return nil, nil
	}
	prefix, err := filepath.Rel(root, dir)
	if err != nil || !filepath.IsLocal(prefix) {
		return nil, diag.List{{Severity: diag.Error, Message: fmt.Sprintf("read Butane files: %s is not inside the source tree %s", dir, root)}}
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		rel := relSlash(dir, p)
		if err != nil {
			diags = append(diags, diag.Diagnostic{Severity: diag.Error, File: rel, Message: "read Butane file: " + err.Error(), Err: err})
			return nil
		}
		hidden := p != dir && strings.HasPrefix(d.Name(), ".")
		if d.IsDir() {
			if hidden {
				return filepath.SkipDir
			}
			return nil
		}
		if hidden || filepath.Ext(p) != ".bu" {
			return nil
		}
		data, err := srctree.ReadFile(root, path.Join(filepath.ToSlash(prefix), rel), manifests.MaxFileBytes)
		if err != nil {
			diags = append(diags, diag.Diagnostic{Severity: diag.Error, File: rel, Message: "read Butane file: " + err.Error(), Err: err})
			return nil
		}
		out = append(out, ButaneFile{File: rel, Data: data})
		return nil
	})
	if err != nil {
		diags = append(diags, diag.Diagnostic{Severity: diag.Error, Message: fmt.Sprintf("read Butane files under %s: %v", dir, err), Err: err})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out, diags
}

func relSlash(root, p string) string {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		rel = p
	}
	return filepath.ToSlash(rel)
}
