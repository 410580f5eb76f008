package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/nodevirt/nodevirt/reconciler/vm"

	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/reconciler/drift"
)

// The demo runs the agent's main job in one process against libvirt's
// in-process test driver, whose state lives only as long as the connection:
// that is why it is one command and not a script of separate invocations.
func newDemoCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Validate, plan, apply, change a VM out of band and report drift, on libvirt's test driver",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("log-level") {
				// The demo prints its own report; per-action logs would interleave with it.
				o.logLevel = "warn"
			}
			if !cmd.Flags().Changed("libvirt") {
				o.libvirtURI = "test:///default"
			}
			if !cmd.Flags().Changed("root") {
				// The examples hold host configuration (MachineConfigs, Butane):
				// the demo applies it to a scratch root, never /etc. GRUB's
				// defaults file lets kernel arguments go to a drop-in there.
				dir, err := os.MkdirTemp("", "nodevirt-demo-root-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				if err := writeScratchGrub(dir); err != nil {
					return err
				}
				o.root = dir
			}
			if !cmd.Flags().Changed("state") {
				dir, err := os.MkdirTemp("", "nodevirt-demo-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				o.stateDir = dir
			}
			return runDemo(cmd, o)
		},
	}
}

// writeScratchGrub gives a scratch root the GRUB defaults file of a Debian
// host.
func writeScratchGrub(root string) error {
	p := filepath.Join(root, "etc", "default", "grub")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"), 0o644)
}

func runDemo(cmd *cobra.Command, o *options) error {
	ctx := cmd.Context()
	w := cmd.OutOrStdout()
	step := func(n int, title string) { fmt.Fprintf(w, "\n=== %d. %s\n\n", n, title) }

	e, err := o.openAll(ctx, true, agent.Config{})
	if err != nil {
		return err
	}
	defer e.Close()
	fmt.Fprintf(w, "nodevirt demo: source %s, libvirt %s, state %s\n", e.src, o.libvirtURI, o.stateDir)

	step(1, "nodevirt validate")
	snap, node, err := e.load(ctx)
	if err != nil {
		return err
	}
	set, st := node.Set, node.VMs
	diag.Fprint(w, st.Diags, sourceText(snap.Root(), snap.Dir))
	fmt.Fprintf(w, "%d objects in %d files; %d errors\n", len(set.Objects), set.Files, len(st.Diags.Errors()))

	step(2, "nodevirt plan")
	n, err := e.agent.Load(ctx)
	if err != nil {
		return err
	}
	np, err := e.agent.Plan(ctx, n)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Host configuration goes under %s (a scratch directory unless --root is given).\n", o.root)
	if err := printNodePlan(w, np); err != nil {
		return err
	}

	step(3, "nodevirt apply (host configuration, storage, VMs, then the teardown of storage they no longer use)")
	if err := demoApply(ctx, w, e, n); err != nil {
		return err
	}

	step(4, "out-of-band changes (what `virsh destroy` and `virsh edit` would do)")
	st = n.VMs
	if len(st.VMs) == 0 {
		return fmt.Errorf("the demo needs at least one VM in %s", o.source)
	}
	victim := st.VMs[0]
	if err := e.hv.Destroy(ctx, victim.DomainName); err != nil {
		return err
	}
	fmt.Fprintf(w, "destroyed %s\n", victim.DomainName)
	if len(st.VMs) > 1 {
		edited := st.VMs[1]
		xml := regexp.MustCompile(`<vcpu( [^>]*)?>\d+</vcpu>`).ReplaceAllString(edited.XML, `<vcpu$1>3</vcpu>`)
		if err := e.hv.Define(ctx, xml); err != nil {
			return err
		}
		fmt.Fprintf(w, "redefined %s with 3 vCPUs by hand\n", edited.DomainName)
	}
	others, err := e.hv.Domains(ctx)
	if err != nil {
		return err
	}
	for _, d := range others {
		if st.Lookup(d.Name) == nil {
			fmt.Fprintf(w, "domain %q is not nodevirt's: it is never touched\n", d.Name)
		}
	}

	step(5, "nodevirt drift")
	if err := showDrift(ctx, w, e); err != nil {
		return err
	}

	step(6, "self-heal (what `nodevirt run` does on the libvirt event)")
	if err := demoApply(ctx, w, e, n); err != nil {
		return err
	}

	step(7, "nodevirt drift")
	return showDrift(ctx, w, e)
}

// printNodePlan prints every stage's plan in the order apply runs them.
func printNodePlan(w io.Writer, np agent.NodePlan) error {
	if np.Host != nil {
		// The VM plan's diagnostics are the whole revision's: each is
		// printed once, after the stages.
		hp := *np.Host
		hp.Diags = nil
		printHostPlan(w, hp)
	}
	if np.Storage != nil {
		fmt.Fprintln(w, "\nStorage plan")
		sp := *np.Storage
		sp.Diags = nil
		printStoragePlan(w, &sp)
	}
	fmt.Fprintln(w)
	if np.VMs == nil {
		return nil
	}
	printPlan(w, summary(np.State), np.VMs.Plan)
	return nil
}

// demoApply is one agent iteration: every stage, in the agent's order.
func demoApply(ctx context.Context, w io.Writer, e *env, n *agent.Node) error {
	nr := e.agent.Apply(ctx, n)
	st := nr.Plan.State
	for _, msg := range nr.Errors {
		fmt.Fprintln(w, "error:", msg)
	}
	if nr.Plan.Host != nil {
		if err := printHostReport(w, "table", *nr.Plan.Host, nr.Host); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\nStorage apply")
	printStorageReport(w, nr.Storage)
	var vmPlan vm.Plan
	if nr.Plan.VMs != nil {
		vmPlan = nr.Plan.VMs.Plan
	}
	if err := printReport(w, "table", st, vmPlan, nr.VMs); err != nil {
		return err
	}
	// The demo is about the VMs: a host configuration or storage failure
	// (a root without a boot loader for kernel arguments) is shown, not fatal.
	if nr.VMs.Failed > 0 || nr.Plan.VMs == nil {
		return fmt.Errorf("apply failed: %w", nr.Err())
	}
	if err := nr.Err(); err != nil {
		fmt.Fprintf(w, "\nnot everything applied: %v\n", err)
	}
	return nil
}

func showDrift(ctx context.Context, w io.Writer, e *env) error {
	n, err := e.agent.Load(ctx)
	if err != nil {
		return err
	}
	np, err := e.agent.Plan(ctx, n)
	if err != nil {
		return err
	}
	printDrift(w, drift.VMs(np.VMs.Plan))
	return nil
}
