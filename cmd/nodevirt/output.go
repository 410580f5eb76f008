package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"sigs.k8s.io/yaml"

	"github.com/nodevirt/nodevirt/internal/report"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/drift"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/vm"
)

// Kinds of machine-readable output; docs/schema has one schema for each.
const (
	kindPlan               = report.KindPlan
	kindDriftReport        = report.KindDriftReport
	kindValidationReport   = report.KindValidationReport
	kindNodeDescription    = report.KindNodeDescription
	kindStorageDescription = report.KindStorageDescription
	kindHostPlan           = report.KindHostPlan
	kindHostDriftReport    = report.KindHostDriftReport
	kindStoragePlan        = report.KindStoragePlan
	kindNodeStatus         = report.KindNodeStatus
)

// printObject prints v as a report of kind for node in format (json or
// yaml) with the envelope.
func printObject(w io.Writer, format, kind, node string, at time.Time, v any) error {
	b, err := report.Marshal(kind, node, at, v)
	if err != nil {
		return err
	}
	return writeData(w, format, b)
}

// printObject prints v as a report of kind about --node, made now, in
// the -o format.
func (o *options) printObject(w io.Writer, kind string, v any) error {
	return printObject(w, o.output, kind, o.node, time.Now(), v)
}

// printData prints v in format (json or yaml), without the envelope.
func printData(w io.Writer, format string, v any) error {
	b, err := report.MarshalData(v)
	if err != nil {
		return err
	}
	return writeData(w, format, b)
}

func writeData(w io.Writer, format string, b []byte) error {
	if format == "yaml" {
		b, err := yaml.JSONToYAML(b)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	v := jsontext.Value(b)
	if err := v.Indent(jsontext.WithIndent("  ")); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, string(v))
	return err
}

// colour is on only for terminals, so logs and pipes stay plain; NO_COLOR
// turns it off and CLICOLOR_FORCE on (the conventions of no-color.org and
// bixense.com/clicolors).
type colour bool

func colourFor(w io.Writer) colour {
	if os.Getenv("NO_COLOR") != "" {
		return false
	}
	if f := os.Getenv("CLICOLOR_FORCE"); f != "" && f != "0" {
		return true
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (c colour) kind(k plan.Action) string {
	s := string(k)
	if !c {
		return s
	}
	code := ""
	switch k {
	case vm.Create, vm.Start:
		code = "32"
	case vm.Update, vm.Restart, vm.RestartRequired:
		code = "33"
	case vm.Delete, vm.Stop, vm.Conflict:
		code = "31"
	case vm.Hold, vm.Wait, vm.Keep, vm.Orphan:
		code = "36"
	}
	if code == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// table lays out rows with text/tabwriter on their visible text and only
// then colours each row's leading action: tabwriter counts the bytes of an
// escape code as width, which pushed coloured rows out of line.
type table struct {
	w    io.Writer
	c    colour
	rows []string
	// kinds[i] is the action row i starts with, "" for none.
	kinds []plan.Action
}

func newTable(w io.Writer, c colour) *table { return &table{w: w, c: c} }

// row adds a line (cells separated by tabs) that starts with the text of k.
func (t *table) row(k plan.Action, format string, args ...any) {
	t.rows = append(t.rows, fmt.Sprintf(format, args...))
	t.kinds = append(t.kinds, k)
}

func (t *table) flush() {
	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	for _, r := range t.rows {
		fmt.Fprintln(tw, r)
	}
	tw.Flush()
	lines := strings.SplitAfter(buf.String(), "\n")
	for i, l := range lines {
		if i < len(t.kinds) && t.kinds[i] != "" {
			if rest, ok := strings.CutPrefix(l, string(t.kinds[i])); ok {
				l = t.c.kind(t.kinds[i]) + rest
			}
		}
		io.WriteString(t.w, l)
	}
}

func summary(st *desired.State) string {
	return fmt.Sprintf("revision %s: %d VMs for this node, %d invalid, %d placed elsewhere", st.Revision, len(st.VMs), len(st.Invalid), st.Elsewhere)
}

// printPlan prints the VM plan as a table.
func printPlan(w io.Writer, summary string, p vm.Plan) {
	c := colourFor(w)
	fmt.Fprintf(w, "Plan for %s\n", summary)
	if p.PruneSuspended {
		fmt.Fprintln(w, "Pruning is suspended: a file of this revision failed to parse.")
	}
	if len(p.Actions) == 0 {
		fmt.Fprintln(w, "No changes. The host matches the source.")
	} else {
		t := newTable(w, c)
		t.row("", "ACTION\tOBJECT\tDOMAIN\tREASON")
		for _, a := range p.Actions {
			flags := ""
			if a.Drift {
				flags += " [drift]"
			}
			if a.Disruptive {
				flags += " [disruptive]"
			}
			t.row(a.Action, "%s\t%s\t%s\t%s%s", a.Action, a.Object, a.Target, a.Reason, flags)
			for _, ch := range a.Changes {
				t.row("", "\t  ~ %s\t\t", ch)
			}
		}
		t.flush()
	}
	if len(p.InSync) > 0 {
		fmt.Fprintf(w, "In sync: %s\n", strings.Join(p.InSync, ", "))
	}
	printDiags(w, p)
}

func printDiags(w io.Writer, p vm.Plan) {
	if len(p.Diags) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%d diagnostics:\n", len(p.Diags))
	for _, d := range p.Diags {
		fmt.Fprintf(w, "  %s\n", d.Error())
	}
}

func printReport(w io.Writer, format string, st *desired.State, p vm.Plan, rep vm.Report) error {
	if format != "table" {
		return printData(w, format, map[string]any{"plan": p, "apply": rep})
	}
	c := colourFor(w)
	fmt.Fprintf(w, "Apply of %s\n", summary(st))
	if len(rep.Outcomes) == 0 {
		fmt.Fprintln(w, "Nothing to do.")
	}
	t := newTable(w, c)
	if len(rep.Outcomes) > 0 {
		t.row("", "ACTION\tOBJECT\tRESULT\tTOOK\tDETAIL")
	}
	for _, o := range rep.Outcomes {
		t.row(o.Action, "%s\t%s\t%s\t%s\t%s", o.Action, o.Object, o.Result, o.Took, o.Error)
	}
	t.flush()
	for _, a := range p.Actions {
		switch a.Action {
		case vm.Hold, vm.Keep, vm.Conflict, vm.Wait, vm.RestartRequired, vm.Orphan:
			fmt.Fprintf(w, "%s %s: %s\n", c.kind(a.Action), a.Object, a.Reason)
		}
	}
	printDiags(w, p)
	return nil
}

// printDrift prints the VM part of a drift report as a table.
func printDrift(w io.Writer, rep drift.Report) {
	fmt.Fprintf(w, "Drift report for revision %s\n", rep.Revision)
	if len(rep.Entries) == 0 {
		fmt.Fprintf(w, "No drift: %d domains match the source.\n", len(rep.InSync))
		return
	}
	for _, e := range rep.Entries {
		fmt.Fprintf(w, "%-9s %s (%s)\n", strings.ToUpper(e.Status), e.Object, e.Domain)
		if e.RunState != "" {
			fmt.Fprintf(w, "          run state: %s\n", e.RunState)
		}
		for _, c := range e.Changes {
			fmt.Fprintf(w, "          %s: host has %s, source wants %s\n", c.Path, orNone(c.From), orNone(c.To))
		}
		if e.Heal != "" {
			fmt.Fprintf(w, "          %s\n", e.Heal)
		}
	}
	if len(rep.InSync) > 0 {
		fmt.Fprintf(w, "In sync: %s\n", strings.Join(rep.InSync, ", "))
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
