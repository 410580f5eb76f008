package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/reconciler/drift"
	"github.com/nodevirt/nodevirt/reconciler/storage"
)

// storageFlags are the storage commands' own flags.
type storageFlags struct {
	selfHeal bool
}

func newStorageCmd(o *options) *cobra.Command {
	sf := &storageFlags{}
	cmd := &cobra.Command{
		Use:   "storage",
		Short: "Local storage: storage classes, volumes, loop-backed block PVs, claims and DataVolume imports",
	}
	cmd.AddCommand(newStorageDescribeCmd(o, sf), newStoragePlanCmd(o, sf), newStorageApplyCmd(o, sf))
	return cmd
}

// storageEnv is one storage command's run.
type storageEnv struct {
	e  *env
	m  *storage.Manager
	st *storage.State
}

func (s *storageEnv) Close() { s.e.Close() }

// openStorage opens the storage stage through the agent's wiring, so the
// in-use hold applies (no disk a domain uses is deleted). It takes the
// state lock before it fetches anything: storage apply changes the host,
// and describe and plan read the records an agent is writing.
func (o *options) openStorage(ctx context.Context, sf *storageFlags) (*storageEnv, error) {
	oc, err := o.openConfig(sf.selfHeal, agent.Stages{Storage: true}, true)
	if err != nil {
		return nil, err
	}
	e, err := o.open(ctx, oc)
	if err != nil {
		return nil, err
	}
	_, node, err := e.load(ctx)
	if err != nil {
		e.Close()
		return nil, err
	}
	return &storageEnv{e: e, m: e.storage, st: node.Storage}, nil
}

// storagePlanned checks the output format, opens storage and plans it: the
// start of storage describe and plan.
func (o *options) storagePlanned(ctx context.Context, sf *storageFlags) (*storageEnv, *storage.Plan, error) {
	if err := o.checkOutput(); err != nil {
		return nil, nil, err
	}
	s, err := o.openStorage(ctx, sf)
	if err != nil {
		return nil, nil, err
	}
	p, err := s.m.Plan(ctx, s.st)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, p, nil
}

func newStorageDescribeCmd(o *options, sf *storageFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "describe",
		Short: "Show storage classes with the seed's feature matrix, volumes, and claims with their phase and progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, p, err := o.storagePlanned(cmd.Context(), sf)
			if err != nil {
				return err
			}
			defer s.Close()
			d := s.m.Describe(s.st, p)
			if o.output != "table" {
				return o.printObject(cmd.OutOrStdout(), kindStorageDescription, d)
			}
			printDescription(cmd.OutOrStdout(), d, p)
			return nil
		},
	}
}

func newStoragePlanCmd(o *options, sf *storageFlags) *cobra.Command {
	var exitOnDiff bool
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what storage apply would do (dry run)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, p, err := o.storagePlanned(cmd.Context(), sf)
			if err != nil {
				return err
			}
			defer s.Close()
			if o.output != "table" {
				err = o.printObject(cmd.OutOrStdout(), kindStoragePlan, p)
			} else {
				printStoragePlan(cmd.OutOrStdout(), p)
			}
			if err != nil || !exitOnDiff {
				return err
			}
			return detailedExit(cmd.ErrOrStderr(), drift.Plans{Storage: p})
		},
	}
	cmd.Flags().BoolVar(&exitOnDiff, "exit-code", false, exitCodeUsage)
	return cmd
}

func newStorageApplyCmd(o *options, sf *storageFlags) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Make this host's storage match the source once; --wait also waits for imports",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			s, err := o.openStorage(cmd.Context(), sf)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx := cmd.Context()
			w := cmd.OutOrStdout()
			var all storage.Report
			var p *storage.Plan
			// Rounds: a clone waits for its source's import, so apply again
			// while the previous round did something.
			for round := 0; round < 10; round++ {
				if p, err = s.m.Plan(ctx, s.st); err != nil {
					return err
				}
				rep := s.m.Apply(ctx, p, storage.All)
				all.Append(rep)
				if !wait {
					break
				}
				if err := waitImports(ctx, cmd.ErrOrStderr(), s.m, rep); err != nil {
					return err
				}
				if len(rep.Outcomes) == 0 {
					break
				}
			}
			if p, err = s.m.Plan(ctx, s.st); err != nil {
				return err
			}
			d := s.m.Describe(s.st, p)
			if o.output != "table" {
				if err := printData(w, o.output, map[string]any{"report": all, "storage": d}); err != nil {
					return err
				}
			} else {
				printStorageReport(w, all)
				printDescription(w, d, p)
			}
			failedImports := 0
			for _, c := range d.Claims {
				if c.Status.Phase == storage.PhaseFailed {
					failedImports++
				}
			}
			if all.Failed > 0 || (wait && failedImports > 0) || s.st.Diags.HasErrors() {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every import started has finished")
	cmd.Flags().BoolVar(&sf.selfHeal, "self-heal", true, "re-attach detached loop devices and re-import missing disks")
	return cmd
}

// waitImports waits for the running imports, showing them on w as apply
// does (a bar per import on a terminal, percent lines elsewhere).
func waitImports(ctx context.Context, w io.Writer, m *storage.Manager, rep storage.Report) error {
	p := newImportProgress(w)
	defer p.stop()
	keys := rep.Imports()
	done := make(chan error, 1)
	go func() { done <- m.Wait(ctx) }()
	tick := time.NewTicker(agent.ProgressInterval)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			p.update(m.Imports(keys))
			return err
		case <-tick.C:
			p.update(m.Imports(keys))
		}
	}
}

func bytesText(n int64) string {
	if n == 0 {
		return "-"
	}
	return resource.NewQuantity(n, resource.BinarySI).String()
}

func printStoragePlan(w io.Writer, p *storage.Plan) {
	if p.PruneSuspended {
		fmt.Fprintln(w, "Pruning is suspended: a file of this revision failed to parse.")
	}
	if len(p.Actions) == 0 {
		fmt.Fprintln(w, "No changes. The host's storage matches the source.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACTION\tOBJECT\tTARGET\tREASON")
		for _, a := range p.Actions {
			flag := ""
			if a.Drift {
				flag = " [drift]"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\n", a.Action, a.Object, a.Target, a.Reason, flag)
			for _, ch := range a.Changes {
				fmt.Fprintf(tw, "\t  ~ %s\t\t\n", ch)
			}
		}
		tw.Flush()
	}
	if len(p.Diags) > 0 {
		fmt.Fprintf(w, "\n%d diagnostics:\n", len(p.Diags))
		for _, d := range p.Diags {
			fmt.Fprintf(w, "  %s\n", d.Error())
		}
	}
}

func printStorageReport(w io.Writer, rep storage.Report) {
	if len(rep.Outcomes) == 0 {
		fmt.Fprintln(w, "Nothing to do.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tACTION\tOBJECT\tTARGET\tDETAIL")
	for _, o := range rep.Outcomes {
		detail := o.Reason
		if o.Error != "" {
			detail = o.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Result, o.Action, o.Object, o.Target, detail)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// printDescription prints the storage description as tables.
func printDescription(w io.Writer, d storage.Description, p *storage.Plan) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORAGE CLASS\tPROVISIONER\tRECLAIM\tBINDING\tKIND (seed 8.18.1)\tLIVE MIGRATION\tHOST-ASSISTED CLONE\tSTORAGE-ASSISTED CLONE\tSNAPSHOT")
	for _, c := range d.Classes {
		name := c.Name
		if c.Default {
			name += " (default)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, c.Provisioner, c.ReclaimPolicy, c.BindingMode,
			c.Features.Kind, c.Features.LiveMigration, c.Features.HostAssistedClone, c.Features.StorageAssistedClone, c.Features.Snapshot)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PERSISTENT VOLUME\tCAPACITY\tMODE\tCLASS\tRECLAIM\tPHASE\tCLAIM\tDEVICE\tPATH")
	for _, v := range d.Volumes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, bytesText(v.Capacity), v.VolumeMode, dash(v.Class),
			v.ReclaimPolicy, v.Phase, dash(v.Claim), dash(v.Device), v.Path)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLAIM\tKIND\tPHASE\tPROGRESS\tREADY\tCLASS\tCAPACITY\tDISK\tPATH\tMESSAGE")
	for _, c := range d.Claims {
		kind, _, _ := strings.Cut(c.Object, " ")
		if c.Owner != "" {
			kind += " (" + c.Owner + ")"
		}
		msg := c.Status.Message
		if r := c.Result; r != nil && c.Status.Ready {
			msg = strings.TrimSpace(strings.Join([]string{r.Format, r.Compression, r.Clone, r.Limits}, " "))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f%%\t%v\t%s\t%s\t%s\t%s\t%s\n", c.Key, kind, c.Status.Phase, c.Status.Progress, c.Status.Ready,
			dash(c.Class), bytesText(c.Capacity), bytesText(c.DiskSize), dash(c.Status.Path), msg)
	}
	tw.Flush()
	if p != nil && len(p.Diags) > 0 {
		fmt.Fprintf(w, "\n%d diagnostics:\n", len(p.Diags))
		for _, dg := range p.Diags {
			fmt.Fprintf(w, "  %s\n", dg.Error())
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
