package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/manifests/diag"
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
				// the demo shows its plan against a scratch root, never /etc.
				dir, err := os.MkdirTemp("", "nodevirt-demo-root-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
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
	st, err = e.agent.Load(ctx)
	if err != nil {
		return err
	}
	p, err := e.rec.Plan(ctx, st)
	if err != nil {
		return err
	}
	if err := printPlan(w, "table", st, p.Plan); err != nil {
		return err
	}

	fmt.Fprintln(w)
	hp, err := e.hostRec.Plan(ctx, e.agent.HostConfig())
	if err != nil {
		return err
	}
	hp.Revision = st.Revision
	fmt.Fprintf(w, "Host configuration against the scratch root %s (shown, not applied by the demo):\n", o.root)
	if err := printHostPlan(w, "table", hp); err != nil {
		return err
	}

	step(3, "nodevirt apply")
	rep := e.rec.Apply(ctx, p)
	if err := printReport(w, "table", st, p.Plan, rep); err != nil {
		return err
	}
	if rep.Failed > 0 {
		return fmt.Errorf("apply failed: %w", rep.Err())
	}

	step(4, "out-of-band changes (what `virsh destroy` and `virsh edit` would do)")
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
	if err := drift(ctx, w, e); err != nil {
		return err
	}

	step(6, "self-heal (what `nodevirt run` does on the libvirt event)")
	p, err = e.rec.Plan(ctx, st)
	if err != nil {
		return err
	}
	rep = e.rec.Apply(ctx, p)
	if err := printReport(w, "table", st, p.Plan, rep); err != nil {
		return err
	}

	step(7, "nodevirt drift")
	return drift(ctx, w, e)
}

func drift(ctx context.Context, w io.Writer, e *env) error {
	st, err := e.agent.Load(ctx)
	if err != nil {
		return err
	}
	p, err := e.rec.Plan(ctx, st)
	if err != nil {
		return err
	}
	return printDrift(w, "table", driftReport(st, p))
}
