package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/report"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/drift"
	"github.com/nodevirt/nodevirt/reconciler/vm"
)

// nodePlan is one revision planned for this node, stage by stage,
// with the line that says what was planned.
type nodePlan struct {
	summary string
	report.Plan
}

// planned plans the node: the common start of plan and drift. Beside a
// running agent (which holds the state) the agent plans and sends the plan;
// otherwise everything is opened here under the state lock.
func (o *options) planned(ctx context.Context, selfHeal bool) (nodePlan, error) {
	if err := o.checkOutput(); err != nil {
		return nodePlan{}, err
	}
	c, err := o.runningAgent(ctx)
	if err != nil {
		return nodePlan{}, err
	}
	if c != nil {
		var p report.Plan
		if err := c.Get(ctx, api.Prefix+"/plan", &p); err != nil {
			return nodePlan{}, fmt.Errorf("plan through the running agent: %w", err)
		}
		return nodePlan{summary: fmt.Sprintf("revision %s (planned by the running agent)", p.Revision), Plan: p}, nil
	}
	e, err := o.openAll(ctx, selfHeal, agent.Config{})
	if err != nil {
		return nodePlan{}, err
	}
	defer e.Close()
	n, err := e.agent.Load(ctx)
	if err != nil {
		return nodePlan{}, err
	}
	np, err := e.agent.Plan(ctx, n)
	if err != nil {
		return nodePlan{}, err
	}
	return nodePlan{summary: summary(n.VMs), Plan: np.Report()}, nil
}

// exitCodeUsage is the help of every plan and drift command's --exit-code.
const exitCodeUsage = "exit 2 when the host differs from the source in any way (changes, waits, held or kept objects, conflicts, restarts or reboots pending), 0 when it matches, 1 on errors (for audits and scripts)"

// detailedExit is the status of a plan or drift command run with
// --exit-code, as Terraform's -detailed-exitcode: 1 when the plan cannot be
// computed (a file of the revision failed to parse, so the objects it holds
// are unknown), 2 for any difference, nil (0) for none.
func detailedExit(errw io.Writer, ps drift.Plans) error {
	if ps.Incomplete() {
		fmt.Fprintln(errw, "error: a file of this revision failed to parse, so what differs is unknown (see the diagnostics)")
		return exitCode(1)
	}
	if ps.Differences() > 0 {
		return exitCode(2)
	}
	return nil
}

func newPlanCmd(o *options) *cobra.Command {
	var exitOnDiff bool
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would do, per object, with field-level changes (dry run)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			np, err := o.planned(cmd.Context(), true)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				err = o.printObject(w, kindPlan, np.Plan)
			} else {
				// The VM plan's diagnostics are the whole revision's: each is
				// printed once, after the stages.
				hp := np.Host
				hp.Diags = nil
				printHostPlan(w, hp)
				fmt.Fprintln(w, "\nStorage plan")
				sp := np.Storage
				if sp != nil {
					c := *sp
					c.Diags, sp = nil, &c
				}
				printStoragePlan(w, sp)
				printSnapshotPlan(w, np.Plan.Snapshots)
				fmt.Fprintln(w)
				printPlan(w, np.summary, np.Plan.Plan)
			}
			if err != nil || !exitOnDiff {
				return err
			}
			return detailedExit(cmd.ErrOrStderr(), np.Plans())
		},
	}
	cmd.Flags().BoolVar(&exitOnDiff, "exit-code", false, exitCodeUsage)
	return cmd
}

func newApplyCmd(o *options) *cobra.Command {
	var (
		selfHeal bool
		wait     bool
		timeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Make the host match the source once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			ctx := cmd.Context()
			e, err := o.openAll(ctx, selfHeal, agent.Config{})
			if err != nil {
				return err
			}
			defer e.Close()
			n, err := e.agent.Load(ctx)
			if err != nil {
				return err
			}
			// host configuration, then storage, then VMs, each planned
			// after the one before applied.
			var (
				nr      agent.NodeReport
				waitErr error
			)
			waitUntil := time.Now().Add(timeout)
			if wait {
				// A libvirtd restart during the apply is waited out, within
				// --timeout, and the apply finished.
				nr, waitErr = e.agent.ApplyThroughOutage(ctx, n, waitUntil)
				if errors.Is(waitErr, context.DeadlineExceeded) {
					waitErr = fmt.Errorf("--timeout %s: %w", timeout, waitErr)
				}
			} else {
				nr = e.agent.Apply(ctx, n)
			}
			if wait && waitErr == nil {
				// Imports run in the background and stop when apply exits:
				// finish them and start the VMs waiting for them.
				wctx, cancel := context.WithDeadline(ctx, waitUntil)
				prog := newImportProgress(cmd.ErrOrStderr())
				var settled agent.NodeReport
				settled, waitErr = e.agent.Settle(wctx, n, nr, prog.update)
				prog.stop()
				cancel()
				nr = mergeSettled(nr, settled)
				if errors.Is(waitErr, context.DeadlineExceeded) {
					waitErr = fmt.Errorf("--timeout %s: %w", timeout, waitErr)
				}
			}
			w := cmd.OutOrStdout()
			var vmPlan vm.Plan
			if nr.Plan.VMs != nil {
				vmPlan = nr.Plan.VMs.Plan
			}
			if o.output != "table" {
				err = printData(w, o.output, map[string]any{"plan": vmPlan, "apply": nr.VMs, "errors": nr.Errors,
					"host": map[string]any{"plan": nr.Plan.Host, "apply": nr.Host}, "storage": map[string]any{"plan": nr.Plan.Storage, "apply": nr.Storage},
					"snapshots": map[string]any{"plan": nr.Plan.Snapshots, "apply": nr.Snapshots}})
			} else {
				for _, msg := range nr.Errors {
					fmt.Fprintln(w, "error:", msg)
				}
				if nr.Plan.Host != nil {
					err = printHostReport(w, "table", *nr.Plan.Host, nr.Host)
				}
				if err == nil {
					fmt.Fprintln(w, "\nStorage apply")
					printStorageReport(w, nr.Storage)
					printSnapshotReport(w, nr.Snapshots)
					err = printReport(w, "table", n.VMs, vmPlan, nr.VMs)
				}
			}
			if err != nil {
				return err
			}
			if waitErr != nil {
				return waitErr
			}
			if nr.Err() != nil || n.VMs.Diags.HasErrors() {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&selfHeal, "self-heal", true, "undo out-of-band changes too (off: only apply source changes)")
	cmd.Flags().BoolVar(&wait, "wait", true, "wait for the imports apply starts and the VMs that need them (off: stop the imports when apply exits; the next apply or run resumes them)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "how long apply waits, from its start, for imports, the VMs that need them and a restarting libvirtd; on timeout it exits non-zero and the imports resume on the next apply or run")
	cmd.Flags().BoolVar(&o.allowReboot, "allow-reboot", false, "reboot the host when staged kernel arguments or boot-time module options need it")
	return cmd
}

func newDriftCmd(o *options) *cobra.Command {
	var exitOnDiff bool
	cmd := &cobra.Command{
		Use:   "drift",
		Short: "Compare the host with the source and list every difference, field by field",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			np, err := o.planned(cmd.Context(), true)
			if err != nil {
				return err
			}
			rep := report.DriftOf(np.Plan)
			w := cmd.OutOrStdout()
			if o.output != "table" {
				err = o.printObject(w, kindDriftReport, rep)
			} else {
				printHostDrift(w, np.Host, rep.Host)
				fmt.Fprintln(w)
				printStorageDrift(w, rep.Storage)
				printSnapshotDrift(w, rep.Snapshots)
				printDrift(w, rep.Report)
			}
			if err != nil || !exitOnDiff {
				return err
			}
			return detailedExit(cmd.ErrOrStderr(), np.Plans())
		},
	}
	cmd.Flags().BoolVar(&exitOnDiff, "exit-code", false, exitCodeUsage)
	return cmd
}

func newRunCmd(o *options) *cobra.Command {
	var (
		selfHeal      bool
		interval      time.Duration
		driftInterval time.Duration
		nodeLease     time.Duration
		so            serveOptions
		fo            fleetOptions
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent: follow the source, react to libvirt events, report and heal drift",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := o.checkFleet(fo); err != nil {
				return err
			}
			ready := func() {
				// Type=notify: systemd counts the unit started once the
				// agent has looked at the node once.
				if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
					o.logger().Warn("tell systemd the agent is ready", "err", err)
				}
			}
			// The API's hooks on each reconcile are set once it is open.
			var onIteration func(agent.Iteration)
			if nodeLease <= 0 {
				return fmt.Errorf("--node-lease %s: must be positive", nodeLease)
			}
			var fl atomic.Pointer[agent.Fleet]
			e, err := o.openAll(ctx, selfHeal, agent.Config{Interval: interval, DriftInterval: driftInterval, Ready: ready,
				Desired: desired.Options{NodeLease: nodeLease},
				OnIteration: func(it agent.Iteration) {
					if onIteration != nil {
						onIteration(it)
					}
					if f := fl.Load(); f != nil {
						f.Kick()
					}
				}})
			if err != nil {
				return err
			}
			defer e.Close()
			so.nodeLease = nodeLease
			srv, err := o.openAPI(e, so)
			if err != nil {
				return err
			}
			defer srv.close()
			onIteration = srv.observe(e)
			fo.nodeLease = nodeLease
			f, err := o.startFleet(ctx, e, srv.metrics, srv.url, fo)
			if err != nil {
				return err
			}
			fl.Store(f)
			srv.serve(ctx)
			stopped := make(chan struct{})
			defer close(stopped)
			go notifySystemd(ctx, stopped, o.logger())
			return e.agent.Run(ctx)
		},
	}
	cmd.Flags().BoolVar(&selfHeal, "self-heal", true, "undo out-of-band changes (per VM: annotation nodevirt.io/self-heal: \"false\")")
	cmd.Flags().DurationVar(&interval, "interval", time.Minute, "git poll interval")
	cmd.Flags().DurationVar(&driftInterval, "drift-interval", 5*time.Minute, "full drift check interval (and local directory rescan)")
	cmd.Flags().DurationVar(&nodeLease, "node-lease", desired.DefaultNodeLease, "how long another node's status report holds a VM it runs: a VM placed here starts only once that node reports it stopped, or its report is older than this and its Node manifest has the taint node.kubernetes.io/out-of-service")
	cmd.Flags().StringVar(&so.listen, "listen", "127.0.0.1:9443", "address of the HTTPS API (status, drift, metrics, webhook, web page); '' turns it off (the unix socket <state>/nodevirt.sock is always served)")
	cmd.Flags().StringVar(&so.webhookSecret, "webhook-secret-file", "", "file holding the shared secret of git push webhooks (POST /hooks/git: GitHub, GitLab or X-Signature HMAC); unset: webhooks are refused")
	cmd.Flags().BoolVar(&o.allowReboot, "allow-reboot", false, "reboot the host when staged kernel arguments or boot-time module options need it")
	addFleetFlags(cmd, &fo)
	return cmd
}

// printStorageDrift lists how the host's storage differs from the source: out
// of band (a detached loop device, a missing disk) or not applied yet.
func printStorageDrift(w io.Writer, entries []drift.StorageEntry) {
	if len(entries) == 0 {
		fmt.Fprintln(w, "Storage: no drift.")
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintln(w, "Storage drift")
	for _, e := range entries {
		fmt.Fprintf(w, "%-9s %s  %s: %s\n", strings.ToUpper(e.Status), e.Object, e.Target, e.Reason)
		for _, c := range e.Changes {
			fmt.Fprintf(w, "          %s\n", c)
		}
	}
	fmt.Fprintln(w)
}

// mergeSettled is apply's report after waiting: the first apply's storage
// actions with those of the later ones, and the VMs as last applied (the
// ones the imports held back started then).
func mergeSettled(first, last agent.NodeReport) agent.NodeReport {
	if last.Plan.State == nil {
		return first
	}
	out := first
	if last.Plan.VMs != nil {
		out.Plan.VMs, out.VMs = last.Plan.VMs, last.VMs
		if first.Plan.VMs != nil && len(last.VMs.Outcomes) == 0 {
			out.Plan.VMs, out.VMs = first.Plan.VMs, first.VMs
		}
	}
	return out
}

// notifySystemd tells systemd, under a unit with WatchdogSec, that the
// process is alive at half the watchdog interval, and says STOPPING as soon
// as a stop is asked (the running step still finishes). Outside systemd
// (no NOTIFY_SOCKET) it does nothing.
func notifySystemd(ctx context.Context, stopped <-chan struct{}, log *slog.Logger) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("systemd watchdog settings", "err", err)
	}
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every / 2)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-stopped:
			// The agent may return before this goroutine saw the stop.
			if ctx.Err() != nil {
				_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
			}
			return
		case <-ctx.Done():
			_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
			return
		case <-tick:
			_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		}
	}
}
