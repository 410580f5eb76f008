package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/internal/nodedesc"
	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/nodeconfig"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/drift"
	"github.com/nodevirt/nodevirt/reconciler/host"
)

// Host configuration commands: `render host` (newRenderHostCmd, to hang under
// `render`), `host render|plan|apply|drift` (host configuration on its own)
// and `node describe`.

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

// hostConfigView is render host's output: contents as text.
type hostConfigView struct {
	Revision         string                   `json:"revision"`
	Node             nodeconfig.Node          `json:"node"`
	Configs          []nodeconfig.Config      `json:"configs"`
	Files            []fileView               `json:"files"`
	Units            []unitView               `json:"units"`
	KernelArgs       []string                 `json:"kernelArguments"`
	KernelArgsAbsent []string                 `json:"kernelArgumentsAbsent,omitempty"`
	VFIO             nodeconfig.VFIO          `json:"vfio"`
	PCI              []nodeconfig.PCIResource `json:"pciResources,omitempty"`
	Labels           []nodeconfig.LabelCheck  `json:"selinuxLabels,omitempty"`
	HostPathDirs     []nodeconfig.HostPathDir `json:"hostPathDirs,omitempty"`
	Invalid          []string                 `json:"invalid,omitempty"`
	Diags            diag.List                `json:"diagnostics,omitempty"`
}

type fileView struct {
	Path  string `json:"path"`
	Mode  string `json:"mode"`
	Owner string `json:"owner"`
	// Contents is the file as text; binary files are base64 in ContentsBase64.
	Contents       string            `json:"contents,omitempty"`
	ContentsBase64 []byte            `json:"contentsBase64,omitempty"`
	Source         nodeconfig.Source `json:"source"`
}

type unitView struct {
	Name     string              `json:"name"`
	Enabled  *bool               `json:"enabled,omitempty"`
	Mask     *bool               `json:"mask,omitempty"`
	Contents *string             `json:"contents,omitempty"`
	Dropins  []nodeconfig.Dropin `json:"dropins,omitempty"`
	Source   nodeconfig.Source   `json:"source"`
}

func ownerString(f nodeconfig.File) string {
	u, g := "root", "root"
	switch {
	case f.User != "":
		u = f.User
	case f.UID != nil:
		u = strconv.Itoa(*f.UID)
	}
	switch {
	case f.Group != "":
		g = f.Group
	case f.GID != nil:
		g = strconv.Itoa(*f.GID)
	}
	return u + ":" + g
}

func viewHostConfig(rh *renderedHost) hostConfigView {
	h := rh.cfg
	v := hostConfigView{Revision: rh.revision, Node: h.Node, Configs: h.Configs, VFIO: h.VFIO, PCI: h.PCI, Labels: h.Labels,
		HostPathDirs: h.HostPathDirs, Invalid: h.Invalid, Diags: h.Diags, Files: []fileView{}, Units: []unitView{}, KernelArgs: h.KernelArgValues()}
	for _, f := range h.Files {
		fv := fileView{Path: f.Path, Mode: nodeconfig.ModeString(f.Mode), Owner: ownerString(f), Source: f.Source}
		if utf8.Valid(f.Contents) {
			fv.Contents = string(f.Contents)
		} else {
			fv.ContentsBase64 = f.Contents
		}
		v.Files = append(v.Files, fv)
	}
	for _, u := range h.Units {
		v.Units = append(v.Units, unitView{Name: u.Name, Enabled: u.Enabled, Mask: u.Mask, Contents: u.Contents, Dropins: u.Dropins, Source: u.Source})
	}
	for _, k := range h.KernelArgsAbsent {
		v.KernelArgsAbsent = append(v.KernelArgsAbsent, k.Value)
	}
	return v
}

func where(s nodeconfig.Source) string {
	out := s.Object
	if s.File != "" {
		out += " (" + s.File
		if s.Line > 0 {
			out += ":" + strconv.Itoa(s.Line)
		}
		out += ")"
	}
	if s.Path != "" {
		out += " " + s.Path
	}
	return out
}

func boolWord(b *bool, yes, no, unset string) string {
	if b == nil {
		return unset
	}
	if *b {
		return yes
	}
	return no
}

func printHostConfig(w io.Writer, format string, rh *renderedHost) error {
	v := viewHostConfig(rh)
	if format != "table" {
		return printData(w, format, v)
	}
	h := rh.cfg
	fmt.Fprintf(w, "Host configuration for node %s (roles %s) at %s\n", h.Node.Name, strings.Join(h.Node.Roles, ", "), rh.revision)
	applied := 0
	for _, c := range h.Configs {
		if c.Applies && !c.Invalid {
			applied++
		}
	}
	fmt.Fprintf(w, "%d of %d configs apply to this node.\n", applied, len(h.Configs))
	indent := func(s string) {
		for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
			fmt.Fprintf(w, "    | %s\n", l)
		}
	}
	fmt.Fprintf(w, "\nFiles (%d):\n", len(v.Files))
	for _, f := range v.Files {
		fmt.Fprintf(w, "  %s  mode %s  owner %s  from %s\n", f.Path, f.Mode, f.Owner, where(f.Source))
		if f.ContentsBase64 != nil {
			fmt.Fprintf(w, "    | (%d bytes of binary data)\n", len(f.ContentsBase64))
		} else {
			indent(f.Contents)
		}
	}
	fmt.Fprintf(w, "\nUnits (%d):\n", len(h.Units))
	for _, u := range h.Units {
		state := boolWord(u.Enabled, "enabled", "disabled", "enablement unchanged")
		if u.Mask != nil && *u.Mask {
			state = "masked"
		}
		fmt.Fprintf(w, "  %s  %s  from %s\n", u.Name, state, where(u.Source))
		if u.Contents != nil {
			indent(*u.Contents)
		}
		for _, d := range u.Dropins {
			note := ""
			if d.Generated != "" {
				note = " (added by nodevirt: " + d.Generated + ")"
			}
			fmt.Fprintf(w, "    drop-in %s%s\n", d.Name, note)
			indent(d.Contents)
		}
	}
	fmt.Fprintf(w, "\nKernel arguments (%d):\n", len(h.KernelArgs))
	for _, k := range h.KernelArgs {
		fmt.Fprintf(w, "  %s  from %s\n", k.Value, where(k.Source))
	}
	for _, k := range h.KernelArgsAbsent {
		fmt.Fprintf(w, "  not %s  from %s\n", k.Value, where(k.Source))
	}
	if len(h.PCI) > 0 || len(h.VFIO.IDs) > 0 {
		fmt.Fprintf(w, "\nVFIO: ids %s; vfio-pci loaded at boot: %v; IOMMU: %s; generate: %v; bind at run time: %v\n",
			orNone(strings.Join(h.VFIO.IDs, ",")), h.VFIO.ModulesLoad, orNone(strings.Join(h.VFIO.IOMMU, " ")), h.VFIO.Generate, h.VFIO.Bind)
		for _, p := range h.PCI {
			ext := ""
			if p.External {
				ext = " (external device plugin)"
			}
			fmt.Fprintf(w, "  %s -> %s%s\n", p.Selector, p.ResourceName, ext)
		}
	}
	if len(h.Labels) > 0 {
		fmt.Fprintln(w, "\nSELinux labels checked:")
		for _, l := range h.Labels {
			fmt.Fprintf(w, "  %s  type %s  set by %s\n", l.Path, l.Type, l.Unit)
		}
	}
	for _, obj := range h.Invalid {
		fmt.Fprintf(w, "\nINVALID %s: not applied; what nodevirt applied from it earlier is kept.\n", obj)
	}
	if len(h.Diags) > 0 {
		fmt.Fprintf(w, "\n%d diagnostics:\n", len(h.Diags))
		diag.Fprint(w, h.Diags, sourceText(rh.set.Tree, rh.dir))
	}
	return nil
}

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

// --- node describe ---

func newNodeCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "This node as the source and the host describe it"}
	cmd.AddCommand(&cobra.Command{
		Use:   "describe",
		Short: "Labels, capacity and allocatable like `oc describe node`, permitted PCI devices and the VMs holding them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			oc, err := o.openConfig(true, agent.Stages{}, false)
			if err != nil {
				return err
			}
			oc.Hypervisor = true // which domains hold the devices
			e, err := o.open(cmd.Context(), oc)
			if err != nil {
				return err
			}
			defer e.Close()
			rh, err := e.loadHost(cmd.Context())
			if err != nil {
				return err
			}
			in := nodedesc.Input{Root: o.root, StateDir: o.stateDir, CPUManager: o.cpuManager, Facts: e.facts,
				Host: rh.cfg, State: rh.st, Set: rh.set, PCI: agent.PCIDevices(o.root, nil), DomainsErr: e.rt.HypervisorErr}
			if e.hv != nil {
				in.Domains = e.hv
			}
			nd, err := nodedesc.Describe(cmd.Context(), in)
			if err != nil {
				return err
			}
			if o.output != "table" {
				return o.printObject(cmd.OutOrStdout(), kindNodeDescription, nd)
			}
			printNode(cmd.OutOrStdout(), nd)
			return nil
		},
	})
	return cmd
}

// printNode prints the node description as `oc describe node` does.
func printNode(w io.Writer, nd nodedesc.Description) {
	fmt.Fprintf(w, "Name:               %s\n", nd.Name)
	fmt.Fprintf(w, "Roles:              %s\n", strings.Join(nd.Roles, ","))
	keys := make([]string, 0, len(nd.Labels))
	for k := range nd.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		head := "Labels:"
		if i > 0 {
			head = ""
		}
		fmt.Fprintf(w, "%-20s%s=%s\n", head, k, nd.Labels[k])
	}
	fmt.Fprintf(w, "CPU:                %s (%s)\n", orNone(nd.CPU.Model), orNone(nd.CPU.Vendor))
	if len(nd.CPU.Features) > 0 {
		fmt.Fprintf(w, "CPU features:       %s\n", strings.Join(nd.CPU.Features, " "))
	}
	section := func(title string, m map[string]string) {
		fmt.Fprintf(w, "%s:\n", title)
		ks := make([]string, 0, len(m))
		width := 0
		for k := range m {
			ks = append(ks, k)
			width = max(width, len(k)+1)
		}
		sort.Strings(ks)
		for _, k := range ks {
			fmt.Fprintf(w, "  %-*s %s\n", width, k+":", m[k])
		}
	}
	section("Capacity", nd.Capacity)
	section("Allocatable", nd.Allocatable)
	if len(nd.Devices) > 0 {
		fmt.Fprintln(w, "PCI devices:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  ADDRESS\tID\tDRIVER\tIOMMU GROUP\tRESOURCE\tHELD BY\tREQUESTED BY")
		for _, d := range nd.Devices {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Address, d.ID, orNone(d.Driver), orNone(d.IOMMUGroup), d.Resource,
				orNone(strings.Join(d.HeldBy, ", ")), orNone(strings.Join(d.RequestedBy, ", ")))
		}
		tw.Flush()
	}
	for _, n := range nd.Notes {
		fmt.Fprintf(w, "Note: %s\n", n)
	}
}
