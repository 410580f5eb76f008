package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/internal/status"
)

// volumeFlags are virtctl addvolume's and removevolume's flags.
type volumeFlags struct {
	name, serial, diskType, cache, bus string
	persist                            bool
}

// newAddVolumeCmd is virtctl addvolume: a DataVolume or PVC of the source
// attached to a running VM.
func newAddVolumeCmd(o *options) *cobra.Command {
	var f volumeFlags
	cmd := &cobra.Command{
		Use:   "addvolume VM --volume-name=DV",
		Short: "Attach a DataVolume or PVC of the source to a running VM (on its SCSI bus)",
		Long: `Attach a DataVolume or PersistentVolumeClaim of the source to a running VM,
on its SCSI controller, as virtctl addvolume does.

Without --persist the volume is gone at the VM's next restart. With --persist
the command prints the change of the VM's spec to commit; until a commit
holding it lands, the volume is attached again at every boot. Until then
drift shows it as "hot-plugged, not in the source".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.name == "" {
				return fmt.Errorf("--volume-name is required")
			}
			opts := kubevirtv1.AddVolumeOptions{
				Name: f.name,
				Disk: &kubevirtv1.Disk{Name: f.name, Serial: f.serial, Cache: kubevirtv1.DriverCache(f.cache)},
				// The agent looks the name up; a DataVolume by default.
				VolumeSource: &kubevirtv1.HotplugVolumeSource{DataVolume: &kubevirtv1.DataVolumeSource{Name: f.name, Hotpluggable: true}},
			}
			bus := kubevirtv1.DiskBus(f.bus)
			switch f.diskType {
			case "disk":
				opts.Disk.Disk = &kubevirtv1.DiskTarget{Bus: bus}
			case "lun":
				opts.Disk.LUN = &kubevirtv1.LunTarget{Bus: bus}
			default:
				return fmt.Errorf("--disk-type %q: want disk or lun", f.diskType)
			}
			return o.volumeAction(cmd, args[0], func(c volumeClient, ns, name string) (status.ActionResult, error) {
				return c.AddVolume(cmd.Context(), ns, name, opts, f.persist)
			})
		},
	}
	cmd.Flags().StringVar(&f.name, "volume-name", "", "name of the DataVolume or PVC to attach (it must be in the source and ready)")
	cmd.Flags().StringVar(&f.serial, "serial", "", "serial number the guest sees (default: the volume's name)")
	cmd.Flags().StringVar(&f.diskType, "disk-type", "disk", "disk or lun (a lun needs a Block volume)")
	cmd.Flags().StringVar(&f.cache, "cache", "", "driver cache mode: none, writethrough or writeback (default: libvirt's)")
	cmd.Flags().StringVar(&f.bus, "bus", "scsi", "bus of the disk; hot-plugged disks use scsi")
	cmd.Flags().BoolVar(&f.persist, "persist", false, "keep the volume across restarts and print the VM spec change to commit")
	return cmd
}

// newRemoveVolumeCmd is virtctl removevolume.
func newRemoveVolumeCmd(o *options) *cobra.Command {
	var f volumeFlags
	cmd := &cobra.Command{
		Use:   "removevolume VM --volume-name=NAME",
		Short: "Detach a hot-plugged volume from a running VM, once the guest released it",
		Long: `Detach a volume from a running VM, as virtctl removevolume does: one added
with addvolume, or a hotpluggable one the source declares. The command returns
once libvirt confirms the guest released the disk. A volume the source
declares stays detached until a commit removing it lands; the command prints
that change.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.name == "" {
				return fmt.Errorf("--volume-name is required")
			}
			opts := kubevirtv1.RemoveVolumeOptions{Name: f.name}
			return o.volumeAction(cmd, args[0], func(c volumeClient, ns, name string) (status.ActionResult, error) {
				return c.RemoveVolume(cmd.Context(), ns, name, opts, f.persist)
			})
		},
	}
	cmd.Flags().StringVar(&f.name, "volume-name", "", "name of the volume to detach")
	cmd.Flags().BoolVar(&f.persist, "persist", false, "also print the VM spec change to commit (a volume the source declares is always kept detached until it lands)")
	return cmd
}

// volumeClient is the running agent's API client or, with no agent
// running, the state opened here.
type volumeClient interface {
	AddVolume(ctx context.Context, namespace, name string, opts kubevirtv1.AddVolumeOptions, persist bool) (status.ActionResult, error)
	RemoveVolume(ctx context.Context, namespace, name string, opts kubevirtv1.RemoveVolumeOptions, persist bool) (status.ActionResult, error)
}

func (o *options) volumeAction(cmd *cobra.Command, vm string, do func(c volumeClient, ns, name string) (status.ActionResult, error)) error {
	if err := o.checkOutput(); err != nil {
		return err
	}
	ctx := cmd.Context()
	ns, name := o.namespace, vm
	if n, v, ok := strings.Cut(name, "/"); ok {
		ns, name = n, v
	}
	c, err := o.runningAgent(ctx)
	if err != nil {
		return err
	}
	var res status.ActionResult
	if c != nil {
		res, err = do(c, ns, name)
	} else {
		res, err = o.locally(ctx, func(e *env) (status.ActionResult, error) {
			return do(e.rt.Service(), ns, name)
		})
	}
	if err != nil {
		return err
	}
	return o.printVolumeResult(cmd.OutOrStdout(), res)
}

// printVolumeResult prints the result and, for people, the change to commit.
func (o *options) printVolumeResult(w io.Writer, res status.ActionResult) error {
	if err := o.printResult(w, res); err != nil || o.output != "table" || res.Patch == "" {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%s", res.Patch)
	return err
}
