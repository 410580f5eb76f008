// Package butane is nodevirt's only door to github.com/coreos/butane: it
// translates one Butane file (variant openshift 4.8–4.22 or fcos) into the
// Ignition config and the MachineConfig fields it carries, and turns Butane's
// report into diagnostics with file:line:col and the user-spelled field path.
// A Result also maps paths of its output back to the field the file wrote
// (Result.Source), with Butane's own translation set, so errors found later
// on what sugar made (boot_device.luks makes storage.luks) name the sugar.
//
// Butane is archived upstream and moves into github.com/coreos/ignition/v2;
// keeping it behind this one package means the import move touches nothing
// else.
// The translation never uses Butane's Raw mode, which drops
// openshift.kernel_arguments. It must not import the rest of nodevirt except
// manifests/diag.
package butane

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/coreos/butane/config"
	"github.com/coreos/butane/config/common"
	"github.com/coreos/vcontext/path"
	"github.com/coreos/vcontext/report"
	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// ErrButane marks every diagnostic that Butane itself reported.
var ErrButane = errors.New("butane")

// ErrVariant marks a variant or version nodevirt does not take.
var ErrVariant = errors.New("unsupported Butane variant")

// Result is one translated Butane file.
type Result struct {
	Variant string
	Version string
	// Name and Labels are metadata.name and metadata.labels (openshift only).
	Name   string
	Labels map[string]string
	// Ignition is the Ignition config as JSON (spec.config for openshift).
	Ignition json.RawMessage
	// KernelArguments is openshift.kernel_arguments (spec.kernelArguments);
	// fcos files carry theirs inside the Ignition config.
	KernelArguments []string
	Extensions      []string
	FIPS            bool
	KernelType      string

	src *sources
}

// Options are the translation's settings besides the source.
type Options struct {
	// FilesDir is where contents.local and trees are resolved ("" refuses
	// them).
	FilesDir string
	// Line and Indent place a Butane config embedded in a larger file (a
	// YAML block scalar): its first line is the file's line Line, and each
	// of its lines is indented by Indent columns. Zero: the file is the
	// config.
	Line, Indent int
}

// place turns a line and column of the Butane config into the file's.
func (o Options) place(line, col int) (int, int) {
	if line <= 0 {
		return 0, 0
	}
	if o.Line > 1 {
		line += o.Line - 1
	}
	if col > 0 {
		col += o.Indent
	}
	return line, col
}

// Translate translates data, the content of file (named in diagnostics).
// Warnings come back with a Result; any error diagnostic means no Result.
// Diagnostics name the field the user wrote, also for errors Butane finds in
// the config its sugar made (boot_device.luks, not storage.luks), and the
// Result maps later diagnostics on the output back the same way (Source).
func Translate(file string, data []byte, opts Options) (*Result, diag.List) {
	var head struct {
		Variant string `yaml:"variant"`
		Version string `yaml:"version"`
	}
	if err := yaml.Unmarshal(data, &head); err != nil {
		return nil, diag.List{syntaxDiag(file, err, opts)}
	}
	if d, ok := checkVariant(file, data, head.Variant, head.Version, opts); !ok {
		return nil, diag.List{d}
	}
	out, rep, err := config.TranslateBytes(data, common.TranslateBytesOptions{
		TranslateOptions: common.TranslateOptions{FilesDir: opts.FilesDir, NoResourceAutoCompression: true},
	})
	diags := reportDiags(file, rep, opts)
	if err != nil {
		if !diags.HasErrors() {
			d := diag.Diagnostic{Severity: diag.Error, File: file, Message: "butane: " + err.Error(), Err: fmt.Errorf("%w: %w", ErrButane, err)}
			if l := yamlErrLine(err.Error()); l > 0 {
				d.Line, _ = opts.place(l, 0)
			}
			diags = append(diags, d)
		}
		return nil, diags
	}
	res := &Result{Variant: head.Variant, Version: head.Version, src: newSources(data, head.Variant, head.Version, opts)}
	if head.Variant == "fcos" {
		res.Ignition = out
		return res, diags
	}
	// openshift: a MachineConfig in YAML.
	js, err := sigsyaml.YAMLToJSON(out)
	if err != nil {
		return nil, append(diags, diag.Diagnostic{Severity: diag.Error, File: file, Message: "butane output: " + err.Error(), Err: fmt.Errorf("%w: %w", ErrButane, err)})
	}
	if err := res.fromMachineConfig(js); err != nil {
		return nil, append(diags, diag.Diagnostic{Severity: diag.Error, File: file, Message: "butane output: " + err.Error(), Err: fmt.Errorf("%w: %w", ErrButane, err)})
	}
	return res, diags
}

// fromMachineConfig reads the MachineConfig (JSON) an openshift file makes.
func (res *Result) fromMachineConfig(js []byte) error {
	var mc struct {
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			Config          json.RawMessage `json:"config"`
			KernelArguments []string        `json:"kernelArguments"`
			Extensions      []string        `json:"extensions"`
			FIPS            bool            `json:"fips"`
			KernelType      string          `json:"kernelType"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(js, &mc); err != nil {
		return err
	}
	res.Name, res.Labels = mc.Metadata.Name, mc.Metadata.Labels
	res.Ignition = mc.Spec.Config
	res.KernelArguments = mc.Spec.KernelArguments
	res.Extensions = mc.Spec.Extensions
	res.FIPS = mc.Spec.FIPS
	res.KernelType = mc.Spec.KernelType
	return nil
}

var openshiftVersion = regexp.MustCompile(`^4\.([0-9]+)\.0$`)
var fcosVersion = regexp.MustCompile(`^1\.[0-9]+\.0$`)

// checkVariant keeps to what nodevirt supports: openshift 4.8.0–4.22.0 and the
// stable fcos versions. Experimental versions and other variants are refused.
func checkVariant(file string, data []byte, variant, version string, opts Options) (diag.Diagnostic, bool) {
	at := func(key, format string, args ...any) diag.Diagnostic {
		line, col := opts.place(keyPos(data, key))
		err := fmt.Errorf("%w: "+format, append([]any{ErrVariant}, args...)...)
		return diag.Diagnostic{Severity: diag.Error, File: file, Line: line, Col: col, Path: key, Message: err.Error(), Err: err}
	}
	switch variant {
	case "openshift":
		m := openshiftVersion.FindStringSubmatch(version)
		if m == nil {
			return at("version", "openshift version %q: nodevirt takes 4.8.0 to 4.22.0", version), false
		}
		if minor, _ := strconv.Atoi(m[1]); minor < 8 || minor > 22 {
			return at("version", "openshift version %q: nodevirt takes 4.8.0 to 4.22.0", version), false
		}
	case "fcos":
		if !fcosVersion.MatchString(version) {
			return at("version", "fcos version %q: nodevirt takes the stable fcos versions (1.0.0 to 1.7.0)", version), false
		}
	case "":
		return at("variant", "the file names no variant; use variant: openshift or variant: fcos"), false
	default:
		return at("variant", "variant %q: nodevirt takes openshift and fcos", variant), false
	}
	return diag.Diagnostic{}, true
}

// keyPos finds a top-level key's line and column.
func keyPos(data []byte, key string) (int, int) {
	var n yaml.Node
	if yaml.Unmarshal(data, &n) != nil || len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
		return 0, 0
	}
	m := n.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i].Line, m.Content[i].Column
		}
	}
	return m.Line, m.Column
}

// reportDiags converts Butane's report. Its entries carry the YAML path of the
// source (e.g. storage.files.0.mode) and, when known, line and column.
func reportDiags(file string, rep report.Report, opts Options) diag.List {
	var out diag.List
	for _, e := range rep.Entries {
		sev := diag.Warning
		switch e.Kind {
		case report.Error:
			sev = diag.Error
		case report.Info:
			continue
		}
		l, c := e.Marker.Start()
		line, col := opts.place(int(l), int(c))
		err := fmt.Errorf("%w: %s", ErrButane, e.Message)
		out = append(out, diag.Diagnostic{
			Severity: sev,
			File:     file,
			Line:     line,
			Col:      col,
			Path:     Path(e.Context),
			Message:  e.Message,
			Err:      err,
		})
	}
	return out
}

// Path spells a vcontext path the way diagnostics do: storage.files[0].mode.
func Path(p path.ContextPath) string {
	var b strings.Builder
	for _, e := range p.Path {
		switch v := e.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", v)
		default:
			s := fmt.Sprint(v)
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		}
	}
	return b.String()
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(msg string) int {
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func syntaxDiag(file string, err error, opts Options) diag.Diagnostic {
	line, _ := opts.place(yamlErrLine(err.Error()), 0)
	return diag.Diagnostic{Severity: diag.Error, File: file, Line: line,
		Message: "butane: YAML syntax: " + strings.TrimPrefix(err.Error(), "yaml: "), Err: fmt.Errorf("%w: %w", ErrButane, err)}
}
