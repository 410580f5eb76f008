package storage

import (
	"strings"
	"testing"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// Two VMs on this node writing one claim: the disk without shareable (or
// readonly) is warned about, naming the other VM; with shareable on every
// writer, as KubeVirt's shared-disk guide writes it, nothing is said. A VM
// on another node shares nothing here.
func TestBuild_sharedClaim(t *testing.T) {
	claim := `---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: cluster-data, namespace: default}
spec:
  storageClassName: hostpath-provisioner
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 1Gi}}
`
	shared := func(name, extra string) string {
		return strings.Replace(vm(name, "pvc:cluster-data"), "{name: cluster-data, disk: {bus: virtio}}", "{name: cluster-data, disk: {bus: virtio}"+extra+"}", 1)
	}
	warnings := func(st *State) []diag.Diagnostic {
		var out []diag.Diagnostic
		for _, d := range st.Diags {
			if d.Severity == diag.Warning && strings.Contains(d.Message, ErrClaimShared.Error()) {
				out = append(out, d)
			}
		}
		return out
	}

	st := build(t, hostpathBase+claim+shared("a", ", shareable: true")+shared("b", ""))
	w := warnings(st)
	if len(w) != 1 || w[0].Object != "VirtualMachine default/b" || w[0].Path != "spec.template.spec.domain.devices.disks[0]" ||
		!strings.Contains(w[0].Message, `claim "default/cluster-data" is also used by VirtualMachine default/a`) {
		t.Fatalf("got %v", st.Diags)
	}
	if st.Diags.HasErrors() {
		t.Fatal(st.Diags)
	}

	if w := warnings(build(t, hostpathBase+claim+shared("a", ", shareable: true")+shared("b", ", shareable: true"))); len(w) != 0 {
		t.Fatalf("both shareable: %v", w)
	}
	if w := warnings(build(t, hostpathBase+claim+shared("a", "")+strings.Replace(shared("b", ""), "disk: {bus: virtio}", "disk: {bus: virtio, readonly: true}", 1))); len(w) != 1 || w[0].Object != "VirtualMachine default/a" {
		t.Fatalf("a reader and a writer: %v", w)
	}
	elsewhere := strings.Replace(shared("b", ""), "    spec:\n", "    spec:\n      nodeSelector: {kubernetes.io/hostname: node02}\n", 1)
	if w := warnings(build(t, hostpathBase+claim+shared("a", "")+elsewhere)); len(w) != 0 {
		t.Fatalf("a VM on another node: %v", w)
	}
}
