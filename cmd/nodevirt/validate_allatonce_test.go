package main

import (
	"strings"
	"testing"
)

// One validate pass shows every error of a file, whatever stage finds it:
// decoding (unknown field, removed apiVersion), names, admission, the
// storage rules of an object that already has an error, and the converter's
// and network resolver's refusals of a VM that fails admission. Before,
// each fix revealed the next stage's errors.
func TestValidate_allErrorsInOnePass(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "all.yaml", `apiVersion: kubevirt.io/v1alpha3
kind: VirtualMachine
metadata: {name: web}
spec:
  runStrategy: Sometimes
  template:
    spec:
      resourceClaims:
      - name: gpu
      domain:
        memory: {guest: 1Gi, hugepages: {pageSize: 4Ki}}
        devices:
          interfaces:
          - {name: lan, bridge: {}}
      networks:
      - {name: lan, multus: {networkName: missing}}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: disk}
spec:
  sourse: {}
  source:
    http: {url: "ftp://example.com/disk.img"}
  storage:
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: Data}
spec:
  resources: {requests: {storage: 1Gi}}
---
apiVersion: storage.k8s.io/v1beta1
kind: StorageClass
metadata: {name: old}
provisioner: kubernetes.io/no-provisioner
`)
	out, errOut, code := run(t, "validate", "--source", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		// VM: admission, converter and network resolver, in one pass.
		"all.yaml:5:3: VirtualMachine default/web: spec.runStrategy: runStrategy must be one of",
		"all.yaml:8:7: VirtualMachine default/web: spec.template.spec.resourceClaims: unsupported:",
		"all.yaml:11:42: VirtualMachine default/web: spec.template.spec.domain.memory.hugepages.pageSize: hugepages.pageSize must be 2Mi or 1Gi",
		"all.yaml:16:30: VirtualMachine default/web: spec.template.spec.networks[0].multus.networkName: the NetworkAttachmentDefinition is not in the repository",
		// DataVolume: decoding, then the storage rules it still gets.
		`all.yaml:22:3: DataVolume default/disk: spec.sourse: unknown field "sourse"`,
		"DataVolume default/disk: spec.source.http.url: url must be an http:// or https:// URL",
		"DataVolume default/disk: spec.storage.resources.requests.storage: resources.requests.storage is required",
		// PVC: its name, and its storage rules.
		"all.yaml:29:12: PersistentVolumeClaim default/Data: metadata.name: invalid name",
		"PersistentVolumeClaim default/Data: spec.accessModes: accessModes is required",
		// A removed apiVersion names the one to use.
		"all.yaml:33:1: StorageClass old: apiVersion: apiVersion storage.k8s.io/v1beta1 is not served for kind StorageClass; use storage.k8s.io/v1",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "exactly one of spec.pvc and spec.storage") {
		t.Errorf("storage: written empty is a storage spec:\n%s", errOut)
	}
}
