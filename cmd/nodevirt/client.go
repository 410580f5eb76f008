package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	kubevirtv1 "kubevirt.io/api/core/v1"
	snapshotv1beta1 "kubevirt.io/api/snapshot/v1beta1"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/runtime/statedb"
)

// clientOptions say how the CLI reaches a running agent: its socket in
// the state directory, or an HTTPS address with a token.
type clientOptions struct {
	server string
	creds  api.Credentials
}

// runningAgent returns a client of the agent that holds the state
// directory, or nil when none runs there (the caller then opens the state
// itself). With --server it is always that agent.
func (o *options) runningAgent(ctx context.Context) (*api.Client, error) {
	if o.client.server != "" {
		return api.Remote(o.client.server, o.client.creds)
	}
	held, err := statedb.Held(filepath.Join(o.stateDir, "state.db"))
	if err != nil || !held {
		return nil, nil
	}
	c, err := api.Local(ctx, socketPath(o.stateDir))
	if errors.Is(err, api.ErrNoAgent) {
		// An agent without the socket (an older one) or another command:
		// opening the state says which.
		return nil, nil
	}
	return c, err
}

// nodeStatus is the status from the running agent, or made here from the
// state and a plan when none runs.
func (o *options) nodeStatus(ctx context.Context) (status.Node, error) {
	c, err := o.runningAgent(ctx)
	if err != nil {
		return status.Node{}, err
	}
	if c != nil {
		return c.Status(ctx)
	}
	e, err := o.openAll(ctx, true, agent.Config{})
	if err != nil {
		return status.Node{}, err
	}
	defer e.Close()
	return e.agent.StatusNow(ctx)
}

func newStatusCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "The node's status: source revision, last fetch and reconcile, suspension, drift, holds, host and every object's state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			st, err := o.nodeStatus(cmd.Context())
			if err != nil {
				return err
			}
			if o.output != "table" {
				return o.printObject(cmd.OutOrStdout(), kindNodeStatus, st)
			}
			printStatus(cmd.OutOrStdout(), o.node, st)
			return nil
		},
	}
}

func printStatus(w io.Writer, node string, st status.Node) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Node:\t%s\n", node)
	fmt.Fprintf(tw, "Source:\t%s\n", st.Source.URL)
	fmt.Fprintf(tw, "Revision:\t%s\n", orNone(st.Source.Revision))
	if st.Source.LastFetch != nil {
		fmt.Fprintf(tw, "Last fetch:\t%s\n", st.Source.LastFetch.Local().Format(time.RFC3339))
	}
	if st.Source.FetchError != "" {
		fmt.Fprintf(tw, "Fetch error:\t%s\n", st.Source.FetchError)
	}
	if r := st.Reconcile; r.Last != nil {
		fmt.Fprintf(tw, "Last reconcile:\t%s (took %s, %d actions)\n", r.Last.Local().Format(time.RFC3339), r.Duration, r.Actions)
	}
	for _, e := range st.Reconcile.Errors {
		fmt.Fprintf(tw, "Error:\t%s\n", e)
	}
	susp := "no"
	if st.Suspension.Global {
		susp = "yes, the whole node"
	}
	if len(st.Suspension.Objects) > 0 {
		susp += ", and " + strings.Join(st.Suspension.Objects, ", ")
	}
	fmt.Fprintf(tw, "Suspended:\t%s\n", susp)
	fmt.Fprintf(tw, "Differences:\t%d steps (%d objects changed out of band)\n", len(st.Differences), st.Drifted)
	for _, h := range st.Holds {
		fmt.Fprintf(tw, "Held:\t%s %s: %s\n", h.Action, h.Object, h.Reason)
	}
	reboot := "no"
	if st.Host.RebootRequired {
		reboot = "yes: " + st.Host.Reason
	}
	fmt.Fprintf(tw, "Reboot required:\t%s\n", reboot)
	fmt.Fprintf(tw, "Host steps pending:\t%d\n", st.Host.Pending)
	if sb := st.StatusBranch; sb != nil {
		fmt.Fprintf(tw, "Status branch:\t%s\n", statusBranchLine(*sb))
	}
	phases := map[string]int{}
	for _, vm := range st.VirtualMachines {
		phases[string(vm.Status.PrintableStatus)]++
	}
	fmt.Fprintf(tw, "VirtualMachines:\t%d%s\n", len(st.VirtualMachines), counts(phases))
	dvs := map[string]int{}
	for _, dv := range st.DataVolumes {
		dvs[string(dv.Status.Phase)]++
	}
	fmt.Fprintf(tw, "DataVolumes:\t%d%s\n", len(st.DataVolumes), counts(dvs))
	fmt.Fprintf(tw, "Claims, volumes:\t%d, %d\n", len(st.PersistentVolumeClaims), len(st.PersistentVolumes))
	tw.Flush()
}

// counts is " (2 Running, 1 Stopped)".
func counts(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// getKinds are the kinds `get` knows, by every name kubectl accepts.
var getKinds = map[string]string{
	"vm": "vm", "vms": "vm", "virtualmachine": "vm", "virtualmachines": "vm",
	"vmi": "vmi", "vmis": "vmi", "virtualmachineinstance": "vmi", "virtualmachineinstances": "vmi",
	"dv": "dv", "dvs": "dv", "datavolume": "dv", "datavolumes": "dv",
	"pvc": "pvc", "pvcs": "pvc", "persistentvolumeclaim": "pvc", "persistentvolumeclaims": "pvc",
	"pv": "pv", "pvs": "pv", "persistentvolume": "pv", "persistentvolumes": "pv",
	"vmsnapshot": "vmsnapshot", "vmsnapshots": "vmsnapshot", "virtualmachinesnapshot": "vmsnapshot", "virtualmachinesnapshots": "vmsnapshot",
	"vmsnapshotcontent": "vmsnapshotcontent", "vmsnapshotcontents": "vmsnapshotcontent",
	"virtualmachinesnapshotcontent": "vmsnapshotcontent", "virtualmachinesnapshotcontents": "vmsnapshotcontent",
	"vmrestore": "vmrestore", "vmrestores": "vmrestore", "virtualmachinerestore": "vmrestore", "virtualmachinerestores": "vmrestore",
}

// resources are the kinds' plural names, as kubectl's errors say them.
var resources = map[string]string{"vm": "virtualmachines.kubevirt.io", "vmi": "virtualmachineinstances.kubevirt.io",
	"dv": "datavolumes.cdi.kubevirt.io", "pvc": "persistentvolumeclaims", "pv": "persistentvolumes",
	"vmsnapshot": "virtualmachinesnapshots.snapshot.kubevirt.io", "vmsnapshotcontent": "virtualmachinesnapshotcontents.snapshot.kubevirt.io",
	"vmrestore": "virtualmachinerestores.snapshot.kubevirt.io"}

func newGetCmd(o *options) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "get vm|vmi|dv|pvc|pv|vmsnapshot|vmsnapshotcontent|vmrestore [NAME]",
		Short: "List VMs, VMIs, DataVolumes, claims, volumes, snapshots or restores with their status, as kubectl get does (-o wide|json|yaml)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, ok := getKinds[strings.ToLower(args[0])]
			if !ok {
				return fmt.Errorf("unknown kind %q: want vm, vmi, dv, pvc, pv, vmsnapshot, vmsnapshotcontent or vmrestore", args[0])
			}
			switch o.output {
			case "table", "wide", "json", "yaml":
			default:
				return fmt.Errorf("--output %q: want table, wide, json or yaml", o.output)
			}
			st, err := o.nodeStatus(cmd.Context())
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 2 {
				name = args[1]
			}
			items := selectObjects(st, kind, o.namespace, all, name)
			if name != "" && len(items) == 0 {
				return fmt.Errorf("%s %q not found", resources[kind], name)
			}
			w := cmd.OutOrStdout()
			switch o.output {
			case "json", "yaml":
				if name != "" {
					return printData(w, o.output, items[0].obj)
				}
				list := make([]any, len(items))
				for i, it := range items {
					list[i] = it.obj
				}
				return printData(w, o.output, map[string]any{"apiVersion": "v1", "kind": "List", "items": list})
			}
			if len(items) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "No resources found in %s namespace.\n", o.namespace)
				return nil
			}
			printObjects(w, kind, items, all, o.output == "wide")
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list the objects of every namespace")
	return cmd
}

// object is one row of `get`: the object and its cells.
type object struct {
	namespace string
	obj       any
	cells     []string
	wide      []string
}

func selectObjects(st status.Node, kind, ns string, all bool, name string) []object {
	var out []object
	keep := func(n, namespace string) bool {
		return (name == "" || n == name) && (all || namespace == "" || namespace == ns)
	}
	switch kind {
	case "vm":
		for _, v := range st.VirtualMachines {
			if keep(v.Name, v.Namespace) {
				out = append(out, object{v.Namespace, v, []string{v.Name, string(v.Status.PrintableStatus), fmt.Sprint(v.Status.Ready)},
					[]string{string(v.Status.RunStrategy), differs(st, "VirtualMachine "+v.Namespace+"/"+v.Name)}})
			}
		}
	case "vmi":
		for _, v := range st.VirtualMachineInstances {
			if keep(v.Name, v.Namespace) {
				out = append(out, object{v.Namespace, v, []string{v.Name, string(v.Status.Phase), v.Status.NodeName, fmt.Sprint(v.Status.Phase == kubevirtv1.Running)}, nil})
			}
		}
	case "dv":
		for _, d := range st.DataVolumes {
			if keep(d.Name, d.Namespace) {
				out = append(out, object{d.Namespace, d, []string{d.Name, string(d.Status.Phase), orNone(string(d.Status.Progress)), fmt.Sprint(d.Status.RestartCount)}, nil})
			}
		}
	case "pvc":
		for _, c := range st.PersistentVolumeClaims {
			if keep(c.Name, c.Namespace) {
				class := ""
				if c.Spec.StorageClassName != nil {
					class = *c.Spec.StorageClassName
				}
				out = append(out, object{c.Namespace, c, []string{c.Name, string(c.Status.Phase), c.Spec.VolumeName, quantity(c.Status.Capacity), class}, nil})
			}
		}
	case "pv":
		for _, v := range st.PersistentVolumes {
			if keep(v.Name, "") {
				claim := ""
				if v.Spec.ClaimRef != nil {
					claim = v.Spec.ClaimRef.Namespace + "/" + v.Spec.ClaimRef.Name
				}
				out = append(out, object{"", v, []string{v.Name, quantity(v.Spec.Capacity), string(v.Spec.PersistentVolumeReclaimPolicy),
					string(v.Status.Phase), claim, v.Spec.StorageClassName}, nil})
			}
		}
	default:
		out = snapshotObjects(st, kind, keep)
	}
	return out
}

// snapshotObjects are the rows of the snapshot kinds, with kubectl's
// columns for KubeVirt's CRDs.
func snapshotObjects(st status.Node, kind string, keep func(name, namespace string) bool) []object {
	var out []object
	now := time.Now()
	switch kind {
	case "vmsnapshot":
		for _, s := range st.VirtualMachineSnapshots {
			if !keep(s.Name, s.Namespace) {
				continue
			}
			cells := []string{s.Name, s.Spec.Source.Kind, s.Spec.Source.Name, "", "", "", ""}
			if x := s.Status; x != nil {
				cells[3] = string(x.Phase)
				if x.ReadyToUse != nil {
					cells[4] = fmt.Sprint(*x.ReadyToUse)
				}
				cells[5], cells[6] = age(now, x.CreationTime), snapshotError(x.Error)
			}
			out = append(out, object{s.Namespace, s, cells, nil})
		}
	case "vmsnapshotcontent":
		for _, c := range st.VirtualMachineSnapshotContents {
			if !keep(c.Name, c.Namespace) {
				continue
			}
			cells := []string{c.Name, "", "", ""}
			if x := c.Status; x != nil {
				if x.ReadyToUse != nil {
					cells[1] = fmt.Sprint(*x.ReadyToUse)
				}
				cells[2], cells[3] = age(now, x.CreationTime), snapshotError(x.Error)
			}
			out = append(out, object{c.Namespace, c, cells, nil})
		}
	case "vmrestore":
		for _, r := range st.VirtualMachineRestores {
			if !keep(r.Name, r.Namespace) {
				continue
			}
			cells := []string{r.Name, r.Spec.Target.Kind, r.Spec.Target.Name, "", "", ""}
			if x := r.Status; x != nil {
				if x.Complete != nil {
					cells[3] = fmt.Sprint(*x.Complete)
				}
				cells[4] = age(now, x.RestoreTime)
				for _, c := range x.Conditions {
					if c.Type == snapshotv1beta1.ConditionReady && c.Status == corev1.ConditionFalse && c.Message != "" {
						cells[5] = c.Message
					}
				}
			}
			out = append(out, object{r.Namespace, r, cells, nil})
		}
	}
	return out
}

// age is kubectl's age of t ("" when unset).
func age(now time.Time, t *metav1.Time) string {
	if t == nil {
		return ""
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func snapshotError(e *snapshotv1beta1.Error) string {
	if e == nil || e.Message == nil {
		return ""
	}
	return *e.Message
}

// differs says whether the object has steps that differ from the source.
func differs(st status.Node, object string) string {
	for _, s := range st.Differences {
		if s.Object == object {
			return s.Action
		}
	}
	return "-"
}

func quantity(l corev1.ResourceList) string {
	if q, ok := l[corev1.ResourceStorage]; ok {
		return q.String()
	}
	return ""
}

var getColumns = map[string][]string{
	"vm":                {"NAME", "STATUS", "READY"},
	"vmi":               {"NAME", "PHASE", "NODENAME", "READY"},
	"dv":                {"NAME", "PHASE", "PROGRESS", "RESTARTS"},
	"pvc":               {"NAME", "STATUS", "VOLUME", "CAPACITY", "STORAGECLASS"},
	"pv":                {"NAME", "CAPACITY", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS"},
	"vmsnapshot":        {"NAME", "SOURCEKIND", "SOURCENAME", "PHASE", "READYTOUSE", "CREATIONTIME", "ERROR"},
	"vmsnapshotcontent": {"NAME", "READYTOUSE", "CREATIONTIME", "ERROR"},
	"vmrestore":         {"NAME", "TARGETKIND", "TARGETNAME", "COMPLETE", "RESTORETIME", "ERROR"},
}

var wideColumns = map[string][]string{"vm": {"RUNSTRATEGY", "DIFFERS"}}

func printObjects(w io.Writer, kind string, items []object, all, wide bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	cols := getColumns[kind]
	if wide {
		cols = append(cols, wideColumns[kind]...)
	}
	if all && kind != "pv" {
		cols = append([]string{"NAMESPACE"}, cols...)
	}
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for _, it := range items {
		cells := it.cells
		if wide {
			cells = append(cells, it.wide...)
		}
		if all && kind != "pv" {
			cells = append([]string{it.namespace}, cells...)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// newVMActionCmd is start, stop, restart, pause or unpause of one VM.
func newVMActionCmd(o *options, action, short string) *cobra.Command {
	return &cobra.Command{
		Use:   action + " VM",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			ctx := cmd.Context()
			ns, name := o.namespace, args[0]
			if n, v, ok := strings.Cut(name, "/"); ok {
				ns, name = n, v
			}
			c, err := o.runningAgent(ctx)
			if err != nil {
				return err
			}
			var res status.ActionResult
			if c != nil {
				res, err = c.VMAction(ctx, action, ns, name)
			} else {
				res, err = o.locally(ctx, func(e *env) (status.ActionResult, error) {
					return e.rt.Service().VMAction(ctx, action, ns, name)
				})
			}
			if err != nil {
				return err
			}
			return o.printResult(cmd.OutOrStdout(), res)
		},
	}
}

// locally runs an action on the state directly, no agent running.
func (o *options) locally(ctx context.Context, f func(*env) (status.ActionResult, error)) (status.ActionResult, error) {
	e, err := o.openAll(ctx, true, agent.Config{})
	if err != nil {
		return status.ActionResult{}, err
	}
	defer e.Close()
	return f(e)
}

// printResult prints what an imperative command did: a line for people,
// {"changed": …} for automation.
func (o *options) printResult(w io.Writer, res status.ActionResult) error {
	if o.output != "table" {
		return printData(w, o.output, res)
	}
	msg := res.Message
	if msg == "" {
		msg = res.Action + " " + res.Object
	}
	if !res.Changed {
		msg += " (nothing changed)"
	}
	_, err := fmt.Fprintln(w, msg)
	return err
}

func newReconcileCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "reconcile",
		Short: "Ask the running agent to fetch the source and apply now",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			c, err := o.runningAgent(cmd.Context())
			if err != nil {
				return err
			}
			if c == nil {
				return fmt.Errorf("no agent runs on the state directory %s: `nodevirt apply` fetches and applies once", o.stateDir)
			}
			res, err := c.Reconcile(cmd.Context())
			if err != nil {
				return err
			}
			return o.printResult(cmd.OutOrStdout(), res)
		},
	}
}

// newSuspendCmd is suspend (on) or resume of reconciliation.
func newSuspendCmd(o *options, on bool) *cobra.Command {
	use, short := "resume [OBJECT]", "Resume reconciliation of the node, or of one object (KIND/NAME, e.g. vm/web)"
	if on {
		use, short = "suspend [OBJECT]", "Suspend reconciliation of the node, or of one object (KIND/NAME, e.g. vm/web): drift is still reported, nothing is applied"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			ctx := cmd.Context()
			object := ""
			if len(args) == 1 {
				object = args[0]
			}
			c, err := o.runningAgent(ctx)
			if err != nil {
				return err
			}
			var res status.ActionResult
			if c != nil {
				res, err = c.Suspend(ctx, object, on)
			} else {
				res, err = o.locally(ctx, func(e *env) (status.ActionResult, error) {
					return e.rt.Service().Suspend(ctx, object, on)
				})
			}
			if err != nil {
				return err
			}
			return o.printResult(cmd.OutOrStdout(), res)
		},
	}
}
