//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// `storage apply` on its own, not the agent, keeps the disk of a running
// domain: the claim is gone from the source, but libvirt says a domain uses
// its disk, so the delete is held and reported until the domain lets go.
func TestStorage_applyKeepsTheDiskOfARunningDomain(t *testing.T) {
	sw := newStorageWorld(t)
	dv := `---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: data}
spec:
  source: {blank: {}}
  pvc: {storageClassName: hostpath, accessModes: [ReadWriteOnce], resources: {requests: {storage: 8Mi}}}
`
	vm := fmt.Sprintf(`---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: app, namespace: %s}
spec:
  runStrategy: Always
  template:
    spec:
      terminationGracePeriodSeconds: 0
      domain:
        cpu:
          features: [{name: arch-capabilities, policy: disable}]
        memory: {guest: 64Mi}
        devices:
          disks: [{name: data, disk: {bus: virtio}}]
      volumes:
        - {name: data, dataVolume: {name: data}}
`, sw.ns)
	sw.write("classes.yaml", storageClasses)
	sw.write("dv.yaml", dv)
	sw.write("vm.yaml", vm)
	// TCG: this test is about storage, not about whether the host's KVM
	// runs guests.
	if out, errOut, err := sw.nodevirtAt(sw.repo, "--node", storageNode, "--secrets-dir", sw.secrets,
		"--domain-type", "qemu", "apply", "--timeout", "3m"); err != nil {
		t.Fatalf("apply: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	if st := domState(sw.dom("app")); st != "running" {
		t.Fatalf("domain %s is %q, want running", sw.dom("app"), st)
	}
	disk := sw.describe().claim(t, sw.ns+"/data").Status.Path
	if disk == "" || !strings.Contains(virsh(t, "dumpxml", sw.dom("app")), "'"+disk+"'") {
		t.Fatalf("the domain does not use the claim's disk %q", disk)
	}

	// The VM and its claim leave the source (a claim a VM of the source
	// names stays); no agent runs, so the domain stays defined and running.
	sw.write("dv.yaml", "")
	sw.write("vm.yaml", "")
	// --allow-prune-all confirms removing every claim with data, so the
	// prune guard holds nothing: only the domain using the disk does.
	out := sw.mustStorage("apply", "--allow-prune-all")
	if strings.Contains(out, "delete-data") {
		t.Fatalf("storage apply deleted the data of a disk in use:\n%s", out)
	}
	if _, err := os.Stat(disk); err != nil {
		t.Fatalf("the running domain's disk is gone: %v", err)
	}
	if st := domState(sw.dom("app")); st != "running" {
		t.Fatalf("domain %s is %q after storage apply, want running", sw.dom("app"), st)
	}
	plan := sw.mustStorage("plan", "--allow-prune-all")
	if !strings.Contains(plan, "hold") || !strings.Contains(plan, sw.ns+"/data") || !strings.Contains(plan, "domain still uses its disk") {
		t.Fatalf("storage plan must report the hold and say why:\n%s", plan)
	}

	// Once no domain uses it, the next storage apply deletes it.
	virsh(t, "destroy", sw.dom("app"))
	virsh(t, "undefine", sw.dom("app"), "--nvram")
	out = sw.mustStorage("apply", "--allow-prune-all")
	if !strings.Contains(out, "delete-data") {
		t.Fatalf("storage apply after the domain went:\n%s", out)
	}
	if _, err := os.Stat(disk); !os.IsNotExist(err) {
		t.Fatalf("the disk of the removed claim is still there: %v", err)
	}
}
