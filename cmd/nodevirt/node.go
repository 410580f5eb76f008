package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/internal/nodedesc"
)

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
