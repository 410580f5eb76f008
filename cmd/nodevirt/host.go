package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/nodeconfig"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/host"
	"github.com/nodevirt/nodevirt/runtime/hostfacts"
	"github.com/nodevirt/nodevirt/runtime/hostfs"
	"github.com/nodevirt/nodevirt/runtime/kargs"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
	"github.com/nodevirt/nodevirt/runtime/pci"
	"github.com/nodevirt/nodevirt/runtime/selinux"
	"github.com/nodevirt/nodevirt/runtime/statedb"
	"github.com/nodevirt/nodevirt/runtime/systemd"
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
	snap, set, st, err := e.load(ctx)
	if err != nil {
		return nil, err
	}
	cfg, _ := nodeconfig.Render(set, snap.Dir, nodeconfig.NodeFor(set, e.o.node, cpuInfo(e.o.root).Vendor))
	return &renderedHost{revision: snap.Revision, dir: snap.Dir, set: set, st: st, cfg: cfg}, nil
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

// cpuInfo reads <root>/proc/cpuinfo; an unreadable one is an unknown CPU.
func cpuInfo(root string) nodeconfig.CPUInfo {
	b, err := hostfs.New(root).ReadFile("/proc/cpuinfo")
	if err != nil {
		return nodeconfig.CPUInfo{}
	}
	return nodeconfig.ParseCPUInfo(b)
}

// hostDeps wires the runtime drivers of --root into the host reconciler;
// the record and backups live in <state>/host. close releases the systemd
// connection.
func (o *options) hostDeps(ctx context.Context) (host.Deps, func(), error) {
	stateDir := filepath.Join(o.stateDir, "host")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return host.Deps{}, nil, fmt.Errorf("host state directory: %w", err)
	}
	run := hostfs.Exec{Root: o.root}
	units := systemd.Open(ctx, o.root)
	return host.Deps{
		Files:   hostfs.New(o.root),
		State:   hostfs.New(stateDir),
		Units:   units,
		Kargs:   kargs.Detect(o.root, run),
		Devices: pciDevices{pci.New(o.root, run)},
		SELinux: selinux.New(o.root),
	}, units.Close, nil
}

// newHostReconciler is what plan, apply, drift and run use for host
// configuration.
func (o *options) newHostReconciler(ctx context.Context, selfHeal, allowReboot bool) (*host.Reconciler, func(), error) {
	deps, closeFn, err := o.hostDeps(ctx)
	if err != nil {
		return nil, nil, err
	}
	return host.New(host.Config{SelfHeal: selfHeal, AllowReboot: allowReboot, AllowPruneAll: o.allowPruneAll, PruneGuardShare: o.pruneGuardShare, Log: o.logger()}, deps), closeFn, nil
}

// pciDevices adapts runtime/pci to the reconciler's Devices.
type pciDevices struct{ s *pci.Sysfs }

func (p pciDevices) List() ([]host.Device, error) {
	devs, err := p.s.List()
	if err != nil {
		return nil, err
	}
	out := make([]host.Device, len(devs))
	for i, d := range devs {
		out[i] = host.Device{Address: d.Address, Vendor: d.Vendor, Device: d.Device, Class: d.Class, Driver: d.Driver, IOMMUGroup: d.IOMMUGroup, NUMANode: d.NUMANode}
	}
	return out, nil
}

func (p pciDevices) Bind(ctx context.Context, addr, driver string) error {
	return p.s.Bind(ctx, addr, driver)
}

func (p pciDevices) Release(ctx context.Context, addr string) error { return p.s.Release(ctx, addr) }

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
	var selfHeal, allowReboot, exitOnDrift bool
	plan := &cobra.Command{
		Use:   "plan",
		Short: "Show what host apply would do, with field-level changes (dry run)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, p, _, err := o.hostPlan(cmd.Context(), nil, true, false)
			if err != nil {
				return err
			}
			return printHostPlan(cmd.OutOrStdout(), o.output, p)
		},
	}
	apply := &cobra.Command{
		Use:   "apply",
		Short: "Make the host configuration match the source once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Taken before the source is fetched and the host observed, and
			// held until the apply ends.
			db, err := o.lockState()
			if err != nil {
				return err
			}
			defer db.Close()
			r, p, closeFn, err := o.hostPlan(cmd.Context(), db, selfHeal, allowReboot)
			if err != nil {
				return err
			}
			defer closeFn()
			rep := r.Apply(cmd.Context(), p)
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
	drift := &cobra.Command{
		Use:   "drift",
		Short: "Compare the host configuration with the source, field by field",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, p, _, err := o.hostPlan(cmd.Context(), nil, true, false)
			if err != nil {
				return err
			}
			if err := printHostDrift(cmd.OutOrStdout(), o.output, p); err != nil {
				return err
			}
			if exitOnDrift && len(p.Drift()) > 0 {
				return exitCode(2)
			}
			return nil
		},
	}
	drift.Flags().BoolVar(&exitOnDrift, "exit-code", false, "exit 2 when anything drifted")
	cmd.AddCommand(render, plan, apply, drift)
	return cmd
}

// hostPlan renders the source's host configuration and plans it against
// the host. db is the state lock host apply holds (nil for plan and drift,
// which read the host record without it and never stand in an agent's way);
// it stays open. The returned close releases the systemd connection.
func (o *options) hostPlan(ctx context.Context, db *statedb.DB, selfHeal, allowReboot bool) (*host.Reconciler, host.Plan, func(), error) {
	if err := o.checkOutput(); err != nil {
		return nil, host.Plan{}, nil, err
	}
	e, err := o.openSourceWith(ctx, db)
	if err != nil {
		return nil, host.Plan{}, nil, err
	}
	defer e.Close()
	rh, err := e.loadHost(ctx)
	if err != nil {
		return nil, host.Plan{}, nil, err
	}
	r, closeFn, err := o.newHostReconciler(ctx, selfHeal, allowReboot)
	if err != nil {
		return nil, host.Plan{}, nil, err
	}
	p, err := r.Plan(ctx, rh.cfg)
	if err != nil {
		closeFn()
		return nil, host.Plan{}, nil, err
	}
	p.Revision = rh.revision
	return r, p, closeFn, nil
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

func printHostPlan(w io.Writer, format string, p host.Plan) error {
	if format != "table" {
		return printData(w, format, p)
	}
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
	return nil
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\n", a.Kind, a.Target, orNone(a.Object), a.Reason, flags)
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
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Kind, o.Target, o.Result, o.Took, detail)
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

// HostDriftEntry is one difference between the host and the source.
type HostDriftEntry struct {
	Target string    `json:"target"`
	Object string    `json:"object,omitempty"`
	Status string    `json:"status"`
	Reason string    `json:"reason"`
	Action host.Kind `json:"action"`
	Fields []string  `json:"changes,omitempty"`
}

func printHostDrift(w io.Writer, format string, p host.Plan) error {
	var entries []HostDriftEntry
	drifted := 0
	for _, a := range p.Actions {
		status := "pending"
		switch {
		case a.Drift:
			status = "drifted"
			drifted++
		case a.Kind == host.RebootRequired:
			status = "reboot-required"
		case a.Kind == host.NotApplicable:
			status = "not-applicable"
		case a.Kind == host.Keep:
			status = "invalid"
		case a.Kind == host.Hold:
			status = "held"
		case a.Kind == host.DeviceUnbound:
			status = "unbound"
		}
		e := HostDriftEntry{Target: a.Target, Object: a.Object, Status: status, Reason: a.Reason, Action: a.Kind}
		for _, c := range a.Changes {
			e.Fields = append(e.Fields, c.String())
		}
		entries = append(entries, e)
	}
	if format != "table" {
		return printData(w, format, map[string]any{"revision": p.Revision, "drifted": drifted, "inSync": p.InSync, "entries": entries,
			"pruneSuspended": p.PruneSuspended, "pruneHeld": p.PruneHeld})
	}
	fmt.Fprintf(w, "Host drift report for %s\n", orNone(p.Revision))
	printHostPruneHeld(w, p)
	if len(entries) == 0 {
		fmt.Fprintf(w, "No drift: %d files, units and checks match the source.\n", p.InSync)
		return nil
	}
	for _, e := range entries {
		fmt.Fprintf(w, "%-15s %s  %s (%s)\n", strings.ToUpper(e.Status), e.Target, orNone(e.Object), e.Action)
		for _, f := range e.Fields {
			// A content diff's lines indented under its summary.
			fmt.Fprintf(w, "                %s\n", strings.ReplaceAll(f, "\n", "\n                  "))
		}
		fmt.Fprintf(w, "                %s\n", e.Reason)
	}
	fmt.Fprintf(w, "%d drifted, %d in sync\n", drifted, p.InSync)
	return nil
}

// --- node describe ---

func newNodeCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "This node as the source and the host describe it"}
	cmd.AddCommand(&cobra.Command{
		Use:   "describe",
		Short: "Labels, capacity and allocatable like `oc describe node`, permitted PCI devices and the VMs holding them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, rh, err := o.sourceHost(cmd.Context())
			if err != nil {
				return err
			}
			defer e.Close()
			nd, err := describeNode(cmd.Context(), o, e.facts, rh)
			if err != nil {
				return err
			}
			return printNode(cmd.OutOrStdout(), o.output, nd)
		},
	})
	return cmd
}

// NodeDescription is `node describe`'s output.
type NodeDescription struct {
	Name        string            `json:"name"`
	Roles       []string          `json:"roles"`
	Labels      map[string]string `json:"labels"`
	CPU         CPUDescription    `json:"cpu"`
	Capacity    map[string]string `json:"capacity"`
	Allocatable map[string]string `json:"allocatable"`
	Devices     []NodeDevice      `json:"pciDevices,omitempty"`
	// Notes say what could not be read (libvirt, record).
	Notes []string `json:"notes,omitempty"`
}

// CPUDescription is the host CPU.
type CPUDescription struct {
	Vendor   string   `json:"vendor"`
	Model    string   `json:"model"`
	Features []string `json:"features,omitempty"`
}

// NodeDevice is a PCI device that a permitted selector matches.
type NodeDevice struct {
	Address     string   `json:"address"`
	ID          string   `json:"id"`
	Class       string   `json:"class,omitempty"`
	Driver      string   `json:"driver,omitempty"`
	IOMMUGroup  string   `json:"iommuGroup,omitempty"`
	Resource    string   `json:"resource"`
	Allocatable bool     `json:"allocatable"`
	HeldBy      []string `json:"heldBy,omitempty"`
	RequestedBy []string `json:"requestedBy,omitempty"`
}

// kubevirtDeviceCount is what KubeVirt's kvm, tun and vhost-net device
// plugins advertise (the seed's `oc describe node` shows 110).
const kubevirtDeviceCount = 110

func describeNode(ctx context.Context, o *options, facts hostfacts.Facts, rh *renderedHost) (NodeDescription, error) {
	h := rh.cfg
	cpu := cpuInfo(o.root)
	nd := NodeDescription{Name: h.Node.Name, Roles: h.Node.Roles, Labels: map[string]string{}, Capacity: map[string]string{}, Allocatable: map[string]string{}}
	for k, v := range h.Node.Labels {
		nd.Labels[k] = v
	}
	nd.Labels["kubernetes.io/hostname"] = h.Node.Name
	nd.Labels["kubernetes.io/arch"] = facts.Arch
	for _, r := range h.Node.Roles {
		if _, ok := nd.Labels[nodeconfig.LabelRolePrefix+r]; !ok {
			nd.Labels[nodeconfig.LabelRolePrefix+r] = ""
		}
	}
	if o.cpuManager {
		nd.Labels["cpumanager"] = "true"
	} else if _, ok := nd.Labels["cpumanager"]; !ok {
		nd.Labels["cpumanager"] = "false"
	}
	if vendor := map[string]string{"intel": "Intel", "amd": "AMD"}[cpu.Vendor]; vendor != "" {
		nd.Labels["cpu-vendor.node.kubevirt.io/"+vendor] = "true"
	}
	nd.CPU = CPUDescription{Vendor: cpu.VendorID, Model: cpu.Model, Features: cpu.Flags}
	if facts.KVM {
		nd.Labels["kubevirt.io/schedulable"] = "true"
	}

	fsys := hostfs.New(o.root)
	q := func(n int64, f resource.Format) string { return resource.NewQuantity(n, f).String() }
	nd.Capacity["cpu"] = strconv.Itoa(facts.CPUs)
	nd.Capacity["memory"] = q(facts.MemoryBytes, resource.BinarySI)
	var huge int64
	for _, hp := range []struct{ name, dir string }{{"hugepages-2Mi", "hugepages-2048kB"}, {"hugepages-1Gi", "hugepages-1048576kB"}} {
		n := int64(0)
		if b, err := fsys.ReadFile("/sys/kernel/mm/hugepages/" + hp.dir + "/nr_hugepages"); err == nil {
			n, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		}
		size := int64(2 << 20)
		if hp.name == "hugepages-1Gi" {
			size = 1 << 30
		}
		huge += n * size
		nd.Capacity[hp.name] = q(n*size, resource.BinarySI)
	}
	devCount := func(p string) string {
		if _, err := fsys.Lstat(p); err == nil {
			return strconv.Itoa(kubevirtDeviceCount)
		}
		return "0"
	}
	nd.Capacity["devices.kubevirt.io/kvm"] = "0"
	if facts.KVM {
		nd.Capacity["devices.kubevirt.io/kvm"] = strconv.Itoa(kubevirtDeviceCount)
	}
	nd.Capacity["devices.kubevirt.io/tun"] = devCount("/dev/net/tun")
	nd.Capacity["devices.kubevirt.io/vhost-net"] = devCount("/dev/vhost-net")

	// Permitted PCI resources: devices bound to vfio-pci count (KubeVirt's
	// rule); an external provider's devices count whatever their driver;
	// resources removed from the permitted list stay with 0, as in the seed.
	devs, err := pciDevices{pci.New(o.root, nil)}.List()
	if err != nil {
		return nd, err
	}
	rec, err := host.LoadRecord(hostfs.New(filepath.Join(o.stateDir, "host")))
	if err != nil {
		nd.Notes = append(nd.Notes, "host state record: "+err.Error())
	}
	held, heldNote := heldDevices(ctx, o)
	if heldNote != "" {
		nd.Notes = append(nd.Notes, heldNote)
	}
	requested := requestedDevices(rh)
	for _, r := range host.Resources(h, devs, rec) {
		nd.Capacity[r.Name] = strconv.Itoa(len(r.Allocatable))
		for _, d := range r.Devices {
			ok := r.External || d.Driver == "vfio-pci"
			nd.Devices = append(nd.Devices, NodeDevice{Address: d.Address, ID: d.ID(), Class: d.Class, Driver: d.Driver, IOMMUGroup: d.IOMMUGroup,
				Resource: r.Name, Allocatable: ok, HeldBy: held[d.Address], RequestedBy: requested[r.Name]})
		}
	}
	sort.Slice(nd.Devices, func(i, j int) bool { return nd.Devices[i].Address < nd.Devices[j].Address })
	for k, v := range nd.Capacity {
		nd.Allocatable[k] = v
	}
	// The kubelet takes pre-allocated huge pages out of allocatable memory.
	nd.Allocatable["memory"] = q(facts.MemoryBytes-huge, resource.BinarySI)
	return nd, nil
}

// heldDevices maps PCI addresses to the domains (and their VMs) that have
// them as <hostdev>, from libvirt's definitions.
func heldDevices(ctx context.Context, o *options) (map[string][]string, string) {
	out := map[string][]string{}
	hv, err := virt.Open(ctx, o.libvirtURI)
	if err != nil {
		return out, fmt.Sprintf("libvirt %s unreachable, devices held by VMs unknown: %v", o.libvirtURI, err)
	}
	defer hv.Close()
	doms, err := hv.Domains(ctx)
	if err != nil {
		return out, fmt.Sprintf("libvirt %s: %v", o.libvirtURI, err)
	}
	for _, d := range doms {
		name := d.Name
		if ow, ok := desired.OwnerOf(d.XML); ok {
			name = fmt.Sprintf("%s %s/%s (domain %s, %s)", ow.Kind, ow.Namespace, ow.Name, d.Name, d.State)
		} else {
			name = fmt.Sprintf("domain %s (%s)", d.Name, d.State)
		}
		for _, addr := range hostdevAddresses(d.XML) {
			out[addr] = append(out[addr], name)
		}
	}
	return out, ""
}

// hostdevAddresses returns the PCI addresses of a domain's <hostdev>s.
func hostdevAddresses(domainXML string) []string {
	var dom struct {
		Hostdevs []struct {
			Type   string `xml:"type,attr"`
			Source struct {
				Address struct {
					Domain   string `xml:"domain,attr"`
					Bus      string `xml:"bus,attr"`
					Slot     string `xml:"slot,attr"`
					Function string `xml:"function,attr"`
				} `xml:"address"`
			} `xml:"source"`
		} `xml:"devices>hostdev"`
	}
	if xml.Unmarshal([]byte(domainXML), &dom) != nil {
		return nil
	}
	var out []string
	for _, h := range dom.Hostdevs {
		if h.Type != "pci" {
			continue
		}
		a := h.Source.Address
		num := func(s string) int64 {
			n, _ := strconv.ParseInt(strings.TrimPrefix(s, "0x"), 16, 64)
			return n
		}
		out = append(out, fmt.Sprintf("%04x:%02x:%02x.%x", num(a.Domain), num(a.Bus), num(a.Slot), num(a.Function)))
	}
	return out
}

// requestedDevices maps resource names to the VMs placed on this node that
// ask for them (hostDevices and gpus deviceName).
func requestedDevices(rh *renderedHost) map[string][]string {
	out := map[string][]string{}
	here := map[string]bool{}
	for _, vm := range rh.st.VMs {
		here[vm.Object] = true
	}
	for _, obj := range rh.st.Invalid {
		here[obj] = true
	}
	for _, o := range rh.set.Objects {
		if !here[o.Ref.String()] {
			continue
		}
		var devs *kubevirtv1.Devices
		switch v := o.Value.(type) {
		case *kubevirtv1.VirtualMachine:
			if v.Spec.Template != nil {
				devs = &v.Spec.Template.Spec.Domain.Devices
			}
		case *kubevirtv1.VirtualMachineInstance:
			devs = &v.Spec.Domain.Devices
		}
		if devs == nil {
			continue
		}
		for _, d := range devs.HostDevices {
			out[d.DeviceName] = append(out[d.DeviceName], o.Ref.String())
		}
		for _, g := range devs.GPUs {
			out[g.DeviceName] = append(out[g.DeviceName], o.Ref.String())
		}
	}
	return out
}

func printNode(w io.Writer, format string, nd NodeDescription) error {
	if format != "table" {
		return printData(w, format, nd)
	}
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
	return nil
}
