package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

func newRenderCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Print what nodevirt would put on the host",
	}
	cmd.AddCommand(newRenderHostCmd(o))
	cmd.AddCommand(&cobra.Command{
		Use:   "domain NAME",
		Short: "Print the libvirt domain XML the agent would define for a VirtualMachine",
		Long: "Print the libvirt domain XML the agent would define for a VirtualMachine or VirtualMachineInstance:\n" +
			"the same domain type, CPU pins, host devices and disk sources, read from the state directory\n" +
			"(or allocated as a fresh state would, when a running nodevirt holds it).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			oc, err := o.openConfig(true, agent.Stages{}, false)
			if err != nil {
				return err
			}
			oc.RenderAsApply = true
			e, err := o.open(cmd.Context(), oc)
			if err != nil {
				return err
			}
			defer e.Close()
			for _, n := range e.rt.Notes {
				fmt.Fprintln(cmd.ErrOrStderr(), "note:", n)
			}
			_, node, err := e.load(cmd.Context())
			if err != nil {
				return err
			}
			return printDomain(cmd.OutOrStdout(), cmd.ErrOrStderr(), node.VMs, o.namespace, args[0], o.node)
		},
	})
	return cmd
}

// printDomain prints the rendered domain of namespace/name, or fails with
// why this node has none: invalid, not placeable (and what it lacks),
// placed on another node, or placed here but unable to start.
func printDomain(out, errOut io.Writer, st *desired.State, namespace, name, node string) error {
	dn := domain.DomainName(namespace, name)
	objects := []string{"VirtualMachine " + namespace + "/" + name, "VirtualMachineInstance " + namespace + "/" + name}
	if vm := st.Lookup(dn); vm != nil {
		if vm.Unschedulable != "" {
			return fmt.Errorf("%s cannot start on node %q: %s", vm.Object, node, vm.Unschedulable)
		}
		fmt.Fprintln(out, vm.XML)
		return nil
	}
	for _, d := range st.Diags.Errors() {
		if d.Object != "" && (d.Object == objects[0] || d.Object == objects[1]) {
			fmt.Fprintln(errOut, d.Error())
		}
	}
	if obj, ok := st.Invalid[dn]; ok {
		return fmt.Errorf("%s is invalid; fix the errors above", obj)
	}
	// desired says these as "Kind ns/name: reason".
	if s, ok := st.Unschedulable[dn]; ok {
		obj, why, _ := strings.Cut(s, ": ")
		return fmt.Errorf("%s cannot be placed: %s", obj, why)
	}
	if s, ok := st.OtherNode[dn]; ok {
		obj, why, _ := strings.Cut(s, ": ")
		return fmt.Errorf("%s is not rendered on node %q: %s", obj, node, why)
	}
	return fmt.Errorf("no VirtualMachine %s/%s (nor VirtualMachineInstance) in the source", namespace, name)
}
