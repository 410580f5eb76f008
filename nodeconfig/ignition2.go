package nodeconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/coreos/go-semver/semver"
	"github.com/coreos/ign-converter/translate/v24tov31"
	converr "github.com/coreos/ign-converter/util"
	ign2errors "github.com/coreos/ignition/config/shared/errors"
	ign2 "github.com/coreos/ignition/config/v2_4"
	ign2types "github.com/coreos/ignition/config/v2_4/types"
	ign2report "github.com/coreos/ignition/config/validate/report"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// ErrSpec2 marks a spec 2 Ignition config that does not translate to spec 3.
var ErrSpec2 = errors.New("Ignition spec 2 config does not translate to spec 3")

// spec2FS maps spec 2 file system names to spec 3 mount points. As for the
// Machine Config Operator, only the root file system exists.
var spec2FS = map[string]string{"root": "/"}

// quietSpec2Warnings are spec 2 parser warnings that do not hold after
// translation: a file without a mode is written 0644 (the spec 3 default the
// Machine Config Daemon uses), not 0000; create is refused by field.
var quietSpec2Warnings = map[string]bool{
	ign2errors.ErrPermissionsUnset.Error():        true,
	ign2errors.ErrWarningCreateDeprecated.Error(): true,
}

// spec2Version returns the config's ignition.version when its major
// version is 2 (the spec 2 parser reads 2.0.0 to 2.4.0 and names the
// versions it reads for any other).
func spec2Version(raw json.RawMessage) (string, bool) {
	var head struct {
		Ignition struct {
			Version string `json:"version"`
		} `json:"ignition"`
	}
	if json.Unmarshal(raw, &head) != nil {
		return "", false
	}
	v, err := semver.NewVersion(head.Ignition.Version)
	if err != nil || v.Major != 2 {
		return "", false
	}
	return head.Ignition.Version, true
}

// spec2 is what translating a spec 2 config left behind for placing later
// diagnostics: files and units may have been deduplicated (and reordered)
// as the Machine Config Operator does, so a spec 3 index names another
// entry of the source.
type spec2 struct {
	files map[int]int // spec 3 storage.files index -> spec 2 index
	units map[int]int // spec 3 systemd.units index -> spec 2 index
}

// path turns a path in the translated spec 3 config into the spec 2 path
// the user wrote.
func (s *spec2) path(p string) string {
	if s == nil {
		return p
	}
	if m := indexed.FindStringSubmatch(p); m != nil {
		i, _ := strconv.Atoi(m[2])
		idx := s.files
		if m[1] == "systemd.units" {
			idx = s.units
		}
		if j, ok := idx[i]; ok {
			i = j
		}
		p = fmt.Sprintf("%s[%d]%s", m[1], i, m[3])
	}
	if rest, ok := strings.CutPrefix(p, "ignition.config.merge"); ok {
		return "ignition.config.append" + rest
	}
	return p
}

// translateSpec2 parses a spec 2.0–2.4 config and translates it to spec 3.1
// with the Machine Config Operator's converter (github.com/coreos/ign-converter),
// first dropping duplicate files and units as the operator does (the later
// entry wins; a unit's drop-ins merge). Spec 2 features spec 3 has no form for
// are refused by field: networkd units, file systems other than root,
// deprecated fields. The result is spec 3.1 JSON for the spec 3 parser.
func (r *rendered) translateSpec2(raw json.RawMessage, version string) (json.RawMessage, bool) {
	g := r.g
	// The spec 2 parser reports lines and columns of its input: indent it so
	// that each line holds one field, and the line names the field's path.
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		r.diags = append(r.diags, g.errorf(g.ign(""), "%w: %v", ErrIgnition, err))
		return nil, false
	}
	src := buf.Bytes()
	lines := jsonLinePaths(src)
	at := func(e ign2report.Entry) string {
		if e.Line > 0 && e.Line <= len(lines) {
			return lines[e.Line-1]
		}
		return ""
	}
	cfg, rep, err := ign2.Parse(src)
	failed := false
	for _, e := range rep.Entries {
		switch e.Kind {
		case ign2report.EntryError:
			failed = true
			r.diags = append(r.diags, g.errorf(g.ign(at(e)), "%w: %s", ErrIgnition, e.Message))
		case ign2report.EntryDeprecated:
			// ign-converter refuses deprecated fields: spec 3 dropped them.
			failed = true
			r.diags = append(r.diags, g.errorf(g.ign(at(e)), "%w: %s (deprecated in spec 2 and gone in spec 3; use its replacement)", ErrSpec2, e.Message))
		case ign2report.EntryWarning:
			if quietSpec2Warnings[e.Message] {
				continue
			}
			r.diags = append(r.diags, g.warnf(g.ign(at(e)), "%w: %s", ErrIgnition, e.Message))
		}
	}
	if err != nil {
		if !failed {
			p := ""
			if errors.Is(err, ign2errors.ErrUnknownVersion) {
				p = "ignition.version"
				err = fmt.Errorf("%w %s (nodevirt reads Ignition spec 2.0.0 to 2.4.0 and 3.0.0 to 3.6.0)", err, version)
			}
			r.diags = append(r.diags, g.errorf(g.ign(p), "%w: %v", ErrIgnition, err))
		}
		return nil, false
	}
	if ok := r.checkSpec2(cfg); failed || !ok {
		r.draftSpec2(cfg)
		return nil, false
	}
	cfg, s, err := dedupeSpec2(cfg)
	if err != nil {
		r.diags = append(r.diags, g.errorf(g.ign("storage.files"), "%w: %v", ErrSpec2, err))
		return nil, false
	}
	g.spec2 = s
	out, err := v24tov31.Translate(cfg, copyMap(spec2FS))
	if err != nil {
		r.diags = append(r.diags, r.spec2Error(err))
		return nil, false
	}
	js, err := json.Marshal(out)
	if err != nil {
		r.diags = append(r.diags, g.errorf(g.ign(""), "%w: %v", ErrSpec2, err))
		return nil, false
	}
	return js, true
}

// draftSpec2 translates a spec 2 config that was refused with what spec 3
// cannot say taken out (networkd units, file systems and what lies on
// them, deprecated fields), so that nodevirt's own checks report the rest
// in the same pass. What it renders is dropped.
func (r *rendered) draftSpec2(cfg ign2types.Config) {
	onRoot := func(fs string) bool { _, ok := spec2FS[fs]; return ok }
	cfg.Networkd = ign2types.Networkd{}
	cfg.Storage.Filesystems = nil
	var files []ign2types.File
	var kept []int // draft file index -> source index
	for i, f := range cfg.Storage.Files {
		if onRoot(f.Filesystem) {
			files = append(files, f)
			kept = append(kept, i)
		}
	}
	cfg.Storage.Files = files
	var dirs []ign2types.Directory
	for _, d := range cfg.Storage.Directories {
		if onRoot(d.Filesystem) {
			dirs = append(dirs, d)
		}
	}
	cfg.Storage.Directories = dirs
	var links []ign2types.Link
	for _, l := range cfg.Storage.Links {
		if onRoot(l.Filesystem) {
			links = append(links, l)
		}
	}
	cfg.Storage.Links = links
	for i := range cfg.Storage.Disks {
		for j := range cfg.Storage.Disks[i].Partitions {
			cfg.Storage.Disks[i].Partitions[j].Size = nil
			cfg.Storage.Disks[i].Partitions[j].Start = nil
		}
	}
	for i := range cfg.Passwd.Users {
		cfg.Passwd.Users[i].Create = nil
	}
	n := len(cfg.Storage.Files)
	cfg, s, err := dedupeSpec2(cfg)
	if err != nil {
		return
	}
	for i := 0; i < n; i++ {
		j, ok := s.files[i]
		if !ok {
			j = i
		}
		if j < len(kept) {
			s.files[i] = kept[j]
		}
	}
	out, err := v24tov31.Translate(cfg, copyMap(spec2FS))
	if err != nil {
		return
	}
	js, err := json.Marshal(out)
	if err != nil {
		return
	}
	r.g.spec2 = s
	r.checkDraft(js)
}

// checkSpec2 refuses, by field, what the converter would refuse with a
// message that names no field.
func (r *rendered) checkSpec2(cfg ign2types.Config) bool {
	g := r.g
	ok := true
	if len(cfg.Networkd.Units) > 0 {
		r.diags = append(r.diags, g.errorf(g.ign("networkd.units"), "%w: networkd units have no spec 3 form; write them as files under /etc/systemd/network", ErrSpec2))
		ok = false
	}
	for i, fs := range cfg.Storage.Filesystems {
		at := fmt.Sprintf("storage.filesystems[%d]", i)
		switch {
		case fs.Mount != nil && fs.Mount.Create != nil:
			r.diags = append(r.diags, g.errorf(g.ign(at+".mount.create"), "%w: the create object (deprecated in spec 2) has no spec 3 form, and creating file systems is refused, as by the Machine Config Daemon", ErrSpec2))
			ok = false
			continue
		case fs.Name == "root" && fs.Mount != nil:
			r.diags = append(r.diags, g.errorf(g.ign(at+".mount"), "%w: spec 3 has no entry for the root file system (the converter would drop it silently), and formatting file systems is refused, as by the Machine Config Daemon", ErrSpec2))
			ok = false
			continue
		}
		if _, known := spec2FS[fs.Name]; !known {
			r.diags = append(r.diags, g.errorf(g.ign(fmt.Sprintf("storage.filesystems[%d].name", i)), "%w: file system %q: spec 3 has no named file systems, and only \"root\" maps to a path (/), as for the Machine Config Operator", ErrSpec2, fs.Name))
			ok = false
		}
	}
	for _, list := range []struct {
		field string
		fs    []string
	}{
		{"storage.files", nodeFS(cfg.Storage.Files, func(f ign2types.File) string { return f.Filesystem })},
		{"storage.directories", nodeFS(cfg.Storage.Directories, func(d ign2types.Directory) string { return d.Filesystem })},
		{"storage.links", nodeFS(cfg.Storage.Links, func(l ign2types.Link) string { return l.Filesystem })},
	} {
		for i, name := range list.fs {
			if _, known := spec2FS[name]; !known {
				r.diags = append(r.diags, g.errorf(g.ign(fmt.Sprintf("%s[%d].filesystem", list.field, i)), "%w: file system %q: only \"root\" maps to a path in spec 3, as for the Machine Config Operator", ErrSpec2, name))
				ok = false
			}
		}
	}
	return ok
}

func nodeFS[T any](items []T, fs func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = fs(it)
	}
	return out
}

// dedupeSpec2 drops repeated files and units, as the Machine Config
// Operator does before translating (spec 2 allowed them, spec 3 does not),
// and records which source entry each kept one is.
func dedupeSpec2(cfg ign2types.Config) (ign2types.Config, *spec2, error) {
	s := &spec2{files: map[int]int{}, units: map[int]int{}}
	dupFiles, dupUnits := false, false
	seen := map[string]bool{}
	for _, f := range cfg.Storage.Files {
		dupFiles = dupFiles || seen[f.Path]
		seen[f.Path] = true
	}
	seen = map[string]bool{}
	for _, u := range cfg.Systemd.Units {
		dupUnits = dupUnits || seen[u.Name]
		seen[u.Name] = true
	}
	if dupFiles || dupUnits || hasDupUsers(cfg) {
		files, units := cfg.Storage.Files, cfg.Systemd.Units
		out, err := v24tov31.RemoveDuplicateFilesUnitsUsers(cfg)
		if err != nil {
			return cfg, nil, err
		}
		// The kept entry is the last one of its path or name.
		for i, f := range out.Storage.Files {
			for j := len(files) - 1; j >= 0; j-- {
				if files[j].Path == f.Path {
					s.files[i] = j
					break
				}
			}
		}
		for i, u := range out.Systemd.Units {
			for j := len(units) - 1; j >= 0; j-- {
				if units[j].Name == u.Name {
					s.units[i] = j
					break
				}
			}
		}
		cfg = out
	}
	return cfg, s, nil
}

func hasDupUsers(cfg ign2types.Config) bool {
	seen := map[string]bool{}
	for _, u := range cfg.Passwd.Users {
		if seen[u.Name] {
			return true
		}
		seen[u.Name] = true
	}
	return false
}

// spec2Error places a converter error on the field it is about.
func (r *rendered) spec2Error(err error) diag.Diagnostic {
	g := r.g
	var (
		dupUnit   converr.DuplicateUnitError
		dupDropin converr.DuplicateDropinError
		noFS      converr.NoFilesystemError
	)
	p := ""
	switch {
	case errors.As(err, &dupUnit):
		p = "systemd.units"
	case errors.As(err, &dupDropin):
		p = "systemd.units"
	case errors.As(err, &noFS):
		p = "storage.filesystems"
	case errors.Is(err, converr.UsesNetworkdError):
		p = "networkd"
	default:
		var inode converr.DuplicateInodeError
		var inodeP *converr.DuplicateInodeError
		var link *converr.UsesOwnLinkError
		if errors.As(err, &inode) || errors.As(err, &inodeP) || errors.As(err, &link) {
			p = "storage"
		}
	}
	return g.errorf(g.ign(p), "%w: %v", ErrSpec2, err)
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// jsonLinePaths returns, for each line of JSON indented by json.Indent, the
// path of the field or element that starts on it (storage.files[0].mode),
// or its container's path for closing lines.
func jsonLinePaths(src []byte) []string {
	type frame struct {
		path  string
		array bool
		next  int
	}
	var stack []frame
	child := func(key string, isKey bool) string {
		if len(stack) == 0 {
			return ""
		}
		top := &stack[len(stack)-1]
		if !isKey {
			p := fmt.Sprintf("%s[%d]", top.path, top.next)
			top.next++
			return p
		}
		if top.path == "" {
			return key
		}
		return top.path + "." + key
	}
	var out []string
	for _, line := range strings.Split(string(src), "\n") {
		t := strings.TrimSpace(line)
		t = strings.TrimSuffix(t, ",")
		cur := ""
		if len(stack) > 0 {
			cur = stack[len(stack)-1].path
		}
		switch {
		case t == "}" || t == "]":
			out = append(out, cur)
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			continue
		case len(stack) == 0:
			out = append(out, "")
			if t == "{" || t == "[" {
				stack = append(stack, frame{array: t == "["})
			}
			continue
		}
		p, value := "", t
		if !stack[len(stack)-1].array {
			if key, rest, ok := splitKey(t); ok {
				p, value = child(key, true), rest
			}
		} else {
			p = child("", false)
		}
		out = append(out, p)
		if value == "{" || value == "[" {
			stack = append(stack, frame{path: p, array: value == "["})
		}
	}
	return out
}

// splitKey splits `"key": value` into the unquoted key and the value.
func splitKey(t string) (string, string, bool) {
	if !strings.HasPrefix(t, `"`) {
		return "", "", false
	}
	for i := 1; i < len(t); i++ {
		switch t[i] {
		case '\\':
			i++
		case '"':
			key, err := strconv.Unquote(t[:i+1])
			if err != nil {
				return "", "", false
			}
			rest := strings.TrimSpace(strings.TrimPrefix(t[i+1:], ":"))
			return key, rest, true
		}
	}
	return "", "", false
}
