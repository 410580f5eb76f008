package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/nodeconfig"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/drift"
	"github.com/nodevirt/nodevirt/reconciler/host"
)

// Host configuration commands: `render host` (newRenderHostCmd, to hang under
// `render`) and `host render|plan|apply|drift` (host configuration on its
// own). Their printing is in hostview.go (the rendered configuration) and
// hostprint.go (plans, reports, drift); `node describe` is in node.go.

// renderedHost is the source's host configuration for this node.
type renderedHost struct {
	revision string
	dir      string
	set      *manifests.Set
	st       *desired.State
	cfg      *nodeconfig.HostConfig
}

// loadHost fetches the source and renders this node's host configuration.
func (e *env) loadHost(ctx context.Context) (*renderedHost, error) {
	snap, node, err := e.load(ctx)
	if err != nil {
		return nil, err
	}
	return &renderedHost{revision: snap.Revision, dir: snap.Dir, set: node.Set, st: node.VMs, cfg: node.Host}, nil
}

// sourceHost checks the output format, opens the source and renders this
// node's host configuration: the start of render host and node describe.
func (o *options) sourceHost(ctx context.Context) (*env, *renderedHost, error) {
	if err := o.checkOutput(); err != nil {
		return nil, nil, err
	}
	e, err := o.openSource(ctx)
	if err != nil {
		return nil, nil, err
	}
	rh, err := e.loadHost(ctx)
	if err != nil {
		e.Close()
		return nil, nil, err
	}
	return e, rh, nil
}

func newRenderHostCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "host",
		Short: "Print the files, units and kernel arguments the source's MachineConfigs and Butane files put on this node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, rh, err := o.sourceHost(cmd.Context())
			if err != nil {
				return err
			}
			defer e.Close()
			if err := printHostConfig(cmd.OutOrStdout(), o.output, rh); err != nil {
				return err
			}
			if rh.cfg.Diags.HasErrors() {
				return exitCode(1)
			}
			return nil
		},
	}
}

func newHostCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "host",
		Short: "Host configuration alone: render, plan, apply and drift of MachineConfigs, Butane files, VFIO and SELinux labels",
	}
	render := newRenderHostCmd(o)
	render.Use = "render"
	var selfHeal, allowReboot, exitOnDiff bool
	plan := &cobra.Command{
		Use:   "plan",
		Short: "Show what host apply would do, with field-level changes (dry run)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, p, err := o.hostPlan(cmd.Context(), false, true, false)
			if err != nil {
				return err
			}
			defer e.Close()
			w := cmd.OutOrStdout()
			if o.output != "table" {
				err = o.printObject(w, kindHostPlan, p)
			} else {
				printHostPlan(w, p)
			}
			if err != nil || !exitOnDiff {
				return err
			}
			return detailedExit(cmd.ErrOrStderr(), drift.Plans{Host: &p})
		},
	}
	plan.Flags().BoolVar(&exitOnDiff, "exit-code", false, exitCodeUsage)
	apply := &cobra.Command{
		Use:   "apply",
		Short: "Make the host configuration match the source once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The state lock is taken before the source is fetched and the
			// host observed, and held until the apply ends.
			e, p, err := o.hostPlan(cmd.Context(), true, selfHeal, allowReboot)
			if err != nil {
				return err
			}
			defer e.Close()
			rep := e.hostRec.Apply(cmd.Context(), p)
			if err := printHostReport(cmd.OutOrStdout(), o.output, p, rep); err != nil {
				return err
			}
			// A file that failed to parse is an error of the revision, even
			// though the host stage only held its removals.
			if rep.Failed > 0 || p.Diags.HasErrors() || p.PruneSuspended {
				return exitCode(1)
			}
			return nil
		},
	}
	apply.Flags().BoolVar(&selfHeal, "self-heal", true, "undo out-of-band changes too (off: only apply source changes)")
	apply.Flags().BoolVar(&allowReboot, "allow-reboot", false, "reboot the host when staged kernel arguments or boot-time module options need it")
	driftCmd := &cobra.Command{
		Use:   "drift",
		Short: "Compare the host configuration with the source, field by field",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, p, err := o.hostPlan(cmd.Context(), false, true, false)
			if err != nil {
				return err
			}
			defer e.Close()
			rep := drift.Host(p)
			w := cmd.OutOrStdout()
			if o.output != "table" {
				err = o.printObject(w, kindHostDriftReport, rep)
			} else {
				printHostDrift(w, p, rep)
			}
			if err != nil || !exitOnDiff {
				return err
			}
			return detailedExit(cmd.ErrOrStderr(), drift.Plans{Host: &p})
		},
	}
	driftCmd.Flags().BoolVar(&exitOnDiff, "exit-code", false, exitCodeUsage)
	cmd.AddCommand(render, plan, apply, driftCmd)
	return cmd
}

// hostPlan opens the host stage, renders the source's host configuration
// and plans it against the host. lock takes the state lock (host apply);
// plan and drift read the host record without it and never stand in an
// agent's way. The caller closes the env.
func (o *options) hostPlan(ctx context.Context, lock, selfHeal, allowReboot bool) (*env, host.Plan, error) {
	if err := o.checkOutput(); err != nil {
		return nil, host.Plan{}, err
	}
	oc, err := o.openConfig(selfHeal, agent.Stages{Host: true}, lock)
	if err != nil {
		return nil, host.Plan{}, err
	}
	oc.AllowReboot = allowReboot
	e, err := o.open(ctx, oc)
	if err != nil {
		return nil, host.Plan{}, err
	}
	rh, err := e.loadHost(ctx)
	if err != nil {
		e.Close()
		return nil, host.Plan{}, err
	}
	p, err := e.hostRec.Plan(ctx, rh.cfg)
	if err != nil {
		e.Close()
		return nil, host.Plan{}, err
	}
	p.Revision = rh.revision
	return e, p, nil
}

// --- node describe ---
