package manifests

import (
	"strconv"
	"strings"
)

// Field paths are spelled as users read YAML: dots between keys, [i] for list
// items. Keys that would make that ambiguous (label keys such as kubevirt.io/vm
// contain dots) are written as ["key"].

func joinKey(parent, key string) string {
	if key == "" || strings.ContainsAny(key, `.[]"`) {
		return parent + "[" + strconv.Quote(key) + "]"
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func joinIndex(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// parentPath drops the last segment: a.b[2].c -> a.b[2] -> a.b -> a -> "".
func parentPath(p string) string {
	last := 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '.':
			last = i
		case '[':
			last = i
			if i+1 < len(p) && p[i+1] == '"' {
				// Skip the quoted key so dots inside it are not boundaries.
				j := i + 2
				for j < len(p) && p[j] != '"' {
					if p[j] == '\\' {
						j++
					}
					j++
				}
				i = j
			}
		}
	}
	return p[:last]
}
