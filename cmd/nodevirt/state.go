package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/internal/staterepair"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
	"github.com/nodevirt/nodevirt/runtime/statedb"
)

func newStateCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "The agent's state database: check it, or rebuild it from its backup or from libvirt and the disks",
	}
	cmd.AddCommand(newStateCheckCmd(o), newStateRebuildCmd(o))
	return cmd
}

func newStateCheckCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Verify the state database (bbolt's consistency check, every record) and its backup; exit 1 on damage",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			rep, err := staterepair.Check(o.stateDir)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				err = printData(w, o.output, rep)
			} else {
				printStateReport(w, rep, time.Now())
			}
			if err != nil {
				return err
			}
			if !rep.OK && !rep.Locked {
				return exitCode(1)
			}
			return nil
		},
	}
}

func printStateReport(w io.Writer, rep *statedb.Report, now time.Time) {
	switch {
	case rep.Fresh:
		fmt.Fprintf(w, "%s: no state database yet (a fresh state directory)\n", rep.Path)
	case rep.Locked:
		fmt.Fprintf(w, "%s: in use by a running agent, which checked it when it opened it\n", rep.Path)
	case rep.Damage != "":
		fmt.Fprintf(w, "%s: DAMAGED: %s\n", rep.Path, rep.Damage)
	default:
		fmt.Fprintf(w, "%s: ok (%d bytes)\n", rep.Path, rep.Size)
	}
	for _, b := range staterepair.Sorted(rep.Buckets) {
		fmt.Fprintf(w, "  bucket %-16s %d records\n", b, rep.Buckets[b])
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	if b := rep.Backup; b != nil {
		state := "ok"
		if !b.OK {
			state = "DAMAGED: " + b.Damage
		}
		fmt.Fprintf(w, "backup %s: %s, from %s (%s ago)\n", b.Path, state, b.Time.Format(time.RFC3339), now.Sub(b.Time).Round(time.Second))
	} else if !rep.Fresh {
		fmt.Fprintf(w, "backup: none\n")
	}
	if rep.Damage != "" || len(rep.Problems) > 0 {
		if rep.Backup != nil && rep.Backup.OK {
			fmt.Fprintln(w, "restore the backup with `nodevirt state rebuild --from-backup`, or rebuild from libvirt and the disks with `nodevirt state rebuild`")
		} else {
			fmt.Fprintln(w, "rebuild from libvirt and the disks with `nodevirt state rebuild`")
		}
	}
}

func newStateRebuildCmd(o *options) *cobra.Command {
	var fromBackup bool
	cmd := &cobra.Command{
		Use:   "rebuild",
		Short: "Move the state database aside (state.db.damaged-<time>) and rebuild it from libvirt's domain metadata and the import markers next to the disks, or --from-backup",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			ctx := cmd.Context()
			ro := staterepair.Options{StateDir: o.stateDir, FromBackup: fromBackup}
			if !fromBackup {
				d, err := virt.Open(ctx, o.libvirtURI)
				if err != nil {
					return fmt.Errorf("connect to libvirt %s: %w", o.libvirtURI, err)
				}
				defer d.Close()
				ro.Domains = d
			}
			res, err := staterepair.Rebuild(ctx, ro)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, res)
			}
			if res.MovedAside != "" {
				fmt.Fprintf(w, "moved the old database to %s\n", res.MovedAside)
			}
			if res.BackupKept != "" {
				fmt.Fprintf(w, "kept the old backup as %s\n", res.BackupKept)
			}
			if res.Restored != "" {
				fmt.Fprintf(w, "restored %s\n", res.Restored)
				return nil
			}
			for _, k := range sortedKeys(res.Storage.Claims) {
				fmt.Fprintf(w, "restored claim %s (disk %s)\n", k, res.Storage.Claims[k])
			}
			for _, k := range sortedKeys(res.Storage.Skipped) {
				fmt.Fprintf(w, "not restored: %s: %s\n", k, res.Storage.Skipped[k])
			}
			for _, d := range res.Domains {
				state := "shut off"
				if d.Active {
					state = "running"
				}
				fmt.Fprintf(w, "domain %s: %s, %s, revision %s\n", d.Name, d.Object, state, d.Revision)
			}
			fmt.Fprintf(w, "not rebuilt:\n  %s\n", strings.Join(res.NotRebuilt, "\n  "))
			return nil
		},
	}
	cmd.Flags().BoolVar(&fromBackup, "from-backup", false, "restore the last good copy (state.db.bak) instead of rebuilding")
	return cmd
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
