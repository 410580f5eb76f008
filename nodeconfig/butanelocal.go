package nodeconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"go.yaml.in/yaml/v3"

	"github.com/nodevirt/nodevirt/internal/srctree"
	"github.com/nodevirt/nodevirt/manifests/diag"
)

// ErrLocalFile marks a Butane local file (contents.local, contents_local,
// ssh_authorized_keys_local, storage.trees[].local) refused by the source
// tree's symlink rule.
var ErrLocalFile = errors.New("Butane local file refused")

// checkLocalFiles applies the source tree's symlink rule (internal/srctree)
// to every local file a Butane file names, before Butane reads them: Butane
// only checks that the path stays inside its files directory as written, then
// follows any symlink on it, so a link in the repository to a host file would
// be installed on the host. dir is the Butane file's directory, relative to
// root. Paths that do not exist are left to Butane, which reports them.
func checkLocalFiles(file string, data []byte, root, dir string) diag.List {
	var out diag.List
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if dec.Decode(&doc) != nil || len(doc.Content) == 0 {
		return nil // Butane reports the syntax
	}
	check := func(key, val *yaml.Node, p string, tree bool) {
		for val.Kind == yaml.AliasNode && val.Alias != nil {
			val = val.Alias
		}
		if val.Kind != yaml.ScalarNode || val.Value == "" {
			return
		}
		rel := path.Join(dir, val.Value)
		var err error
		if tree {
			err = srctree.CheckDir(root, rel)
		} else {
			var f interface{ Close() error }
			if f, err = srctree.Open(root, rel); err == nil {
				f.Close()
			}
		}
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return
		}
		e := fmt.Errorf("%w: %q: %w", ErrLocalFile, val.Value, err)
		out = append(out, diag.Diagnostic{Severity: diag.Error, File: file, Line: key.Line, Col: key.Column, Path: p, Message: e.Error(), Err: e})
	}
	var walk func(n *yaml.Node, p string, inTrees bool)
	walk = func(n *yaml.Node, p string, inTrees bool) {
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				kp := k.Value
				if p != "" {
					kp = p + "." + k.Value
				}
				switch k.Value {
				case "local", "contents_local":
					check(k, v, kp, inTrees && k.Value == "local")
				case "ssh_authorized_keys_local":
					if v.Kind == yaml.SequenceNode {
						for j, item := range v.Content {
							check(item, item, fmt.Sprintf("%s[%d]", kp, j), false)
						}
					}
				default:
					walk(v, kp, false)
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				// storage.trees[i].local names a directory.
				walk(c, fmt.Sprintf("%s[%d]", p, i), p == "storage.trees")
			}
		}
	}
	walk(doc.Content[0], "", false)
	return out
}
