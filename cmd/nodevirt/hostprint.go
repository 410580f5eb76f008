package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/nodevirt/nodevirt/reconciler/drift"
	"github.com/nodevirt/nodevirt/reconciler/host"
)

// printHostPlan prints the host plan as a table.
func printHostPlan(w io.Writer, p host.Plan) {
	fmt.Fprintf(w, "Host plan for %s (systemd: %s; kernel arguments: %s)\n", orNone(p.Revision), p.Systemd, p.KernelArgsBackend)
	printHostPruneHeld(w, p)
	if len(p.Actions) == 0 {
		fmt.Fprintf(w, "No changes. The host configuration matches the source (%d checked).\n", p.InSync)
	} else {
		printHostActions(w, p.Actions)
		fmt.Fprintf(w, "In sync: %d\n", p.InSync)
	}
	if len(p.Diags) > 0 {
		fmt.Fprintf(w, "\n%d diagnostics:\n", len(p.Diags))
		for _, d := range p.Diags {
			fmt.Fprintf(w, "  %s\n", d.Error())
		}
	}
}

// printHostPruneHeld says why removals of host configuration are held, in
// the words of the VM plan.
func printHostPruneHeld(w io.Writer, p host.Plan) {
	switch {
	case p.PruneSuspended:
		fmt.Fprintln(w, "Pruning is suspended: a file of this revision failed to parse.")
	case p.PruneHeld != "":
		fmt.Fprintln(w, "Pruning is held by the prune guard: "+p.PruneHeld+".")
	}
}

func printHostActions(w io.Writer, acts []host.Action) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tTARGET\tOBJECT\tREASON")
	for _, a := range acts {
		flags := ""
		if a.Drift {
			flags += " [drift]"
		}
		if a.Disruptive {
			flags += " [disruptive]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\n", a.Action, a.Target, orNone(a.Object), a.Reason, flags)
		for _, c := range a.Changes {
			// In the last column, which sets no width; a content diff's
			// lines under its summary.
			fmt.Fprintf(tw, "\t\t\t~ %s\n", strings.ReplaceAll(c.String(), "\n", "\n\t\t\t    "))
		}
	}
	tw.Flush()
}

func printHostReport(w io.Writer, format string, p host.Plan, rep host.Report) error {
	if format != "table" {
		return printData(w, format, map[string]any{"plan": p, "apply": rep})
	}
	fmt.Fprintf(w, "Host apply of %s (systemd: %s; kernel arguments: %s)\n", orNone(p.Revision), p.Systemd, p.KernelArgsBackend)
	printHostPruneHeld(w, p)
	if len(rep.Outcomes) == 0 {
		fmt.Fprintln(w, "Nothing to do.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACTION\tTARGET\tRESULT\tTOOK\tDETAIL")
		for _, o := range rep.Outcomes {
			detail := o.Error
			if detail == "" {
				detail = o.Detail
			}
			if o.Result == "reported" || o.Result == "held" {
				detail = o.Reason
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Action, o.Target, o.Result, o.Took, detail)
		}
		tw.Flush()
	}
	if rep.RolledBack {
		fmt.Fprintln(w, "A step failed: the files and units changed by this apply were rolled back.")
	}
	switch {
	case rep.Rebooting:
		fmt.Fprintln(w, "Rebooting the host (--allow-reboot).")
	case rep.RebootRequired:
		fmt.Fprintln(w, "Reboot required: the new boot configuration takes effect at the next boot (nodevirt does not reboot without --allow-reboot).")
	}
	return nil
}

// printHostDrift prints the host drift report of plan p as a table.
func printHostDrift(w io.Writer, p host.Plan, rep drift.HostReport) {
	fmt.Fprintf(w, "Host drift report for %s\n", orNone(rep.Revision))
	printHostPruneHeld(w, p)
	if len(rep.Entries) == 0 {
		fmt.Fprintf(w, "No drift: %d files, units and checks match the source.\n", rep.InSync)
		return
	}
	for _, e := range rep.Entries {
		fmt.Fprintf(w, "%-15s %s  %s (%s)\n", strings.ToUpper(e.Status), e.Target, orNone(e.Object), e.Action)
		for _, f := range e.Fields {
			// A content diff's lines indented under its summary.
			fmt.Fprintf(w, "                %s\n", strings.ReplaceAll(f, "\n", "\n                  "))
		}
		fmt.Fprintf(w, "                %s\n", e.Reason)
	}
	fmt.Fprintf(w, "%d drifted, %d in sync\n", rep.Drifted, rep.InSync)
}
