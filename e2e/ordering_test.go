//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// R-9 through the agent: a VM whose DataVolume is still importing waits
// (reported), and starts on the complete disk as soon as the import ends.
func TestAgent_vmWaitsForItsDataVolume(t *testing.T) {
	sw := newStorageWorld(t)
	h := newImageHost(t)
	raw := testImage(24 << 20)
	// Raw (xz would shrink the mostly-zero image to nothing) and slow: 24 MiB
	// at 4 MiB/s, so the agent's first iterations see the import running.
	h.rate = 4 << 20
	url := h.put("root.raw", raw)
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
          disks: [{name: root, disk: {bus: virtio}}]
      volumes:
        - {name: root, dataVolume: {name: root}}
`, sw.ns)
	sw.write("all.yaml", storageClasses+sw.caConfigMap(h)+httpDV("root", url, "64Mi")+vm)
	a := sw.start("--source", sw.repo, "--state", sw.state, "--root", sw.hostRoot, "--namespace", sw.ns,
		"--node", storageNode, "--secrets-dir", sw.secrets, "--libvirt", "qemu:///system",
		"run", "--interval", "1h", "--drift-interval", "1h")
	await(t, "the VM to wait for its DataVolume", 30*time.Second, func() bool {
		return strings.Contains(a.logs(), "action=wait") && strings.Contains(a.logs(), "VirtualMachine "+sw.ns+"/app")
	})
	if s := domState(sw.dom("app")); s == "running" {
		t.Fatalf("the VM started before its DataVolume was imported")
	}
	took := sw.awaitState("app", "running", 60*time.Second)
	t.Logf("running %s after the wait was reported", took)
	xml := virsh(t, "dumpxml", sw.dom("app"))
	disk := filepath.Join("disk.img")
	if !strings.Contains(xml, disk) || strings.Contains(xml, "/volumes/"+sw.ns+"/root/") {
		t.Fatalf("the domain must use the claim's disk where storage keeps it:\n%s", xml)
	}
}
