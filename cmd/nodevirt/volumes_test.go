package main

import (
	"strings"
	"testing"
)

const hotplugSourceVM = `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: app, namespace: default}
spec:
  runStrategy: Halted
  template:
    spec:
      domain:
        memory: {guest: 64Mi}
        devices:
          disks: [{name: root, disk: {bus: virtio}}]
      volumes:
        - {name: root, emptyDisk: {capacity: 16Mi}}
`

// addvolume and removevolume through the state (no agent runs): the
// flags are checked, the source decides what exists, and the messages are
// virtctl's.
func TestAddRemoveVolume_cli(t *testing.T) {
	src := t.TempDir()
	write(t, src, "vm.yaml", hotplugSourceVM)
	common := []string{"--source", src, "--libvirt", "test:///default", "--node", "n1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"addvolume", "app"}, "--volume-name is required"},
		{[]string{"addvolume", "app", "--volume-name=data", "--disk-type=floppy"}, `--disk-type "floppy": want disk or lun`},
		{[]string{"addvolume", "app", "--volume-name=data"}, "DataVolume default/data is not in the source: only DataVolumes and PVCs of the source can be hot-plugged"},
		{[]string{"addvolume", "app", "--volume-name=root"}, "Unable to add volume [root] because volume with that name already exists"},
		{[]string{"addvolume", "app", "--volume-name=data", "--bus=virtio"}, "hot-plugged disks use scsi"},
		{[]string{"addvolume", "nope", "--volume-name=data"}, "VirtualMachine default/nope is not in this node's desired state"},
		{[]string{"removevolume", "app", "--volume-name=data"}, "Unable to remove volume [data] because it does not exist"},
		{[]string{"removevolume", "app", "--volume-name=root"}, "Unable to remove volume [root] because it is not hotpluggable"},
	} {
		out, errOut, code := run(t, append(append([]string{}, common...), tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, want 1 and %q\n%s%s", tc.args, code, tc.want, out, errOut)
		}
	}
}
