package main

import (
	"strings"
	"testing"
)

const devicePVYAML = `apiVersion: v1
kind: PersistentVolume
metadata: {name: disk1}
spec:
  local: {path: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4}
  capacity: {storage: 10Gi}
  volumeMode: Block
  storageClassName: local-disks
  accessModes: [ReadWriteOnce]
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [node01]}
`

// validate refuses a Block PersistentVolume on a disk the agent was not
// told about, naming the volume, the field and the flag; the flag, on the
// command line or in the config file, lets it through; a flag value that
// is not a device pattern under /dev is refused before anything runs.
func TestValidate_allowedBlockDevice(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "storage/pv.yaml", devicePVYAML)

	out, errOut, code := run(t, "validate", "--node", "node01", "--source", dir)
	if code != 1 || !strings.Contains(errOut, "PersistentVolume disk1: spec.local.path:") || !strings.Contains(errOut, "--allowed-block-device") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}

	out, errOut, code = run(t, "validate", "--node", "node01", "--source", dir, "--allowed-block-device", "/dev/disk/by-id/wwn-*")
	if code != 0 {
		t.Fatalf("with the flag: exit %d\n%s%s", code, out, errOut)
	}

	cfg := writeConfig(t, "allowed-block-device: [/dev/disk/by-id/wwn-0x5000c500a1b2c3d4]\n")
	out, errOut, code = run(t, "--config", cfg, "validate", "--node", "node01", "--source", dir)
	if code != 0 {
		t.Fatalf("from the config file: exit %d\n%s%s", code, out, errOut)
	}

	out, errOut, code = run(t, "validate", "--node", "node01", "--source", dir, "--allowed-block-device", "disk/by-id/*")
	if code == 0 || !strings.Contains(errOut, `--allowed-block-device "disk/by-id/*": want a device path or pattern under /dev/`) {
		t.Fatalf("a relative pattern: exit %d\n%s%s", code, out, errOut)
	}
}

// validate knows a claim's volume mode before it is bound: a lun on a
// Filesystem claim is refused with the reason, one on the Block claim of
// the seed's local block PersistentVolume (no StorageClass "local" in the
// repository) renders as a lun.
func TestValidate_lunNeedsBlockClaim(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "vms/db.yaml", `apiVersion: v1
kind: PersistentVolume
metadata: {name: local-block-pv10}
spec:
  local: {path: /dev/loop10}
  capacity: {storage: 2Gi}
  volumeMode: Block
  storageClassName: local
  accessModes: [ReadWriteOnce]
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [node01]}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: san, namespace: default}
spec:
  source: {blank: {}}
  storage:
    storageClassName: local
    resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: files, namespace: default}
spec:
  storageClassName: ""
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: db, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        memory: {guest: 128Mi}
        devices:
          disks:
          - {name: san, lun: {bus: scsi}}
          - {name: files, lun: {bus: scsi}}
      volumes:
      - {name: san, dataVolume: {name: san}}
      - {name: files, persistentVolumeClaim: {claimName: files}}
`)
	out, errOut, code := run(t, "validate", "--node", "node01", "--source", dir)
	want := `VirtualMachine default/db: spec.template.spec.domain.devices.disks[1].lun: unsupported: claim "files" is a Filesystem volume`
	if code != 1 || !strings.Contains(errOut, want) || strings.Contains(errOut, "disks[0]") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}
