package agent_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/runtime/statedb"
	"github.com/nodevirt/nodevirt/source"
)

const storageManifests = `apiVersion: hostpathprovisioner.kubevirt.io/v1beta1
kind: HostPathProvisioner
metadata: {name: hostpath-provisioner}
spec:
  pathConfig: {path: /var/hpvolumes}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: hostpath
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubevirt.io/hostpath-provisioner
reclaimPolicy: Delete
volumeBindingMode: Immediate
`

const blankDV = `apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: data, namespace: default}
spec:
  source: {blank: {}}
  pvc: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 8Mi}}}
`

// testNode writes a libvirt test-driver node file holding domains; each
// connection to it parses it anew.
func testNode(t *testing.T, path string, domains ...string) string {
	t.Helper()
	node := `<node><cpu><mhz>2000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads></cpu><memory>4194304</memory>` +
		strings.Join(domains, "") + `</node>`
	if err := os.WriteFile(path, []byte(node), 0o644); err != nil {
		t.Fatal(err)
	}
	return "test://" + path
}

func openConfig(dir, src, uri string, stages agent.Stages) agent.OpenConfig {
	return agent.OpenConfig{
		Source:          source.Options{URL: src},
		StateDir:        filepath.Join(dir, "state"),
		Root:            filepath.Join(dir, "root"),
		LibvirtURI:      uri,
		DomainType:      "auto",
		Node:            "n1",
		Namespace:       "default",
		SelfHeal:        true,
		AllowPruneAll:   true, // only the in-use hold may keep a removed claim's data
		PruneGuardShare: 1,
		Lock:            true,
		Stages:          stages,
	}
}

// The state lock is taken by Open and released by Close, last.
func TestOpen_lockHeldUntilClose(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "web.yaml"), []byte(vmYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := openConfig(dir, src, testNode(t, filepath.Join(dir, "node.xml")), agent.AllStages)
	ctx := context.Background()
	rt, err := agent.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rt.VMs == nil || rt.Host == nil || rt.Storage == nil || rt.HV == nil || rt.DomainType == "" {
		t.Fatalf("every stage opened: %+v", rt)
	}
	st, err := rt.Agent.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep := rt.Agent.Apply(ctx, st); rep.VMs.Failed > 0 || rep.Plan.VMs == nil {
		t.Fatalf("apply: %+v", rep)
	}
	var locked *agent.StateLockedError
	if _, err := agent.Open(ctx, cfg); !errors.As(err, &locked) || !errors.Is(err, statedb.ErrLocked) {
		t.Fatalf("second Open beside the first: %v, want the state directory held", err)
	}
	rt.Close()
	if held, err := statedb.Held(filepath.Join(cfg.StateDir, "state.db")); err != nil || held {
		t.Fatalf("after Close: held=%v err=%v", held, err)
	}
	rt, err = agent.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	rt.Close()
}

// Storage opened on its own (storage apply) asks libvirt whether a domain
// uses a disk before it deletes it: a removed claim whose disk a domain
// uses is held, and deleted once no domain does.
func TestOpen_storageAloneHoldsADiskInUse(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("classes.yaml", storageManifests)
	write("dv.yaml", blankDV)
	node := filepath.Join(dir, "node.xml")
	uri := testNode(t, node)
	ctx := context.Background()
	only := agent.Stages{Storage: true}

	rt, err := agent.Open(ctx, openConfig(dir, src, uri, only))
	if err != nil {
		t.Fatal(err)
	}
	if rt.VMs != nil || rt.Host != nil {
		t.Fatalf("only storage was asked for: %+v", rt)
	}
	st, err := rt.Agent.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep := rt.Agent.Apply(ctx, st); len(rep.Errors) > 0 || rep.Storage.Failed > 0 {
		t.Fatalf("apply: %+v", rep)
	}
	if err := rt.Storage.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	claim, ok := rt.Storage.Claim("default", "data")
	rt.Close()
	if !ok || claim.Path == "" {
		t.Fatalf("claim default/data: %+v %v", claim, ok)
	}

	plan := func() []storage.Action {
		t.Helper()
		rt, err := agent.Open(ctx, openConfig(dir, src, uri, only))
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close()
		st, err := rt.Agent.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		np, err := rt.Agent.Plan(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		return np.Storage.Actions
	}
	kind := func(acts []storage.Action) (string, string) {
		for _, a := range acts {
			if a.Object == "DataVolume default/data" {
				return string(a.Action), a.Reason
			}
		}
		return "", ""
	}

	write("dv.yaml", "")
	testNode(t, node, fmt.Sprintf(`<domain type='test'><name>app</name><memory unit='MiB'>64</memory><os><type>hvm</type></os>`+
		`<devices><disk type='file' device='disk'><source file='%s'/><target dev='vda' bus='virtio'/></disk></devices></domain>`, claim.Path))
	if k, why := kind(plan()); k != string(storage.ActHold) || !strings.Contains(why, "domain still uses its disk") {
		t.Fatalf("removed claim whose disk a domain uses: %s (%s), want a hold", k, why)
	}
	testNode(t, node)
	if k, why := kind(plan()); k != string(storage.ActDeleteData) {
		t.Fatalf("removed claim no domain uses: %s (%s), want delete-data", k, why)
	}
}

// The host's virtiofsd and NUMA nodes, read under the root, reach the
// converter: a virtiofs VM names the daemon, a guest NUMA VM's cells
// follow the nodes of its pinned CPUs.
func TestOpen_hostFactsReachTheConverter(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	root := filepath.Join(dir, "root")
	for p, body := range map[string]string{
		"usr/lib/qemu/virtiofsd":                "#!/bin/sh\n",
		"sys/devices/system/node/node0/cpulist": "0\n",
		"sys/devices/system/node/node1/cpulist": "1\n",
		"sys/devices/system/cpu/online":         "0-1\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	vms := `apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: share, namespace: default}
spec:
  domain:
    devices:
      filesystems: [{name: data, virtiofs: {}}]
    memory: {guest: 64Mi}
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: shared-data}}
---
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: numa, namespace: default}
spec:
  domain:
    cpu: {cores: 2, dedicatedCpuPlacement: true, numa: {guestMappingPassthrough: {}}}
    memory: {guest: 64Mi, hugepages: {pageSize: 2Mi}}
`
	if err := os.WriteFile(filepath.Join(src, "vms.yaml"), []byte(vms), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := openConfig(dir, src, testNode(t, filepath.Join(dir, "node.xml")), agent.Stages{VMs: true})
	cfg.CPUManager = true
	ctx := context.Background()
	rt, err := agent.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	n, err := rt.Agent.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	xml := map[string]string{}
	for _, vm := range n.VMs.VMs {
		xml[vm.Name] = vm.XML
	}
	if !strings.Contains(xml["share"], `<binary path="/usr/lib/qemu/virtiofsd">`) {
		t.Errorf("the virtiofs VM does not name the root's virtiofsd:\n%s\n%v", xml["share"], n.VMs.Diags)
	}
	if !strings.Contains(xml["numa"], `<memory mode="strict" nodeset="0,1">`) {
		t.Errorf("the NUMA VM's cells do not follow host nodes 0 and 1:\n%s\n%v", xml["numa"], n.VMs.Diags)
	}
}

// Disks where O_DIRECT fails (a state directory on ramfs) get cache
// writethrough, as KubeVirt gives them; elsewhere cache none.
func TestOpen_directIOReachesTheConverter(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	vms := `apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: scratch, namespace: default}
spec:
  domain:
    devices:
      disks: [{name: scratch, disk: {bus: virtio}}]
    memory: {guest: 64Mi}
  volumes:
  - {name: scratch, emptyDisk: {capacity: 16Mi}}
`
	if err := os.WriteFile(filepath.Join(src, "vms.yaml"), []byte(vms), 0o644); err != nil {
		t.Fatal(err)
	}
	cacheOf := func(cfg agent.OpenConfig) string {
		t.Helper()
		ctx := context.Background()
		rt, err := agent.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close()
		n, err := rt.Agent.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(n.VMs.VMs) != 1 {
			t.Fatalf("VMs: %d, %v", len(n.VMs.VMs), n.VMs.Diags)
		}
		m := regexp.MustCompile(`cache="([a-z]+)"`).FindStringSubmatch(n.VMs.VMs[0].XML)
		if m == nil {
			t.Fatalf("no cache mode in\n%s", n.VMs.VMs[0].XML)
		}
		return m[1]
	}
	cfg := openConfig(dir, src, testNode(t, filepath.Join(dir, "node.xml")), agent.Stages{VMs: true})
	if got := cacheOf(cfg); got != "none" {
		t.Errorf("state on %s: cache %s, want none", dir, got)
	}

	ram := filepath.Join(dir, "ram")
	if err := os.Mkdir(ram, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("ramfs", ram, "ramfs", 0, ""); err != nil {
		t.Skipf("mounting a ramfs needs root: %v", err)
	}
	defer syscall.Unmount(ram, 0)
	cfg = openConfig(ram, src, testNode(t, filepath.Join(dir, "node2.xml")), agent.Stages{VMs: true})
	if got := cacheOf(cfg); got != "writethrough" {
		t.Errorf("state on ramfs: cache %s, want writethrough", got)
	}
}
