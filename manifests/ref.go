package manifests

import (
	"fmt"
	"maps"
	"strings"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// Ref identifies an object the way kubectl prints it.
type Ref struct{ Kind, Namespace, Name string }

// String renders "Kind namespace/name", or "Kind name" for cluster-scoped kinds;
// it is the Object field of every diagnostic about the object.
func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// Object is one decoded document.
type Object struct {
	Ref        Ref
	APIVersion string
	// File is slash-separated and relative to the loaded root.
	File string
	// Line and Col are where the document starts.
	Line, Col           int
	Labels, Annotations map[string]string
	// Value is a typed pointer (e.g. *kubevirtv1.VirtualMachine) or nil when the
	// document could not be decoded. VirtualMachine templates and
	// VirtualMachineInstance specs carry KubeVirt's defaults (see Default). A
	// VirtualMachine that references an instancetype or preference has them
	// applied to its template first (defaults applied earlier would shadow
	// what they provide); when that fails the object is invalid and its
	// template is left as written.
	Value any
	// Valid is false when any error diagnostic names this object.
	Valid bool
	// Encrypted: the document was SOPS-encrypted in the repository and
	// decrypted on load (Options.Decrypt).
	Encrypted bool

	pos map[string]position // user path -> where it is written
}

// position is where a node is written. Every node of every document has one
// until validate's report is printed; int32 keeps the map a third smaller.
type position struct{ line, col int32 }

// Pos returns where path is written in the document, or where its nearest
// existing ancestor is (a defaulted disk has no line of its own, its list does).
// Paths are spelled like spec.template.spec.domain.devices.disks[1].name.
func (o *Object) Pos(path string) (line, col int) {
	for p := path; ; p = parentPath(p) {
		if at, ok := o.pos[p]; ok {
			return int(at.line), int(at.col)
		}
		if p == "" {
			return o.Line, o.Col
		}
	}
}

// Errorf returns an error diagnostic about path. Use %w with a rule's sentinel
// so callers can match it with errors.Is.
func (o *Object) Errorf(path, format string, args ...any) diag.Diagnostic {
	return o.diagnostic(diag.Error, path, fmt.Errorf(format, args...))
}

// Warnf returns a warning diagnostic about path.
func (o *Object) Warnf(path, format string, args ...any) diag.Diagnostic {
	return o.diagnostic(diag.Warning, path, fmt.Errorf(format, args...))
}

func (o *Object) diagnostic(sev diag.Severity, path string, err error) diag.Diagnostic {
	line, col := o.Pos(path)
	return diag.Diagnostic{
		Severity: sev,
		File:     o.File,
		Line:     line,
		Col:      col,
		Object:   o.Ref.String(),
		Path:     path,
		Message:  err.Error(),
		Err:      err,
	}
}

// aliasPositions makes the paths under from also known under to (same
// suffix), where to is not written itself: a converted object's later
// diagnostics name the converted paths, and still point at the document.
func (o *Object) aliasPositions(from, to string) {
	if _, written := o.pos[to]; written {
		return
	}
	add := map[string]position{}
	for p, at := range o.pos {
		if rest, ok := strings.CutPrefix(p, from); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
			add[to+rest] = at
		}
	}
	maps.Copy(o.pos, add)
}
