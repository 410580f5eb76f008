package e2e

// Pending reasons: the part of the real-world manifests work each waits for.
// Once that part is merged the entries that now pass say so in the test log
// ("pending entries that now pass"); drop their pending field then.
const (
	pendingStaticPV   = "static PVs bind by class name without a StorageClass object"
	pendingBlockDev   = "local block PVs on devices of --allowed-block-device"
	pendingLun        = "lun disks on Block claims"
	pendingSecrets    = "ConfigMap, Secret and sysprep volumes, accessCredentials"
	pendingVirtiofs   = "virtiofs filesystems"
	pendingNUMA       = "guest NUMA with hugepages and dedicated CPUs"
	pendingKernelBoot = "direct kernel boot from a containerDisk"
	pendingSMBIOS     = "SMBIOS annotations into <sysinfo>"
	pendingIgnition2  = "Ignition spec 2.x MachineConfigs"
	pendingButane     = "Butane errors at the line the user wrote"
	pendingUnused     = "a warning for every field read but not used"
)

// upstreamExpect is, for each file of TestUpstreamManifests (key: group
// label/file), what it must come to when the real-world manifests work is
// done; a file not listed must load without an error and render every VM.
// A refusal names the field and why; "kubectl" marks snippets the API
// server rejects too (kubectl's default strict field validation, or
// KubeVirt's and CDI's admission), so nodevirt refusing them is right.
var upstreamExpect = map[string]upstreamWant{
	// Butane: what the Machine Config Daemon refuses, nodevirt refuses, at
	// the line of the field the user wrote.
	"butane/00-users.bu":         {refused: []upstreamDiag{{path: "passwd.users", reason: "does not manage users", line: 6}}},
	"butane/02-password-auth.bu": {refused: []upstreamDiag{{path: "passwd.users", reason: "does not manage users", line: 6}}},
	"butane/05-files-remote.bu":  {refused: []upstreamDiag{{path: "storage.files[0].contents", reason: "must be inline"}}},
	"butane/08-filesystems-partitions.bu": {refused: []upstreamDiag{
		{path: "storage.disks", reason: "partitioning disks is refused", line: 6},
		{path: "storage.filesystems", reason: "creating file systems is refused", line: 12}}},
	"butane/09-swap.bu": {refused: []upstreamDiag{
		{path: "storage.disks", reason: "partitioning disks is refused", line: 6},
		{path: "storage.filesystems", reason: "creating file systems is refused", line: 12}}},
	"butane/10-luks-storage.bu": {refused: []upstreamDiag{
		{path: "storage.luks", reason: "LUKS volumes are refused", line: 6},
		{path: "storage.filesystems", reason: "creating file systems is refused", line: 21}}},
	// boot_device and grub are sugar: Butane expands them into storage
	// sections the file does not have; the error must point at the sugar.
	"butane/11-boot-device-luks.bu": {refused: []upstreamDiag{
		{path: "boot_device.luks", reason: "LUKS volumes are refused", line: 6},
		{path: "boot_device.luks", line: 6},
		// The root file system Butane makes for the encrypted device.
		{path: "boot_device", reason: "creating file systems is refused", line: 5}}},
	"butane/12-boot-device-luks-root.bu": {refused: []upstreamDiag{
		{path: "boot_device.luks", reason: "LUKS volumes are refused", line: 6},
		{path: "boot_device.luks", line: 6},
		{path: "storage.filesystems", reason: "creating file systems is refused", line: 9}}},
	"butane/18-boot-device-mirror-luks.bu": {refused: []upstreamDiag{
		{path: "boot_device.luks", reason: "LUKS volumes are refused", line: 7},
		{path: "boot_device"},
		{path: "storage.disks", reason: "partitioning disks is refused", line: 14},
		{path: "storage.raid", reason: "RAID arrays are refused", line: 25},
		{path: "storage.filesystems", reason: "creating file systems is refused", line: 31}}},
	"butane/23-grub-password.bu": {refused: []upstreamDiag{{path: "grub"}}},

	// CDI.
	"containerized-data-importer/clone-datavolume.yaml": {
		// Written but empty, storage: is the storage API (the size comes
		// from the source); the source claim is not in the repository.
		refused: []upstreamDiag{{path: "spec.source.pvc", reason: "source-datavolume"}}},
	"containerized-data-importer/import-archive-datavolume.yaml": {refused: []upstreamDiag{
		{path: "spec.contentType", reason: "only kubevirt disk images"}}},
	// kubectl: CDI v1.65's http source has no insecureSkipVerify (the
	// example predates its removal).
	"containerized-data-importer/import-with-cert/import-kubevirt-datavolume.yaml": {refused: []upstreamDiag{
		{path: "spec.source.http.insecureSkipVerify", reason: "unknown field"}}},
	"containerized-data-importer/import-with-secret/endpoint-secret.yaml":                  {warns: []upstreamDiag{{reason: "in git"}}},
	"containerized-data-importer/local-block-import/import-kubevirt-block-datavolume.yaml": {},
	// A v1alpha3 VM (still served) whose claim names class "hdd": neither a
	// StorageClass nor a PersistentVolume of that class is in the repository.
	"containerized-data-importer/vm-dv.yaml": {refused: []upstreamDiag{
		{path: "spec.dataVolumeTemplates[0].spec.pvc.storageClassName", reason: `"hdd"`}}},

	// Hostpath provisioner.
	"hostpath-provisioner-operator/machineconfig-selinux-hpp.yaml": {},
	"hostpath-provisioner-operator/hostpathprovisioner-pvctemplate-cr.yaml": {
		warns: []upstreamDiag{{path: "spec.storagePools[0].pvcTemplate"}}},
	// The class alone: its HostPathProvisioner is not in the repository.
	"hostpath-provisioner-operator/storageclass-immediate.yaml": {refused: []upstreamDiag{
		{path: "provisioner", reason: "needs a HostPathProvisioner"}}},

	// HCO's current API version.
	"hyperconverged-cluster-operator/hco.cr.yaml":                {},
	"hyperconverged-cluster-operator/kustomize-base-hco-cr.yaml": {},
	"seeds/8.14.11-hco-v1-permitted-host-devices.yaml":           {},
	"seeds/8.18.10-local-block-upload/upload-datavolume.yaml":    {},
	"kubevirt-user-guide/templates-static-pv/pv-pvc.yaml":        {},
	"kubevirt-user-guide/ignition-configdrive-v1alpha3.yaml":     {},
	"kubevirt-user-guide/access-credentials-nocloud/vm.yaml": {
		artifactHas: []string{"AAAAC3NzaC1lZDI1NTE5AAAAIPL3axFGHI3db9iJWkPXVbYzD7OaWTtHuqmxLvj+DztB"}},
	"kubevirt-user-guide/access-credentials-nocloud/my-pub-key.yaml":   {warns: []upstreamDiag{{reason: "in git"}}},
	"kubevirt-user-guide/configmap-disk/vmi.yaml":                      {artifactHas: []string{"staging"}},
	"kubevirt-user-guide/secret-disk/vmi.yaml":                         {artifactHas: []string{"changeme"}},
	"kubevirt-user-guide/secret-disk/app-secret.yaml":                  {warns: []upstreamDiag{{reason: "in git"}}},
	"kubevirt-user-guide/cloudinit-userdata-secret/vmi.yaml":           {artifactHas: []string{"Hi from startup script!"}},
	"kubevirt-user-guide/cloudinit-userdata-secret/my-vmi-secret.yaml": {warns: []upstreamDiag{{reason: "in git"}}},
	"kubevirt-user-guide/sysprep-configmap/vm.yaml":                    {artifactHas: []string{"urn:schemas-microsoft-com:unattend"}},
	// The preference's disk bus reaches the domain; the user data the guest.
	"kubevirt-user-guide/preference-user-override.yaml": {domainHas: []string{`bus="sata"`, `bus="virtio"`},
		artifactHas: []string{"printed from cloud-init userdata"}},
	// virtiofs shares of ConfigMaps and Secrets are refused by name (the
	// same data attaches as a disk, the two examples above).
	"kubevirt-user-guide/configmap-virtiofs/vmi.yaml": {refused: []upstreamDiag{
		{path: "spec.volumes[2]", reason: "virtiofs shares of ConfigMap"}}},
	"kubevirt-user-guide/secret-virtiofs/vmi.yaml": {refused: []upstreamDiag{
		{path: "spec.volumes[2]", reason: "virtiofs shares of ConfigMap"}}},
	"kubevirt-user-guide/secret-virtiofs/app-secret.yaml": {warns: []upstreamDiag{{reason: "in git"}}},
	"kubevirt-user-guide/virtiofs-pvc.yaml":               {domainHas: []string{"virtiofs", "<memoryBacking>"}},
	"kubevirt-user-guide/hostpath-virtiofs/vm.yaml":       {domainHas: []string{"virtiofs", "<memoryBacking>"}},
	// Pulling the kernel image from a registry with credentials is refused
	// by name (local OCI layouts and docker archives boot).
	"kubevirt-user-guide/kernel-boot-container.yaml": {refused: []upstreamDiag{
		{path: "spec.template.spec.domain.firmware.kernelBoot.container.imagePullSecret", reason: "registry"}}},
	"kubevirt-user-guide/numa-passthrough-vmi.yaml": {domainHas: []string{"<numa>", "<hugepages>"}},
	"kubevirt-user-guide/lun-block/vmi.yaml":        {domainHas: []string{`device="lun"`}},
	"kubevirt-user-guide/lun-block/mypvc.yaml":      {},
	// kubectl: the snippet puts ioThreadsPolicy under cpu (it belongs to
	// domain); 1Gi of memory in 1Gi pages is fine, as in KubeVirt.
	"kubevirt-user-guide/numa-realtime-1gi-hugepages.yaml": {refused: []upstreamDiag{
		{path: "spec.template.spec.domain.cpu.ioThreadsPolicy", reason: "unknown field"},
		{path: "spec.template.spec.domain.cpu.realtime", reason: "realtime vCPUs"}}},
	// No PersistentVolume of these classes is in the repository either:
	// nothing can bind the claim.
	"kubevirt-user-guide/pvc-local-class.yaml":           {refused: []upstreamDiag{{path: "spec.storageClassName", reason: `"local"`}}},
	"kubevirt-user-guide/shareable-block/block-pvc.yaml": {refused: []upstreamDiag{{path: "spec.storageClassName", reason: `"rook-ceph-block"`}}},
	"kubevirt-user-guide/shareable-block/vms.yaml":       {domainHas: []string{"<shareable>"}},
	"kubevirt-examples/vm-alpine-datavolume.yaml": {refused: []upstreamDiag{
		{path: "spec.dataVolumeTemplates[0].spec.pvc.storageClassName", reason: `"local"`}}},
	// /dev/sdb is a real disk: refused until the operator allows it.
	"kubevirt-user-guide/local-block-device/local-device-pv.yaml": {refused: []upstreamDiag{
		{path: "spec.local.path", reason: "--allowed-block-device"}}},
	"kubevirt-user-guide/firmware-uuid-serial.yaml": {domainHas: []string{
		"5d307ca9-b3ef-428c-8861-06e72d69f223", "e4686d2c-6e8d-4335-b8fd-81bee22f4815"}},
	"kubevirt/vmi-with-sidecar-hook.yaml": {domainHas: []string{"Radical Edward"}},
	"kubevirt/vmi-block-pvc.yaml":         {},
	// kubectl: fields of KubeVirt's main branch, newer than the v1.9 API
	// nodevirt reads.
	"kubevirt/vmi-file-memory-backing.yaml":  {refused: []upstreamDiag{{path: "spec.domain.memory.fileBacked", reason: "unknown field"}}},
	"kubevirt/vmi-ssd-emulation.yaml":        {refused: []upstreamDiag{{path: "spec.domain.devices.disks[0].disk.rotationRate", reason: "unknown field"}}},
	"kubevirt-examples/vmi-kernel-boot.yaml": {domainHas: []string{"<kernel>", "<initrd>"}},

	// Refused as KubeVirt refuses them.
	"kubevirt-user-guide/v1alpha1-hugepages.yaml": {refused: []upstreamDiag{
		{reason: "apiVersion kubevirt.io/v1alpha1 is not served for kind VirtualMachine; use kubevirt.io/v1"}}},
	// The page's Secret-backed network-config example is older than v1 (its
	// disks name volumes through volumeName).
	"kubevirt-user-guide/cloudinit-networkdata-secret-v1alpha2.yaml": {refused: []upstreamDiag{
		{reason: "apiVersion kubevirt.io/v1alpha2 is not served for kind VirtualMachineInstance; use kubevirt.io/v1"}}},
	// Incomplete snippets (the page shows only the part it is about).
	"kubevirt-user-guide/cpu-hotplug.yaml": {refused: []upstreamDiag{{reason: "metadata.name is required"}}},
	"kubevirt-user-guide/masquerade.yaml":  {refused: []upstreamDiag{{reason: "metadata.name is required"}}},
	"kubevirt-user-guide/efi-smm.yaml": {refused: []upstreamDiag{
		{path: "spec.domain.memory", reason: "memory must be set"},
		{path: "spec.domain.devices.disks[0].name", reason: "volume that does not exist"}}},
	"kubevirt-user-guide/persistent-efi.yaml": {refused: []upstreamDiag{
		{path: "spec.runStrategy", reason: "runStrategy must be specified"},
		{path: "spec.template.spec.domain.memory", reason: "memory must be set"},
		{path: "spec.template.spec.domain.firmware.bootloader.efi.secureBoot", reason: "requires SMM"}}},
	"kubevirt-user-guide/persistent-tpm.yaml": {refused: []upstreamDiag{
		{path: "spec.runStrategy", reason: "runStrategy must be specified"},
		{path: "spec.template.spec.domain.memory", reason: "memory must be set"}}},
	"kubevirt-user-guide/run-strategy-always.yaml": {refused: []upstreamDiag{
		{path: "spec.template.spec.domain.memory", reason: "memory must be set"}}},
	"kubevirt-user-guide/video-bochs.yaml":  {refused: []upstreamDiag{{path: "spec.runStrategy", reason: "runStrategy must be specified"}}},
	"kubevirt-user-guide/video-virtio.yaml": {refused: []upstreamDiag{{path: "spec.runStrategy", reason: "runStrategy must be specified"}}},
	// All four at once: the snippet puts domain and volumes straight under
	// the VM's spec.
	"kubevirt-user-guide/tablet-input.yaml": {refused: []upstreamDiag{
		{path: "spec.runStrategy", reason: "runStrategy must be specified"},
		{path: "spec.template", reason: "template is required"},
		{path: "spec.domain", reason: "unknown field"},
		{path: "spec.volumes", reason: "unknown field"}}},
	// kubectl: typos in the page (claimname, disk.dev).
	"kubevirt-user-guide/hyperv-features.yaml":  {refused: []upstreamDiag{{path: "persistentVolumeClaim.claimname", reason: "unknown field"}}},
	"kubevirt-user-guide/guest-agent-info.yaml": {refused: []upstreamDiag{{path: "disks[0].disk.dev", reason: "unknown field"}}},
	// KubeVirt admits a CD-ROM without a volume only with the
	// DeclarativeHotplugVolumes feature gate.
	// A CD-ROM without a volume is an empty drive, as KubeVirt makes it.
	"kubevirt-user-guide/hotplug-volumes-vm.yaml": {domainHas: []string{`device="cdrom"`}},
	// An ephemeral volume is a copy-on-write file: there is no block
	// device to pass through.
	// Its other refusal comes in the same pass.
	"kubevirt-user-guide/ephemeral-pvc-lun.yaml": {refused: []upstreamDiag{
		{path: "spec.domain.devices.disks[0].lun", reason: "a lun needs a persistentVolumeClaim or dataVolume"},
		{path: "spec.volumes[0].ephemeral", reason: "not supported"}}},
	// Stricter than KubeVirt, saying why.
	"kubevirt-user-guide/serviceaccount-disk.yaml": {refused: []upstreamDiag{
		{path: "spec.volumes[1].serviceAccount", reason: "need Kubernetes"}}},
	"kubevirt-user-guide/downwardmetrics-disk.yaml": {refused: []upstreamDiag{
		{path: "spec.volumes[1].downwardMetrics", reason: "not supported"}}},
	"kubevirt-examples/vm-windows-clarge-windows.yaml": {refused: []upstreamDiag{
		{path: "spec.template.spec.domain.memory.guest", reason: "conflicts with selected instance type"}}},
	"kubevirt-examples/vmi-multus-multiple-net.yaml": {refused: []upstreamDiag{
		{path: "spec.networks[1].multus.networkName", reason: "not in the repository"}}},
	"kubevirt-examples/vmi-sriov.yaml": {refused: []upstreamDiag{
		{path: "spec.domain.devices.interfaces[1].sriov", reason: "not supported"}}},
}
