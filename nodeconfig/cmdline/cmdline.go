// Package cmdline splits kernel command lines the way the Machine Config
// Daemon does. It is a leaf shared by nodeconfig (kernelArguments in
// manifests) and runtime/kargs (/proc/cmdline, boot-loader files), and must
// import nothing from nodevirt.
package cmdline

import "strings"

// Split splits on white space, keeping double-quoted values together, so
// "a=1 b" is two arguments and `c="x y"` one.
func Split(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case (r == ' ' || r == '\t' || r == '\n') && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}
