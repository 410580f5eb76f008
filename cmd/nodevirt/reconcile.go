package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/reconciler"
	"github.com/nodevirt/nodevirt/reconciler/desired"
)

// planned opens everything, loads the source and plans: the common start of
// plan, apply and drift. The caller closes the env.
func (o *options) planned(ctx context.Context, selfHeal bool) (*env, *desired.State, *reconciler.Planned, error) {
	if err := o.checkOutput(); err != nil {
		return nil, nil, nil, err
	}
	e, err := o.openAll(ctx, selfHeal, agent.Config{})
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := e.agent.Load(ctx)
	if err == nil {
		var p *reconciler.Planned
		if p, err = e.rec.Plan(ctx, st); err == nil {
			return e, st, p, nil
		}
	}
	e.Close()
	return nil, nil, nil, err
}

func newPlanCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would do, per object, with field-level changes (dry run)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, st, p, err := o.planned(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer e.Close()
			return printPlan(cmd.OutOrStdout(), o.output, st, p.Plan)
		},
	}
}

func newApplyCmd(o *options) *cobra.Command {
	var selfHeal bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Make the host match the source once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, st, p, err := o.planned(cmd.Context(), selfHeal)
			if err != nil {
				return err
			}
			defer e.Close()
			rep := e.rec.Apply(cmd.Context(), p)
			if err := printReport(cmd.OutOrStdout(), o.output, st, p.Plan, rep); err != nil {
				return err
			}
			if rep.Failed > 0 || st.Diags.HasErrors() {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&selfHeal, "self-heal", true, "undo out-of-band changes too (off: only apply source changes)")
	return cmd
}

func newDriftCmd(o *options) *cobra.Command {
	var exitCodeOnDrift bool
	cmd := &cobra.Command{
		Use:   "drift",
		Short: "Compare the host with the source and list every difference, field by field",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, st, p, err := o.planned(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer e.Close()
			rep := driftReport(st, p)
			if err := printDrift(cmd.OutOrStdout(), o.output, rep); err != nil {
				return err
			}
			if exitCodeOnDrift && rep.Drifted > 0 {
				return exitCode(2)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&exitCodeOnDrift, "exit-code", false, "exit 2 when anything drifted (for audits and scripts)")
	return cmd
}

func newRunCmd(o *options) *cobra.Command {
	var (
		selfHeal      bool
		interval      time.Duration
		driftInterval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent: follow the source, react to libvirt events, report and heal drift",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := o.openAll(cmd.Context(), selfHeal, agent.Config{Interval: interval, DriftInterval: driftInterval})
			if err != nil {
				return err
			}
			defer e.Close()
			return e.agent.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVar(&selfHeal, "self-heal", true, "undo out-of-band changes (per VM: annotation nodevirt.io/self-heal: \"false\")")
	cmd.Flags().DurationVar(&interval, "interval", time.Minute, "git poll interval")
	cmd.Flags().DurationVar(&driftInterval, "drift-interval", 5*time.Minute, "full drift check interval (and local directory rescan)")
	return cmd
}
