package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"

	"github.com/nodevirt/nodevirt/reconciler"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/plan"
)

func printData(w io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if format == "yaml" {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// colour is on only for terminals, so logs and pipes stay plain.
type colour bool

func colourFor(w io.Writer) colour {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
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
	case plan.Create, plan.Start:
		code = "32"
	case plan.Update, plan.Restart, plan.RestartRequired:
		code = "33"
	case plan.Delete, plan.Stop, plan.Conflict:
		code = "31"
	case plan.Hold, plan.Wait, plan.Keep, plan.Orphan:
		code = "36"
	}
	if code == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func summary(st *desired.State) string {
	return fmt.Sprintf("revision %s: %d VMs for this node, %d invalid, %d placed elsewhere", st.Revision, len(st.VMs), len(st.Invalid), st.Elsewhere)
}

func printPlan(w io.Writer, format string, st *desired.State, p plan.Plan) error {
	if format != "table" {
		return printData(w, format, p)
	}
	c := colourFor(w)
	fmt.Fprintf(w, "Plan for %s\n", summary(st))
	if p.PruneSuspended {
		fmt.Fprintln(w, "Pruning is suspended: a file of this revision failed to parse.")
	}
	if len(p.Actions) == 0 {
		fmt.Fprintln(w, "No changes. The host matches the source.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACTION\tOBJECT\tDOMAIN\tREASON")
		for _, a := range p.Actions {
			flags := ""
			if a.Drift {
				flags += " [drift]"
			}
			if a.Disruptive {
				flags += " [disruptive]"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\n", c.kind(a.Action), a.Object, a.Target, a.Reason, flags)
			for _, ch := range a.Changes {
				fmt.Fprintf(tw, "\t  ~ %s\t\t\n", ch)
			}
		}
		tw.Flush()
	}
	if len(p.InSync) > 0 {
		fmt.Fprintf(w, "In sync: %s\n", strings.Join(p.InSync, ", "))
	}
	printDiags(w, p)
	return nil
}

func printDiags(w io.Writer, p plan.Plan) {
	if len(p.Diags) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%d diagnostics:\n", len(p.Diags))
	for _, d := range p.Diags {
		fmt.Fprintf(w, "  %s\n", d.Error())
	}
}

func printReport(w io.Writer, format string, st *desired.State, p plan.Plan, rep reconciler.Report) error {
	if format != "table" {
		return printData(w, format, map[string]any{"plan": p, "apply": rep})
	}
	c := colourFor(w)
	fmt.Fprintf(w, "Apply of %s\n", summary(st))
	if len(rep.Outcomes) == 0 {
		fmt.Fprintln(w, "Nothing to do.")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(rep.Outcomes) > 0 {
		fmt.Fprintln(tw, "ACTION\tOBJECT\tRESULT\tTOOK\tDETAIL")
	}
	for _, o := range rep.Outcomes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.kind(o.Action), o.Object, o.Result, o.Took, o.Error)
	}
	tw.Flush()
	for _, a := range p.Actions {
		switch a.Action {
		case plan.Hold, plan.Keep, plan.Conflict, plan.Wait, plan.RestartRequired, plan.Orphan:
			fmt.Fprintf(w, "%s %s: %s\n", c.kind(a.Action), a.Object, a.Reason)
		}
	}
	printDiags(w, p)
	return nil
}

// DriftEntry is one object's difference between source and host.
type DriftEntry struct {
	Object string `json:"object"`
	Domain string `json:"domain"`
	// Status: drifted (changed on the host), pending (changed in the source,
	// not applied yet), missing (not on the host), extra (owned, not in the
	// source), invalid (manifest broken; last good state kept), conflict,
	// orphan (marked as nodevirt's, not in this agent's inventory).
	Status  string        `json:"status"`
	Changes []plan.Change `json:"changes,omitempty"`
	// RunState is the run-state difference, e.g. "want running, is shutoff (destroyed)".
	RunState string `json:"runState,omitempty"`
	Heal     string `json:"heal,omitempty"`
}

// DriftReport is the output of `nodevirt drift`.
type DriftReport struct {
	Revision string       `json:"revision"`
	InSync   []string     `json:"inSync"`
	Entries  []DriftEntry `json:"entries"`
	Drifted  int          `json:"drifted"`
}

func driftReport(st *desired.State, p *reconciler.Planned) DriftReport {
	rep := DriftReport{Revision: st.Revision, InSync: p.InSync}
	byDomain := map[string]*DriftEntry{}
	var order []string
	entry := func(a plan.Step) *DriftEntry {
		e, ok := byDomain[a.Target]
		if !ok {
			e = &DriftEntry{Object: a.Object, Domain: a.Target}
			byDomain[a.Target] = e
			order = append(order, a.Target)
		}
		return e
	}
	for _, a := range p.Actions {
		e := entry(a)
		set := func(s string) {
			if e.Status == "" || s == "drifted" {
				e.Status = s
			}
		}
		switch a.Action {
		case plan.Create:
			set("missing")
		case plan.Update:
			if a.Drift {
				set("drifted")
			} else {
				set("pending")
			}
			e.Changes = append(e.Changes, a.Changes...)
		case plan.Start:
			e.RunState = "want running, is stopped: " + a.Reason
			if a.Drift {
				set("drifted")
			} else if e.Status == "" {
				set("drifted")
			}
		case plan.Stop:
			e.RunState = "want stopped, is running"
			set("drifted")
		case plan.Restart, plan.RestartRequired:
			e.RunState = "running an older definition: " + a.Reason
		case plan.Delete, plan.Hold:
			set("extra")
			e.Heal = a.Reason
		case plan.Keep:
			set("invalid")
			e.Heal = a.Reason
		case plan.Conflict:
			set("conflict")
			e.Heal = a.Reason
		case plan.Orphan:
			set("orphan")
			e.Heal = a.Reason
		case plan.Wait:
			set("waiting")
			e.Heal = a.Reason
		}
	}
	sort.Strings(order)
	for _, d := range order {
		e := byDomain[d]
		if e.Status == "drifted" {
			rep.Drifted++
		}
		rep.Entries = append(rep.Entries, *e)
	}
	return rep
}

func printDrift(w io.Writer, format string, rep DriftReport) error {
	if format != "table" {
		return printData(w, format, rep)
	}
	fmt.Fprintf(w, "Drift report for revision %s\n", rep.Revision)
	if len(rep.Entries) == 0 {
		fmt.Fprintf(w, "No drift: %d domains match the source.\n", len(rep.InSync))
		return nil
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
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
