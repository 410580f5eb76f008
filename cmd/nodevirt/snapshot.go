package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/nodevirt/nodevirt/reconciler/drift"
	"github.com/nodevirt/nodevirt/reconciler/plan"
)

// printSnapshotPlan prints the snapshot stage's steps; nothing when it has
// none (most nodes have no snapshots).
func printSnapshotPlan(w io.Writer, steps []plan.Step) {
	if len(steps) == 0 {
		return
	}
	fmt.Fprintln(w, "\nSnapshot plan")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tOBJECT\tTARGET\tREASON")
	for _, s := range steps {
		flag := ""
		if s.Drift {
			flag = " [drift]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\n", s.Action, s.Object, s.Target, s.Reason, flag)
	}
	tw.Flush()
}

// printSnapshotReport prints what the snapshot stage did.
func printSnapshotReport(w io.Writer, rep plan.Report) {
	if len(rep.Outcomes) == 0 {
		return
	}
	fmt.Fprintln(w, "\nSnapshot apply")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tACTION\tOBJECT\tTOOK\tDETAIL")
	for _, o := range rep.Outcomes {
		detail := o.Detail
		if o.Error != "" {
			detail = "error: " + o.Error
		} else if detail == "" {
			detail = o.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Result, o.Action, o.Object, o.Took, detail)
	}
	tw.Flush()
}

// printSnapshotDrift prints the snapshot stage's differences; nothing
// when there are none.
func printSnapshotDrift(w io.Writer, entries []drift.StorageEntry) {
	if len(entries) == 0 {
		return
	}
	fmt.Fprintln(w, "Snapshot drift")
	for _, e := range entries {
		fmt.Fprintf(w, "%-9s %s  %s: %s\n", strings.ToUpper(e.Status), e.Object, e.Target, e.Reason)
	}
	fmt.Fprintln(w)
}
