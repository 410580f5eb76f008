// Package diag holds the one diagnostic type every stage of nodevirt reports with:
// file:line:col, the object (Kind namespace/name), the user-spelled field path and
// the message. It does no I/O and imports nothing from the rest of nodevirt.
package diag

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// Severity says whether a diagnostic blocks the object it names.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Diagnostic is one finding about user input.
type Diagnostic struct {
	Severity Severity `json:"severity"`
	File     string   `json:"file,omitempty"`
	Line     int      `json:"line,omitempty"`
	Col      int      `json:"column,omitempty"`
	// Object names the manifest object as "Kind namespace/name" (or "Kind name"
	// for cluster-scoped kinds); empty when the problem is the file itself.
	Object string `json:"object,omitempty"`
	// Path is the field path as the user spells it in YAML, e.g.
	// spec.template.spec.domain.devices.disks[0].name.
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
	// Err is the sentinel (or wrapped cause) for errors.Is; not serialised.
	Err error `json:"-"`
}

// Error renders the diagnostic the way compilers do: file:line:col: object: path: message.
func (d Diagnostic) Error() string {
	var b strings.Builder
	if d.File != "" {
		b.WriteString(d.File)
		if d.Line > 0 {
			fmt.Fprintf(&b, ":%d", d.Line)
			if d.Col > 0 {
				fmt.Fprintf(&b, ":%d", d.Col)
			}
		}
		b.WriteString(": ")
	}
	if d.Severity == Warning {
		b.WriteString("warning: ")
	}
	if d.Object != "" {
		b.WriteString(d.Object)
		b.WriteString(": ")
	}
	if d.Path != "" {
		b.WriteString(shorten(d.Path, maxPathShown))
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	return b.String()
}

// maxPathShown bounds the field path Error prints: a key may be a thousand
// characters long, and a report names the field rather than echoing it.
const maxPathShown = 160

// shorten keeps the start and end of s, at most n bytes in all, with "…"
// in place of the middle.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	head, tail := s[:n/2], s[len(s)-n/2:]
	for !utf8.ValidString(head) && head != "" {
		head = head[:len(head)-1]
	}
	for !utf8.ValidString(tail) && tail != "" {
		tail = tail[1:]
	}
	return head + "…" + tail
}

// Unwrap lets errors.Is match the rule's sentinel error.
func (d Diagnostic) Unwrap() error { return d.Err }

// List is an ordered collection of diagnostics.
type List []Diagnostic

// HasErrors reports whether any entry is an error (warnings do not count).
func (l List) HasErrors() bool {
	for _, d := range l {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// Errors returns only the error entries.
func (l List) Errors() List {
	var out List
	for _, d := range l {
		if d.Severity == Error {
			out = append(out, d)
		}
	}
	return out
}

// For returns the entries that name the given object.
func (l List) For(object string) List {
	var out List
	for _, d := range l {
		if d.Object == object {
			out = append(out, d)
		}
	}
	return out
}

// Sort orders entries by file, line, column, then message, so reports are stable.
func (l List) Sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return a.Message < b.Message
	})
}

// Err returns the list as one error when it holds errors, nil otherwise.
func (l List) Err() error {
	errs := l.Errors()
	if len(errs) == 0 {
		return nil
	}
	all := make([]error, len(errs))
	for i, d := range errs {
		all[i] = d
	}
	return errors.Join(all...)
}

// Errorf builds an error diagnostic.
func Errorf(object, path, format string, args ...any) Diagnostic {
	return Diagnostic{Severity: Error, Object: object, Path: path, Message: fmt.Sprintf(format, args...)}
}

// Warnf builds a warning diagnostic.
func Warnf(object, path, format string, args ...any) Diagnostic {
	return Diagnostic{Severity: Warning, Object: object, Path: path, Message: fmt.Sprintf(format, args...)}
}
