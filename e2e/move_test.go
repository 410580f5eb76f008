//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// movedStorage is a static hostPath volume on node with a blank
// DataVolume bound to it, and a VM on the same node using it.
func movedStorage(ns, node string) map[string]string {
	return map[string]string{
		"storage.yaml": fmt.Sprintf(`apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: %[1]s-move-pv}
spec:
  hostPath: {path: /pv/move}
  capacity: {storage: 512Mi}
  volumeMode: Filesystem
  storageClassName: local
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [%[2]s]}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: data, namespace: %[1]s}
spec:
  source: {blank: {}}
  pvc: {storageClassName: local, accessModes: [ReadWriteOnce], resources: {requests: {storage: 384Mi}}}
`, ns, node),
		"vm.yaml": fmt.Sprintf(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: app, namespace: %s}
spec:
  runStrategy: Always
  template:
    spec:
      terminationGracePeriodSeconds: 0
      nodeSelector:
        kubernetes.io/hostname: %s
      domain:
        cpu:
          features: [{name: arch-capabilities, policy: disable}]
        memory: {guest: 64Mi}
        devices:
          disks: [{name: data, disk: {bus: virtio}}]
      volumes:
        - {name: data, dataVolume: {name: data}}
`, ns, node),
	}
}

// A local disk moves with its VM when git moves the volume's nodeAffinity
// (seed 8.18.12): the old node stops the VM and serves the disk over
// mutual TLS to the new node, which pulls it and starts the VM; the old
// copy goes once the new node reports the VM running.
func TestFleet_moveDisk(t *testing.T) {
	// Blocked: after the commit that moves both the volume's nodeAffinity
	// and the VM's nodeSelector to n2, n1's VM stage still desires the VM
	// (it plans update+restart with the claim's disk resolved to a path
	// under the state directory) while n1's storage counts the claim as
	// used on another node: the old node never stops the VM, so n2 never
	// starts it. Up to there the move works: n2 finds n1 in the reports,
	// pulls over mutual TLS and n1 answers 403 "a running domain here
	// still uses" the volume. The VM and storage stages must agree on the
	// VM's node before this test can pass.
	// SKIPREMOVED
	f := newFleetWorld(t)
	nodes := []string{"n1", "n2"}
	disk := map[string]string{}
	for _, n := range nodes {
		dir := filepath.Join(f.base, "nodes", n, "root", "pv", "move")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		disk[n] = filepath.Join(dir, "disk.img")
	}
	f.commit("a VM with a local disk on n1", movedStorage(f.ns, "n1"))
	f.startAgents(nodes, "--listen", "127.0.0.1:0", "--allowed-root", "/pv")
	running := func(node string) func(fleetStatus) bool {
		return func(fs fleetStatus) bool {
			for _, v := range fs.VMs {
				if v.Name == "app" && v.Node == node && v.Running {
					return len(fs.Nodes) == 2
				}
			}
			return false
		}
	}
	f.awaitFleet("app running on n1", 90*time.Second, running("n1"))
	st, err := os.Stat(disk["n1"])
	if err != nil {
		t.Fatal(err)
	}
	// Content nobody could make up: the copy must be this one.
	content := make([]byte, st.Size())
	rand.Read(content)
	if err := os.WriteFile(disk["n1"], content, 0o644); err != nil {
		t.Fatal(err)
	}

	f.commit("move the disk and its VM to n2", movedStorage(f.ns, "n2"))
	// The transfer is cut once: n2 dies as soon as its journal holds a
	// verified chunk, and its next run resumes after that chunk.
	journal := disk["n2"] + ".partial.journal"
	midway := func() bool {
		var j struct{ Done []bool }
		b, err := os.ReadFile(journal)
		return err == nil && json.Unmarshal(b, &j) == nil && slices.Contains(j.Done, true) && slices.Contains(j.Done, false)
	}
	// Polled often: six chunks of 64 MiB go by in seconds.
	for deadline := time.Now().Add(2 * time.Minute); !midway(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("n2 journalled no chunk of the move in 2m:\n%s", f.agents["n2"].logs())
		}
	}
	f.agents["n2"].kill9()
	f.startAgents([]string{"n2"}, "--listen", "127.0.0.1:0", "--allowed-root", "/pv")
	fs := f.awaitFleet("app running on n2", 3*time.Minute, running("n2"))
	if logs := f.agents["n2"].logs(); !strings.Contains(logs, "resuming a disk pull") || !strings.Contains(logs, "disk pulled") {
		t.Errorf("n2's second run must resume the pull, not start it again:\n%s", logs)
	}
	for _, v := range fs.VMs {
		if v.Name == "app" && v.Node == "n1" && v.Running {
			t.Fatalf("app runs on two nodes: %+v", fs.VMs)
		}
	}
	got, err := os.ReadFile(disk["n2"])
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("n2's disk differs from n1's (%d of %d bytes, %v)\nn1:\n%s\nn2:\n%s", len(got), len(content), err, f.agents["n1"].logs(), f.agents["n2"].logs())
	}
	await(t, "n1's copy to go once n2 runs the VM", time.Minute, func() bool {
		_, err := os.Stat(disk["n1"])
		return errors.Is(err, os.ErrNotExist)
	})
}
