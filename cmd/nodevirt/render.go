package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/reconciler"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	virt "github.com/nodevirt/nodevirt/runtime/libvirt"
	"github.com/nodevirt/nodevirt/runtime/statedb"
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
			e, err := o.openSource(cmd.Context())
			if err != nil {
				return err
			}
			defer e.Close()
			if err := e.probeDomainType(cmd.Context(), cmd.ErrOrStderr()); err != nil {
				return err
			}
			if err := e.readOnlyResources(cmd.ErrOrStderr()); err != nil {
				return err
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

// probeDomainType makes --domain-type auto the choice apply makes: it asks
// libvirt, as apply does. When libvirt does not answer, the choice falls
// back to /dev/kvm under --root, said once on errOut.
func (e *env) probeDomainType(ctx context.Context, errOut io.Writer) error {
	if e.o.domainType != "auto" && e.o.domainType != "" {
		return nil
	}
	h, err := virt.Open(ctx, e.o.libvirtURI)
	if err != nil {
		fmt.Fprintf(errOut, "note: libvirt %s does not answer (%v): --domain-type auto is decided from /dev/kvm (%s)\n", e.o.libvirtURI, err, e.domainType)
		return nil
	}
	defer h.Close()
	e.domainType, err = e.o.domainTypeFor(ctx, e.facts, h.DomainType)
	return err
}

// readOnlyResources lets a read-only render bind VMs as apply would: the
// CPU pool and permitted devices of the host, and the allocations and claim
// bindings persisted in the state database, opened read-only. While a
// running nodevirt holds the database it cannot be read: resources are then
// allocated as a fresh state would (said once on errOut).
func (e *env) readOnlyResources(errOut io.Writer) error {
	e.res = e.o.nodeResources()
	path := filepath.Join(e.o.stateDir, "state.db")
	var kv *statedb.DB
	held, err := statedb.Held(path)
	if err == nil && !held {
		kv, err = statedb.OpenReadOnly(path)
		if errors.Is(err, fs.ErrNotExist) {
			err = nil // no state yet: a fresh plan
		}
		if errors.Is(err, statedb.ErrLocked) {
			held, err = true, nil
		}
	}
	if err != nil {
		return err
	}
	if held {
		fmt.Fprintf(errOut, "note: a running nodevirt holds the state directory %s: CPU pins, host devices and claim disks are allocated as for a fresh state, not read from it\n", e.o.stateDir)
	}
	if kv == nil {
		// The storage manager plans against records: an empty database in
		// a scratch directory has none, as a fresh state.
		dir, err := os.MkdirTemp("", "nodevirt-render-")
		if err != nil {
			return fmt.Errorf("scratch state for render: %w", err)
		}
		e.closer = append(e.closer, func() error { return os.RemoveAll(dir) })
		if kv, err = statedb.Create(filepath.Join(dir, "state.db")); err != nil {
			return err
		}
	}
	e.closer = append(e.closer, kv.Close)
	e.res.Allocations = func() (map[string]domain.Pinning, map[string][]domain.AssignedDevice, error) {
		return reconciler.Allocations(kv)
	}
	sm, err := newStorageManager(e.o, &storageFlags{}, kv)
	if err != nil {
		return err
	}
	e.closer = append(e.closer, func() error { sm.Close(); return nil })
	e.res.Storage = sm
	return nil
}
