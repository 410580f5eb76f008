package manifests

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/manifests/diag"
)

// vmi wraps a spec body (YAML indented by two spaces) in a VirtualMachineInstance.
func vmi(body string) string {
	return "apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstance\nmetadata:\n  name: t\nspec:\n" + body
}

// vm wraps a VirtualMachine spec body (indented by two spaces).
func vm(body string) string {
	return "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: t\nspec:\n" + body
}

const (
	mem   = "  domain:\n    memory: {guest: 1Gi}\n"
	tmpl  = "  template:\n    spec:\n      domain:\n        memory: {guest: 1Gi}\n"
	netAB = "  networks: [{name: a, pod: {}}, {name: b, multus: {networkName: nad}}]\n"
)

// withVolume returns a spec with one disk "root" and the given volume source.
func withVolume(source string) string {
	return vmi("  domain:\n    memory: {guest: 1Gi}\n    devices:\n      disks: [{name: root}]\n  volumes:\n  - name: root\n    " + source + "\n")
}

// withDisk returns a spec with the given disk (named root) and a containerDisk volume.
func withDisk(disk string) string {
	return vmi("  domain:\n    memory: {guest: 1Gi}\n    devices:\n      disks:\n      - name: root\n        " + disk +
		"\n  volumes:\n  - {name: root, containerDisk: {image: quay.io/containerdisks/fedora:40}}\n")
}

// withNet returns a spec with the given interfaces and networks lines.
func withNet(ifaces, networks string) string {
	return vmi("  domain:\n    memory: {guest: 1Gi}\n    devices:\n      interfaces: " + ifaces + "\n  networks: " + networks + "\n")
}

func nad(config string) string {
	return "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: br\nspec:\n  config: " + config + "\n"
}

func hco(certConfig string) string {
	return "apiVersion: hco.kubevirt.io/v1beta1\nkind: HyperConverged\nmetadata:\n  name: kubevirt-hyperconverged\n  namespace: openshift-cnv\nspec:\n  certConfig: " + certConfig + "\n"
}

func pref(body string) string {
	return "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineClusterPreference\nmetadata:\n  name: p\nspec:\n" + body
}

// Each rule: one document that breaks only that rule, the exact path reported
// and the sentinel.
func TestValidate_rules(t *testing.T) {
	big := strings.Repeat("x", 2049)
	for _, tc := range []struct {
		name string
		src  string
		path string
		want error
	}{
		// VirtualMachine.
		{"runningAndRunStrategy", vm("  running: true\n  runStrategy: Always\n" + tmpl), "spec.running", ErrRunStrategyConflict},
		{"noRunStrategy", vm(tmpl), "spec.runStrategy", ErrRunStrategyRequired},
		{"badRunStrategy", vm("  runStrategy: Sometimes\n" + tmpl), "spec.runStrategy", ErrRunStrategyInvalid},
		{"dataVolumeTemplateUnused", vm("  runStrategy: Halted\n  dataVolumeTemplates:\n  - metadata: {name: spare}\n    spec: {source: {blank: {}}, storage: {resources: {requests: {storage: 1Gi}}}}\n" + tmpl), "spec.dataVolumeTemplates[0]", ErrDataVolumeTemplateUnused},
		{"dataVolumeTemplateNamespace", vm("  runStrategy: Halted\n  dataVolumeTemplates:\n  - metadata: {name: root, namespace: other}\n    spec: {source: {blank: {}}, storage: {resources: {requests: {storage: 1Gi}}}}\n  template:\n    spec:\n      domain:\n        memory: {guest: 1Gi}\n      volumes: [{name: root, dataVolume: {name: root}}]\n"), "spec.dataVolumeTemplates[0].metadata.namespace", ErrDataVolumeTemplateNamespace},
		{"noTemplate", vm("  runStrategy: Always\n"), "spec.template", ErrTemplateRequired},
		{"vmTemplatePath", vm("  runStrategy: Always\n  template:\n    spec:\n      domain: {}\n"), "spec.template.spec.domain.memory", ErrMemoryRequired},

		// Memory and CPU.
		{"noMemory", vmi("  domain: {}\n"), "spec.domain.memory", ErrMemoryRequired},
		{"negativeCPU", vmi("  domain:\n    memory: {guest: 1Gi}\n    resources: {requests: {cpu: -1}}\n"), "spec.domain.resources.requests.cpu", ErrNegativeQuantity},
		{"tinyMemoryRequest", vmi("  domain:\n    resources: {requests: {memory: 1k}}\n"), "spec.domain.resources.requests.memory", ErrMemoryRequestTooSmall},
		{"memoryRequestOverLimit", vmi("  domain:\n    resources: {requests: {memory: 2Gi}, limits: {memory: 1Gi}}\n"), "spec.domain.resources.requests.memory", ErrMemoryRequestOverLimit},
		{"memoryLimitHeadroom", vmi("  domain:\n    resources: {requests: {memory: 128Mi}, limits: {memory: 200Mi}}\n"), "spec.domain.resources.limits.memory", ErrMemoryLimitHeadroom},
		{"cpuRequestOverLimit", vmi("  domain:\n    memory: {guest: 1Gi}\n    resources: {requests: {cpu: 2}, limits: {cpu: 1}}\n"), "spec.domain.resources.requests.cpu", ErrCPURequestOverLimit},
		{"hugepagesPageSize", vmi("  domain:\n    memory: {guest: 1Gi, hugepages: {pageSize: 4Ki}}\n"), "spec.domain.memory.hugepages.pageSize", ErrHugepagesPageSize},
		{"hugepagesTooLarge", vmi("  domain:\n    memory: {hugepages: {pageSize: 1Gi}}\n    resources: {requests: {memory: 500Mi}}\n"), "spec.domain.memory.hugepages.pageSize", ErrHugepagesTooLarge},
		{"hugepagesNotDivisible", vmi("  domain:\n    memory: {hugepages: {pageSize: 1Gi}}\n    resources: {requests: {memory: 1500Mi}}\n"), "spec.domain.resources.requests.memory", ErrHugepagesNotDivisible},
		{"cpuFeaturePolicy", vmi("  domain:\n    memory: {guest: 1Gi}\n    cpu: {features: [{name: vmx, policy: maybe}]}\n"), "spec.domain.cpu.features[0].policy", ErrCPUFeaturePolicy},
		{"isolateEmulatorThread", vmi("  domain:\n    memory: {guest: 1Gi}\n    cpu: {isolateEmulatorThread: true}\n"), "spec.domain.cpu.isolateEmulatorThread", ErrIsolateEmulatorThread},
		{"machineType", vmi("  domain:\n    memory: {guest: 1Gi}\n    machine: {type: pc-i440fx-9.0}\n"), "spec.domain.machine.type", ErrMachineType},
		{"probeNoHandler", vmi("  readinessProbe: {initialDelaySeconds: 5}\n" + mem), "spec.readinessProbe", ErrProbeHandler},
		{"probeTwoHandlers", vmi("  livenessProbe: {tcpSocket: {port: 22}, exec: {command: [\"true\"]}}\n" + mem), "spec.livenessProbe", ErrProbeHandler},
		{"ioThreadsPolicy", vmi("  domain:\n    memory: {guest: 1Gi}\n    ioThreadsPolicy: dedicated\n"), "spec.domain.ioThreadsPolicy", ErrIOThreadsPolicy},
		{"ioThreadsPoolCount", vmi("  domain:\n    memory: {guest: 1Gi}\n    ioThreadsPolicy: supplementalPool\n"), "spec.domain.ioThreads.supplementalPoolThreadCount", ErrIOThreadsPoolCount},
		{"hostname", vmi("  hostname: web_1\n" + mem), "spec.hostname", ErrHostname},
		{"subdomain", vmi("  subdomain: Web.Example\n" + mem), "spec.subdomain", ErrSubdomain},
		{"guestOverLimit", vmi("  domain:\n    memory: {guest: 2Gi}\n    resources: {limits: {memory: 1Gi}}\n"), "spec.domain.memory.guest", ErrGuestMemoryOverLimit},
		{"maxSockets", vmi("  domain:\n    memory: {guest: 1Gi}\n    cpu: {sockets: 4, maxSockets: 2}\n"), "spec.domain.cpu.sockets", ErrMaxSockets},
		{"dedicatedCPUInteger", vmi("  domain:\n    memory: {guest: 1Gi}\n    cpu: {dedicatedCpuPlacement: true}\n    resources: {requests: {cpu: 1500m}}\n"), "spec.domain.resources.requests.cpu", ErrDedicatedCPUInteger},
		{"dedicatedCPUEqual", vmi("  domain:\n    memory: {guest: 1Gi}\n    cpu: {dedicatedCpuPlacement: true}\n    resources: {requests: {cpu: 2}, limits: {cpu: 4}}\n"), "spec.domain.resources.requests.cpu", ErrDedicatedCPUEqual},
		{"dedicatedMemoryEqual", vmi("  domain:\n    cpu: {dedicatedCpuPlacement: true}\n    resources: {requests: {memory: 1Gi}, limits: {memory: 2Gi}}\n"), "spec.domain.resources.requests.memory", ErrDedicatedMemoryEqual},
		{"dedicatedCPUCount", vmi("  domain:\n    memory: {guest: 1Gi}\n    cpu: {dedicatedCpuPlacement: true, cores: 4}\n    resources: {requests: {cpu: 2}}\n"), "spec.domain.cpu.dedicatedCpuPlacement", ErrDedicatedCPUCount},
		{"dedicatedThreads", vmi("  domain:\n    memory: {guest: 1Gi}\n    cpu: {dedicatedCpuPlacement: true, threads: 4}\n"), "spec.domain.cpu.threads", ErrDedicatedThreads},
		{"numaWithoutDedicated", vmi("  domain:\n    memory: {guest: 1Gi, hugepages: {pageSize: 2Mi}}\n    cpu: {numa: {guestMappingPassthrough: {}}}\n"), "spec.domain.cpu.numa.guestMappingPassthrough", ErrNUMADedicated},
		{"numaWithoutHugepages", vmi("  domain:\n    memory: {guest: 1Gi}\n    cpu: {dedicatedCpuPlacement: true, numa: {guestMappingPassthrough: {}}}\n"), "spec.domain.cpu.numa.guestMappingPassthrough", ErrNUMAHugepages},
		{"realtimeWithoutNUMA", vmi("  domain:\n    memory: {guest: 1Gi}\n    cpu: {dedicatedCpuPlacement: true, realtime: {}}\n"), "spec.domain.cpu.realtime", ErrRealtimeNUMA},
		{"hypervDisabledDependency", vmi("  domain:\n    memory: {guest: 1Gi}\n    features: {hyperv: {synic: {}, vpindex: {enabled: false}}}\n"), "spec.domain.features.hyperv.synic", ErrHypervDependency},
		{"hypervWithPassthrough", vmi("  domain:\n    memory: {guest: 1Gi}\n    features: {hyperv: {relaxed: {}}, hypervPassthrough: {enabled: true}}\n"), "spec.domain.features.hyperv", ErrHypervPassthrough},
		{"clockTimezone", vmi("  domain:\n    memory: {guest: 1Gi}\n    clock: {timezone: Mars/Olympus_Mons}\n"), "spec.domain.clock.timezone", ErrClockTimezone},
		{"clockTimezoneLocal", vmi("  domain:\n    memory: {guest: 1Gi}\n    clock: {timezone: Local}\n"), "spec.domain.clock.timezone", ErrClockTimezone},
		{"rtcTickPolicy", vmi("  domain:\n    memory: {guest: 1Gi}\n    clock: {utc: {}, timer: {rtc: {tickPolicy: discard}}}\n"), "spec.domain.clock.timer.rtc.tickPolicy", ErrTimerTickPolicy},
		{"pitTickPolicy", vmi("  domain:\n    memory: {guest: 1Gi}\n    clock: {utc: {}, timer: {pit: {tickPolicy: merge}}}\n"), "spec.domain.clock.timer.pit.tickPolicy", ErrTimerTickPolicy},
		{"hpetTickPolicy", vmi("  domain:\n    memory: {guest: 1Gi}\n    clock: {utc: {}, timer: {hpet: {tickPolicy: slew}}}\n"), "spec.domain.clock.timer.hpet.tickPolicy", ErrTimerTickPolicy},
		{"rtcTrack", vmi("  domain:\n    memory: {guest: 1Gi}\n    clock: {utc: {}, timer: {rtc: {track: host}}}\n"), "spec.domain.clock.timer.rtc.track", ErrRTCTrack},
		{"startStrategy", vmi("  startStrategy: Running\n" + mem), "spec.startStrategy", ErrStartStrategy},
		{"pausedWithLiveness", vmi("  startStrategy: Paused\n  livenessProbe: {tcpSocket: {port: 22}}\n" + mem), "spec.startStrategy", ErrPausedLiveness},
		{"probeWithoutPodNetwork", vmi("  readinessProbe: {tcpSocket: {port: 22}}\n  domain:\n    memory: {guest: 1Gi}\n    devices: {autoattachPodInterface: false}\n"), "spec.readinessProbe", ErrProbePodNetwork},
		{"soundName", vmi("  domain:\n    memory: {guest: 1Gi}\n    devices: {sound: {model: ich9}}\n"), "spec.domain.devices.sound.name", ErrSoundName},
		{"soundModel", vmi("  domain:\n    memory: {guest: 1Gi}\n    devices: {sound: {name: audio, model: sb16}}\n"), "spec.domain.devices.sound.model", ErrSoundModel},
		{"panicModel", vmi("  domain:\n    memory: {guest: 1Gi}\n    devices: {panicDevices: [{model: s390}]}\n"), "spec.domain.devices.panicDevices[0].model", ErrPanicModel},
		{"panicDuplicate", vmi("  domain:\n    memory: {guest: 1Gi}\n    devices: {panicDevices: [{model: isa}, {}]}\n"), "spec.domain.devices.panicDevices[1]", ErrPanicDuplicate},

		// Firmware and devices.
		{"biosAndEFI", vmi("  domain:\n    memory: {guest: 1Gi}\n    firmware: {bootloader: {bios: {}, efi: {secureBoot: false}}}\n"), "spec.domain.firmware.bootloader", ErrBootloaderConflict},
		{"secureBootWithoutSMM", vmi("  domain:\n    memory: {guest: 1Gi}\n    firmware: {bootloader: {efi: {}}}\n"), "spec.domain.firmware.bootloader.efi.secureBoot", ErrSecureBootSMM},
		{"secureBootSMMDisabled", vmi("  domain:\n    memory: {guest: 1Gi}\n    features: {smm: {enabled: false}}\n    firmware: {bootloader: {efi: {secureBoot: true}}}\n"), "spec.domain.firmware.bootloader.efi.secureBoot", ErrSecureBootSMM},
		{"watchdogAction", vmi("  domain:\n    memory: {guest: 1Gi}\n    devices: {watchdog: {name: w, i6300esb: {action: explode}}}\n"), "spec.domain.devices.watchdog.i6300esb.action", ErrWatchdogAction},

		// Disks.
		{"diskNameDuplicate", withDisk("disk: {}\n      - name: root\n        cdrom: {}"), "spec.domain.devices.disks[1].name", ErrDiskNameDuplicate},
		{"diskNameNotDNS", vmi("  domain:\n    memory: {guest: 1Gi}\n  volumes: [{name: Root_1, emptyDisk: {capacity: 1Gi}}]\n"), "spec.domain.devices.disks[0].name", ErrDiskName},
		{"diskWithoutVolume", vmi("  domain:\n    memory: {guest: 1Gi}\n    devices: {disks: [{name: data}]}\n"), "spec.domain.devices.disks[0].name", ErrDiskVolumeMissing},
		{"diskTwoTargets", withDisk("disk: {}\n        cdrom: {}"), "spec.domain.devices.disks[0]", ErrDiskTargets},
		{"diskBus", withDisk("disk: {bus: ide}"), "spec.domain.devices.disks[0].disk.bus", ErrDiskBus},
		{"cdromVirtio", withDisk("cdrom: {bus: virtio}"), "spec.domain.devices.disks[0].cdrom.bus", ErrCDROMVirtio},
		{"bootOrderZero", withDisk("bootOrder: 0"), "spec.domain.devices.disks[0].bootOrder", ErrBootOrderZero},
		{"bootOrderSharedWithInterface", vmi("  domain:\n    memory: {guest: 1Gi}\n    devices:\n      disks: [{name: root, bootOrder: 1}]\n      interfaces: [{name: a, masquerade: {}, bootOrder: 1}]\n  networks: [{name: a, pod: {}}]\n  volumes: [{name: root, emptyDisk: {capacity: 1Gi}}]\n"), "spec.domain.devices.interfaces[0].bootOrder", ErrBootOrderDuplicate},
		{"diskCache", withDisk("cache: unsafe"), "spec.domain.devices.disks[0].cache", ErrDiskCache},
		{"diskIO", withDisk("io: default"), "spec.domain.devices.disks[0].io", ErrDiskIO},
		{"diskErrorPolicy", withDisk("errorPolicy: panic"), "spec.domain.devices.disks[0].errorPolicy", ErrDiskErrorPolicy},
		{"diskSerial", withDisk("serial: 'no spaces'"), "spec.domain.devices.disks[0].serial", ErrDiskSerial},
		{"diskSerialLength", withDisk("serial: " + strings.Repeat("a", 257)), "spec.domain.devices.disks[0].serial", ErrDiskSerial},
		{"pciAddressNotVirtio", withDisk("disk: {bus: sata, pciAddress: '0000:00:05.0'}"), "spec.domain.devices.disks[0].disk.pciAddress", ErrPCIAddressBus},
		{"pciAddressMalformed", withDisk("disk: {bus: virtio, pciAddress: '00:05.0'}"), "spec.domain.devices.disks[0].disk.pciAddress", ErrPCIAddress},
		{"sataReadonly", withDisk("disk: {bus: sata, readonly: true}"), "spec.domain.devices.disks[0].disk.readonly", ErrSATAReadonly},
		{"ioThreadNotVirtio", withDisk("disk: {bus: sata}\n        dedicatedIOThread: true"), "spec.domain.devices.disks[0].dedicatedIOThread", ErrIOThreadBus},
		{"lunOnContainerDisk", withDisk("lun: {}"), "spec.domain.devices.disks[0].lun", ErrLUNVolume},
		{"blockSizeNotPowerOf2", withDisk("disk: {bus: virtio}\n        blockSize: {custom: {logical: 1000, physical: 4096}}"), "spec.domain.devices.disks[0].blockSize.custom.logical", ErrBlockSize},
		{"blockSizeLogicalOverPhysical", withDisk("disk: {bus: virtio}\n        blockSize: {custom: {logical: 4096, physical: 512}}"), "spec.domain.devices.disks[0].blockSize.custom.logical", ErrBlockSize},
		{"blockSizeSATALogical", withDisk("disk: {bus: sata}\n        blockSize: {custom: {logical: 4096, physical: 4096}}"), "spec.domain.devices.disks[0].blockSize.custom.logical", ErrBlockSize},

		// Volumes.
		{"volumeNameDuplicate", vmi("  domain:\n    memory: {guest: 1Gi}\n  volumes: [{name: v, emptyDisk: {capacity: 1Gi}}, {name: v, emptyDisk: {capacity: 1Gi}}]\n"), "spec.volumes[1].name", ErrVolumeNameDuplicate},
		{"volumeTwoSources", withVolume("emptyDisk: {capacity: 1Gi}\n    containerDisk: {image: quay.io/x:1}"), "spec.volumes[0]", ErrVolumeSource},
		{"volumeNoSource", vmi("  domain:\n    memory: {guest: 1Gi}\n  volumes: [{name: root}]\n"), "spec.volumes[0]", ErrVolumeSource},
		{"twoServiceAccounts", vmi("  domain:\n    memory: {guest: 1Gi}\n  volumes: [{name: sa1, serviceAccount: {serviceAccountName: a}}, {name: sa2, serviceAccount: {serviceAccountName: b}}]\n"), "spec.volumes[1].serviceAccount", ErrVolumeSingleton},
		{"containerDiskImage", withVolume("containerDisk: {imagePullPolicy: Always}"), "spec.volumes[0].containerDisk.image", ErrContainerDiskImage},
		{"emptyDiskCapacity", withVolume("emptyDisk: {capacity: 0}"), "spec.volumes[0].emptyDisk.capacity", ErrEmptyDiskCapacity},
		{"hostDiskPath", withVolume("hostDisk: {type: Disk}"), "spec.volumes[0].hostDisk.path", ErrHostDiskPath},
		{"hostDiskType", withVolume("hostDisk: {path: /var/d.img, type: File}"), "spec.volumes[0].hostDisk.type", ErrHostDiskType},
		{"hostDiskCapacity", withVolume("hostDisk: {path: /var/d.img, type: Disk, capacity: 1Gi}"), "spec.volumes[0].hostDisk.capacity", ErrHostDiskCapacity},
		{"dataVolumeName", withVolume("dataVolume: {hotpluggable: true}"), "spec.volumes[0].dataVolume.name", ErrDataVolumeName},
		{"cloudInitNoData", withVolume("cloudInitNoCloud: {}"), "spec.volumes[0].cloudInitNoCloud", ErrCloudInitNoData},
		{"cloudInitTwoUserData", withVolume("cloudInitNoCloud: {userData: a, userDataBase64: YQ==}"), "spec.volumes[0].cloudInitNoCloud", ErrCloudInitSources},
		{"cloudInitTooLarge", withVolume("cloudInitNoCloud: {userData: " + big + "}"), "spec.volumes[0].cloudInitNoCloud.userData", ErrCloudInitTooLarge},
		{"cloudInitBase64TooLarge", withVolume("cloudInitConfigDrive: {userDataBase64: " + base64.StdEncoding.EncodeToString([]byte(big)) + "}"), "spec.volumes[0].cloudInitConfigDrive.userDataBase64", ErrCloudInitTooLarge},
		{"cloudInitBadBase64", withVolume("cloudInitNoCloud: {networkDataBase64: '!!!'}"), "spec.volumes[0].cloudInitNoCloud.networkDataBase64", ErrCloudInitBase64},

		// Networks and interfaces.
		{"networkNameDuplicate", withNet("[{name: a, masquerade: {}}]", "[{name: a, pod: {}}, {name: a, multus: {networkName: nad}}]"), "spec.networks[1].name", ErrNetworkNameDuplicate},
		{"interfaceNameDuplicate", withNet("[{name: a, masquerade: {}}, {name: a, bridge: {}}]", "[{name: a, pod: {}}]"), "spec.domain.devices.interfaces[1].name", ErrInterfaceNameDuplicate},
		{"interfaceName", withNet("[{name: 'a.b', masquerade: {}}]", "[{name: 'a.b', pod: {}}]"), `spec.domain.devices.interfaces[0].name`, ErrInterfaceName},
		{"interfaceWithoutNetwork", withNet("[{name: a, masquerade: {}}, {name: b, bridge: {}}]", "[{name: a, pod: {}}]"), "spec.domain.devices.interfaces[1].name", ErrInterfaceNoNetwork},
		{"networkWithoutInterface", withNet("[{name: a, masquerade: {}}]", "[{name: a, pod: {}}, {name: b, multus: {networkName: nad}}]"), "spec.networks[1].name", ErrNetworkNoInterface},
		{"twoPodNetworks", withNet("[{name: a, masquerade: {}}, {name: b, masquerade: {}}]", "[{name: a, pod: {}}, {name: b, pod: {}}]"), "spec.networks[1].pod", ErrMultiplePodNetworks},
		{"networkTwoSources", withNet("[{name: a, masquerade: {}}]", "[{name: a, pod: {}, multus: {networkName: nad}}]"), "spec.networks[0]", ErrNetworkSource},
		{"interfaceTwoBindings", withNet("[{name: a, masquerade: {}, bridge: {}}]", "[{name: a, pod: {}}]"), "spec.domain.devices.interfaces[0]", ErrInterfaceBinding},
		{"interfaceModel", withNet("[{name: a, masquerade: {}, model: virtio-net}]", "[{name: a, pod: {}}]"), "spec.domain.devices.interfaces[0].model", ErrInterfaceModel},
		{"macAddress", withNet("[{name: a, masquerade: {}, macAddress: '02:00:00:00:00'}]", "[{name: a, pod: {}}]"), "spec.domain.devices.interfaces[0].macAddress", ErrMACAddress},
		{"masqueradeOnMultus", withNet("[{name: a, masquerade: {}}]", "[{name: a, multus: {networkName: nad}}]"), "spec.domain.devices.interfaces[0].masquerade", ErrMasqueradeNotPod},
		{"interfacePCIAddress", withNet("[{name: a, masquerade: {}, pciAddress: 'slot 5'}]", "[{name: a, pod: {}}]"), "spec.domain.devices.interfaces[0].pciAddress", ErrPCIAddress},
		{"portNameDuplicate", withNet("[{name: a, masquerade: {}, ports: [{name: ssh, port: 22}, {name: ssh, port: 2222}]}]", "[{name: a, pod: {}}]"), "spec.domain.devices.interfaces[0].ports[1].name", ErrPortName},
		{"portProtocol", withNet("[{name: a, masquerade: {}, ports: [{port: 22, protocol: SCTP}]}]", "[{name: a, pod: {}}]"), "spec.domain.devices.interfaces[0].ports[0].protocol", ErrPortProtocol},
		{"portNumber", withNet("[{name: a, masquerade: {}, ports: [{port: 70000}]}]", "[{name: a, pod: {}}]"), "spec.domain.devices.interfaces[0].ports[0].port", ErrPortNumber},
		{"nadConfigNotJSON", nad("'{\"type\": \"bridge\",'"), "spec.config", ErrNADConfig},
		{"nadConfigEmpty", nad("''"), "spec.config", ErrNADConfig},

		// Instancetypes.
		{"instancetypeNoCPU", "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineInstancetype\nmetadata:\n  name: it\nspec:\n  cpu: {guest: 0}\n  memory: {guest: 1Gi}\n", "spec.cpu.guest", ErrInstancetypeCPUGuest},
		{"instancetypeOvercommitRange", "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineInstancetype\nmetadata:\n  name: it\nspec:\n  cpu: {guest: 1}\n  memory: {guest: 1Gi, overcommitPercent: 101}\n", "spec.memory.overcommitPercent", ErrOvercommitPercent},
		{"instancetypeOvercommitHugepages", "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineInstancetype\nmetadata:\n  name: it\nspec:\n  cpu: {guest: 1}\n  memory: {guest: 1Gi, overcommitPercent: 10, hugepages: {pageSize: 2Mi}}\n", "spec.memory.overcommitPercent", ErrOvercommitHugepages},
		{"cloudInitEmptySecretRef", withVolume("cloudInitNoCloud: {secretRef: {}}"), "spec.volumes[0].cloudInitNoCloud", ErrCloudInitNoData},
		{"preferenceTopology", pref("  cpu: {preferredCPUTopology: diagonal}\n"), "spec.cpu.preferredCPUTopology", ErrPreferredTopology},
		{"preferenceSpreadAcross", pref("  cpu: {preferredCPUTopology: spread, spreadOptions: {across: SocketsThreads}}\n"), "spec.cpu.spreadOptions.across", ErrSpreadAcross},
		{"preferenceSpreadCoresThreads", pref("  cpu: {preferredCPUTopology: spread, spreadOptions: {across: CoresThreads, ratio: 4}}\n"), "spec.cpu.spreadOptions.ratio", ErrSpreadCoresThreads},
		{"preferenceSpreadRatioZero", pref("  cpu: {preferredCPUTopology: spread, spreadOptions: {ratio: 0}}\n"), "spec.cpu.spreadOptions.ratio", ErrSpreadRatio},
		{"instancetypeNoMemory", "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineClusterInstancetype\nmetadata:\n  name: it\nspec:\n  cpu: {guest: 1}\n  memory: {guest: 0}\n", "spec.memory.guest", ErrInstancetypeMemory},

		// Host kinds.
		{"certTooSmall", hco("{ca: {duration: 5m}}"), "spec.certConfig.ca.duration", ErrCertDurationTooSmall},
		{"certCARenewBefore", hco("{ca: {duration: 48h, renewBefore: 49h}}"), "spec.certConfig.ca.renewBefore", ErrCertCARenewBefore},
		{"certServerRenewBefore", hco("{server: {duration: 10h, renewBefore: 11h}}"), "spec.certConfig.server.renewBefore", ErrCertServerRenewBefore},
		{"certCAShorterThanServer", hco("{ca: {duration: 4h0m0s, renewBefore: 1h0m0s}, server: {renewBefore: 4h0m0s}}"), "spec.certConfig.server.duration", ErrCertCAServer},
		{"hostPathRoot", "apiVersion: hostpathprovisioner.kubevirt.io/v1beta1\nkind: HostPathProvisioner\nmetadata:\n  name: hpp\nspec:\n  pathConfig: {path: /}\n", "spec.pathConfig.path", ErrHostPathRoot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := parse(t, tc.src)
			errs := s.Diags.Errors()
			if len(errs) != 1 {
				t.Fatalf("want exactly one error, got %d:\n%v", len(errs), errs.Err())
			}
			d := errs[0]
			if d.Path != tc.path || !errors.Is(d, tc.want) {
				t.Errorf("got %q (path %q), want %v at path %q", d.Error(), d.Path, tc.want, tc.path)
			}
			if d.File != "test.yaml" || d.Line == 0 || d.Object == "" {
				t.Errorf("diagnostic lacks file, line or object: %+v", d)
			}
			if s.Incomplete || len(s.Objects) != 1 || s.Objects[0].Valid {
				t.Errorf("want one known, invalid object; Incomplete=%v objects=%v", s.Incomplete, s.Objects)
			}
		})
	}
}

// The seed's only quoted validation text (8.14.3) comes out verbatim.
func TestValidate_certConfigSeedMessage(t *testing.T) {
	s := parse(t, hco(`
    ca:
      duration: 4h0m0s
      renewBefore: 1h0m0s
    server:
      renewBefore: 4h0m0s`))
	if len(s.Diags) != 1 {
		t.Fatalf("want one diagnostic, got %v", s.Diags)
	}
	if got, want := s.Diags[0].Message, "spec.certConfig: ca.duration is smaller than server.duration"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

// All problems of a document are reported at once (SPEC M-2), each at its own line.
func TestValidate_allAtOnce(t *testing.T) {
	s := parse(t, vm(`  runStrategy: Always
  template:
    spec:
      domain:
        resources:
          requests: {memory: 128Mi}
          limits: {memory: 130Mi}
        devices:
          disks:
          - name: root
            cdrom: {bus: virtio}
          - name: root
      volumes:
      - name: root
        containerDisk: {image: quay.io/x:1}
`))
	got := map[string]int{}
	for _, d := range s.Diags {
		got[d.Path] = d.Line
	}
	want := map[string]int{
		"spec.template.spec.domain.resources.limits.memory":    12,
		"spec.template.spec.domain.devices.disks[0].cdrom.bus": 16,
		"spec.template.spec.domain.devices.disks[1].name":      17,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("path -> line (-want +got):\n%s", diff)
	}
}

func TestValidate_seedExamples(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "seed-examples.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := Parse("seed-examples.yaml", data, Options{})
	for _, d := range s.Diags {
		t.Errorf("%v", d)
	}
	if len(s.Objects) != 6 {
		t.Errorf("got %d objects, want 6", len(s.Objects))
	}
}

// What KubeVirt v1.9's admission accepts, nodevirt accepts: each document
// here was refused by an earlier, stricter rule.
func TestValidate_admitsWhatKubeVirtAdmits(t *testing.T) {
	for _, tc := range []struct{ name, src string }{
		// validateHugepagesMemoryRequests: memory equal to one page.
		{"hugepagesEqualToRequest", vmi("  domain:\n    memory: {hugepages: {pageSize: 1Gi}}\n    resources: {requests: {memory: 1Gi}}\n")},
		{"hugepagesEqualToGuest", vmi("  domain:\n    memory: {guest: 2Mi, hugepages: {pageSize: 2Mi}}\n")},
		{"hugepagesWholePages", vmi("  domain:\n    memory: {hugepages: {pageSize: 1Gi}}\n    resources: {requests: {memory: 4Gi}}\n")},
		// A secret reference with a name is a source of its own.
		{"cloudInitSecretRef", withVolume("cloudInitNoCloud: {secretRef: {name: userdata}}")},
		{"ioThreadsPool", vmi("  domain:\n    memory: {guest: 1Gi}\n    ioThreadsPolicy: supplementalPool\n    ioThreads: {supplementalPoolThreadCount: 2}\n")},
		{"guestAgentPingProbe", vmi("  readinessProbe: {guestAgentPing: {}}\n" + mem)},
		{"hostnameLabel", vmi("  hostname: web-1\n  subdomain: vms.example.com\n" + mem)},
		{"instancetypeOvercommit", "apiVersion: instancetype.kubevirt.io/v1beta1\nkind: VirtualMachineInstancetype\nmetadata:\n  name: it\nspec:\n  cpu: {guest: 1}\n  memory: {guest: 1Gi, overcommitPercent: 100}\n"},
		// Requests equal to limits are KubeVirt's guaranteed QoS.
		{"dedicatedGuaranteed", vmi("  domain:\n    cpu: {dedicatedCpuPlacement: true, cores: 2}\n    resources: {requests: {cpu: 2, memory: 1Gi}, limits: {cpu: 2, memory: 1Gi}}\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := parse(t, tc.src)
			if errs := s.Diags.Errors(); len(errs) > 0 {
				t.Fatalf("KubeVirt admits this; got %v", errs.Err())
			}
			if !s.Objects[0].Valid {
				t.Error("object not valid")
			}
		})
	}
}

// A DataVolume whose storage: is written without a value gets CDI's empty
// storage spec, and the one thing it then lacks is named.
func TestValidate_dataVolumeStorageWrittenEmpty(t *testing.T) {
	s := parse(t, `apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: dv}
spec:
  source: {blank: {}}
  storage:
---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: vm}
spec:
  runStrategy: Halted
  dataVolumeTemplates:
  - metadata: {name: root}
    spec:
      source: {blank: {}}
      storage:
  template:
    spec:
      domain:
        memory: {guest: 1Gi}
      volumes: [{name: root, dataVolume: {name: root}}]
`)
	if s.Diags.HasErrors() {
		t.Fatal(s.Diags)
	}
	dv := s.Objects[0].Value.(*cdiv1beta1.DataVolume)
	if dv.Spec.Storage == nil || dv.Spec.PVC != nil {
		t.Errorf("storage = %v, pvc = %v; want an empty storage spec", dv.Spec.Storage, dv.Spec.PVC)
	}
	v := s.Objects[1].Value.(*kubevirtv1.VirtualMachine)
	if v.Spec.DataVolumeTemplates[0].Spec.Storage == nil {
		t.Error("the template's storage: must be an empty storage spec too")
	}
}

// A spread preference must split the instancetype's vCPUs evenly (KubeVirt's
// CheckSpreadCPUTopology); a deprecated topology name is a warning.
func TestValidate_spreadTopology(t *testing.T) {
	doc := func(guest int, prefCPU string) string {
		return fmt.Sprintf(`apiVersion: instancetype.kubevirt.io/v1beta1
kind: VirtualMachineClusterInstancetype
metadata: {name: it}
spec:
  cpu: {guest: %d}
  memory: {guest: 1Gi}
---
apiVersion: instancetype.kubevirt.io/v1beta1
kind: VirtualMachineClusterPreference
metadata: {name: p}
spec:
  cpu: %s
---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: vm}
spec:
  runStrategy: Halted
  instancetype: {name: it}
  preference: {name: p}
  template:
    spec:
      domain: {devices: {}}
`, guest, prefCPU)
	}
	for _, tc := range []struct {
		name    string
		src     string
		wantErr error
		cpu     [3]uint32 // sockets, cores, threads when it expands
	}{
		{"evenSocketsCores", doc(4, "{preferredCPUTopology: spread}"), nil, [3]uint32{2, 2, 1}},
		{"oddSocketsCores", doc(3, "{preferredCPUTopology: spread}"), ErrSpreadTopology, [3]uint32{}},
		{"oddCoresThreads", doc(3, "{preferredCPUTopology: spread, spreadOptions: {across: CoresThreads}}"), ErrSpreadTopology, [3]uint32{}},
		{"socketsCoresThreads", doc(8, "{preferredCPUTopology: spread, spreadOptions: {across: SocketsCoresThreads}}"), nil, [3]uint32{2, 2, 2}},
		{"socketsCoresThreadsUneven", doc(6, "{preferredCPUTopology: spread, spreadOptions: {across: SocketsCoresThreads}}"), ErrSpreadTopology, [3]uint32{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := parse(t, tc.src)
			errs := s.Diags.Errors()
			vmObj := s.Objects[2]
			if tc.wantErr != nil {
				if len(errs) != 1 || !errors.Is(errs[0], tc.wantErr) || errs[0].Path != "spec.preference" || errs[0].Object != "VirtualMachine default/vm" {
					t.Fatalf("want %v at the VM's spec.preference, got %v", tc.wantErr, s.Diags)
				}
				return
			}
			if len(errs) > 0 {
				t.Fatal(errs.Err())
			}
			c := vmObj.Value.(*kubevirtv1.VirtualMachine).Spec.Template.Spec.Domain.CPU
			if got := [3]uint32{c.Sockets, c.Cores, c.Threads}; got != tc.cpu {
				t.Errorf("topology %v, want %v", got, tc.cpu)
			}
		})
	}
	// A ratio of 0 once divided by zero while expanding the VM.
	zero := parse(t, doc(2, "{preferredCPUTopology: spread, spreadOptions: {ratio: 0}}"))
	var got []error
	for _, d := range zero.Diags.Errors() {
		got = append(got, d.Err)
	}
	if len(got) != 2 || !errors.Is(got[0], ErrSpreadRatio) || !errors.Is(got[1], ErrInstancetypeInvalid) {
		t.Errorf("ratio 0: %v", zero.Diags)
	}
	s := parse(t, pref("  cpu: {preferredCPUTopology: preferCores}\n"))
	if len(s.Diags) != 1 || s.Diags[0].Severity != diag.Warning || !errors.Is(s.Diags[0], ErrTopologyDeprecated) ||
		!strings.HasSuffix(s.Diags[0].Message, "preferCores; use cores") {
		t.Errorf("deprecated topology: %v", s.Diags)
	}
}

// A CD-ROM without a volume is an empty drive (KubeVirt's
// DeclarativeHotplugVolumes); any other disk without one is refused.
func TestValidate_emptyCDROM(t *testing.T) {
	s := parse(t, vmi("  domain:\n    memory: {guest: 1Gi}\n    devices: {disks: [{name: installer, cdrom: {bus: sata}}]}\n"))
	if len(s.Diags) != 0 {
		t.Errorf("empty CD-ROM: %v", s.Diags)
	}
	s = parse(t, vmi("  domain:\n    memory: {guest: 1Gi}\n    devices: {disks: [{name: data, disk: {bus: sata}}]}\n"))
	if len(s.Diags) != 1 || !errors.Is(s.Diags[0], ErrDiskVolumeMissing) {
		t.Errorf("disk without a volume: %v", s.Diags)
	}
}
