package main

import (
	"fmt"

	"github.com/spf13/cobra"

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
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := o.openSource(cmd.Context())
			if err != nil {
				return err
			}
			defer e.Close()
			_, _, st, err := e.load(cmd.Context())
			if err != nil {
				return err
			}
			name := domain.DomainName(o.namespace, args[0])
			if vm := st.Lookup(name); vm != nil {
				fmt.Fprintln(cmd.OutOrStdout(), vm.XML)
				return nil
			}
			for _, d := range st.Diags.Errors() {
				if d.Object != "" && (d.Object == "VirtualMachine "+o.namespace+"/"+args[0] || d.Object == "VirtualMachineInstance "+o.namespace+"/"+args[0]) {
					fmt.Fprintln(cmd.ErrOrStderr(), d.Error())
				}
			}
			if obj, ok := st.Invalid[name]; ok {
				return fmt.Errorf("%s is invalid; fix the errors above", obj)
			}
			return fmt.Errorf("no VirtualMachine %s/%s placed on node %q in the source", o.namespace, args[0], o.node)
		},
	})
	return cmd
}
