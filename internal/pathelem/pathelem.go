// Package pathelem is the one gate between object names and host paths: a
// name from a manifest (namespace, VM, volume, claim) becomes part of a path
// on the host only as a single, clean path element. Manifest validation
// already keeps such names to DNS-1123 rules; this is the second wall, so a
// name that slipped past validation (a bug, an old state record, a domain's
// metadata written by hand) can never climb out of its directory or name a
// parent ("..") that a recursive remove would then empty.
package pathelem

import (
	"errors"
	"fmt"
	"path/filepath"
)

// ErrNotElement marks a string refused as a path element.
var ErrNotElement = errors.New("not a single clean path element")

// maxLen is NAME_MAX on Linux file systems.
const maxLen = 255

// Check accepts exactly one clean path element: non-empty, not "." or "..",
// at most 255 bytes, without "/", NUL or other control characters (which
// would make paths in logs and domain XML ambiguous).
func Check(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty", ErrNotElement)
	case s == "." || s == "..":
		return fmt.Errorf("%w: %q names a directory itself or its parent", ErrNotElement, s)
	case len(s) > maxLen:
		return fmt.Errorf("%w: %d bytes is longer than %d", ErrNotElement, len(s), maxLen)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '/':
			return fmt.Errorf("%w: %q contains \"/\"", ErrNotElement, s)
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("%w: %q contains a control character", ErrNotElement, s)
		}
	}
	return nil
}

// Join returns dir with each element appended, after Check accepts every
// element; dir itself is trusted (it comes from flags, not manifests).
func Join(dir string, elems ...string) (string, error) {
	for _, e := range elems {
		if err := Check(e); err != nil {
			return "", err
		}
	}
	return filepath.Join(append([]string{dir}, elems...)...), nil
}
