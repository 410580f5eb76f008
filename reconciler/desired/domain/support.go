package domain

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// Support says what the converter does with a spec field.
type Support string

const (
	// Mapped fields become domain XML or artifacts (Note says which).
	Mapped Support = "mapped"
	// Ignored fields are left out with a warning: the VM runs without them,
	// differently from KubeVirt in a way the Note describes.
	Ignored Support = "ignored"
	// Refused fields are errors: running without them would not be the VM the
	// manifest describes.
	Refused Support = "refused"
	// Elsewhere fields do not reach the domain: another stage reads them
	// (defaulting, placement, lifecycle) or they only shape KubeVirt's pod.
	Elsewhere Support = "elsewhere"
)

// Field is one row of the support matrix.
type Field struct {
	// Path is relative to the VirtualMachineInstance spec (a VM's
	// spec.template.spec), spelled as in YAML; [*] stands for every element.
	Path    string
	Support Support
	Note    string
	// find lists the concrete relative paths where the field is in use, for
	// rows whose "in use" is not simply "set" (see setPaths).
	find func(*kubevirtv1.VirtualMachineInstanceSpec) []string
}

// Fields returns the support matrix in table order; the README's support
// section is generated from it. A test checks that it names every field of
// the spec types the converter reads, so nothing is dropped silently.
func Fields() []Field { return slices.Clone(fields) }

// fields is the support matrix: the one place that says which spec fields
// are mapped, ignored with a warning, refused, or read elsewhere.
var fields = []Field{
	// --- VirtualMachineInstance spec ---
	{Path: "hostname", Support: Mapped, Note: "cloud-init meta-data local-hostname (default: the VM name); warned without a cloud-init volume, as QEMU's DHCP server does not send it"},
	{Path: "architecture", Support: Mapped, Note: "must match the host: amd64=x86_64, arm64=aarch64, s390x; <os><type arch> comes from the host"},
	{Path: "priorityClassName", Support: Elsewhere, Note: "pod scheduling only"},
	{Path: "nodeSelector", Support: Elsewhere, Note: "placement over the repository's Node manifests"},
	{Path: "affinity", Support: Elsewhere, Note: "placement over the repository's Node manifests"},
	{Path: "schedulerName", Support: Elsewhere, Note: "pod scheduling only"},
	{Path: "tolerations", Support: Elsewhere, Note: "placement over the repository's Node manifests"},
	{Path: "topologySpreadConstraints", Support: Elsewhere, Note: "placement over the repository's Node manifests"},
	{Path: "serviceAccountName", Support: Elsewhere, Note: "pod identity only"},
	{Path: "evictionStrategy", Support: Elsewhere, Note: "live migration on node drain; one host has nowhere to migrate"},
	{Path: "terminationGracePeriodSeconds", Support: Elsewhere, Note: "lifecycle: seconds between ACPI shutdown and destroy"},
	{Path: "subdomain", Support: Elsewhere, Note: "cluster DNS only"},
	{Path: "dnsPolicy", Support: Elsewhere, Note: "pod DNS only; the guest uses QEMU's DNS forwarder"},
	{Path: "startStrategy", Support: Ignored, Note: "the VM starts running, not paused"},
	{Path: "livenessProbe", Support: Ignored, Note: "the VM is not probed"},
	{Path: "readinessProbe", Support: Ignored, Note: "the VM is not probed"},
	{Path: "dnsConfig", Support: Ignored, Note: "the guest gets the host's resolvers through QEMU's DNS forwarder"},
	{Path: "accessCredentials", Support: Mapped, Note: "sshPublicKey with propagationMethod noCloud or configDrive: every non-empty key of the Secret → cloud-init meta-data public-keys (NoCloud) or meta_data.json public_keys (ConfigDrive), as KubeVirt; qemuGuestAgent propagation and userPassword are refused: they need the guest agent driven at runtime"},
	{Path: "resourceClaims", Support: Refused, Note: "dynamic resource allocation needs Kubernetes"},
	{Path: "utilityVolumes", Support: Ignored, Note: "utility volumes (backup and dump targets) are not attached"},

	// --- domain ---
	{Path: "domain.resources.requests", Support: Elsewhere, Note: "defaulting: memory.guest and the CPU topology come from it"},
	{Path: "domain.resources.limits", Support: Mapped, Note: "memory → <memtune><hard_limit unit=KiB> = limit + MemoryOverhead (with hugepages: limit − guest memory + overhead); cpu → <cputune><global_period>100000 + <global_quota> = millicores × 100 (the kubelet's CFS quota, on the whole domain)"},
	{Path: "domain.resources.overcommitGuestOverhead", Support: Elsewhere, Note: "no effect on the domain: it only drops the overhead from KubeVirt's pod request; requests are not mapped and the hard limit keeps the overhead (seed 8.14.7.2)"},
	{Path: "domain.cpu.sockets", Support: Mapped, Note: "<cpu><topology sockets>; <vcpu placement=static> = sockets*cores*threads"},
	{Path: "domain.cpu.cores", Support: Mapped, Note: "<cpu><topology cores>"},
	{Path: "domain.cpu.threads", Support: Mapped, Note: "<cpu><topology threads>"},
	{Path: "domain.cpu.model", Support: Mapped, Note: "host-model / host-passthrough → <cpu mode>; any other name → mode custom + <model>, plus <feature name=mpx policy=disable> on x86_64 unless listed"},
	{Path: "domain.cpu.features", Support: Mapped, Note: "<cpu><feature name policy>"},
	{Path: "domain.cpu.maxSockets", Support: Ignored, Note: "no vCPU hotplug slots; the VM has sockets, not maxSockets",
		find: func(s *kubevirtv1.VirtualMachineInstanceSpec) []string {
			if c := s.Domain.CPU; c != nil && c.MaxSockets > orOneU(c.Sockets) {
				return []string{"domain.cpu.maxSockets"}
			}
			return nil
		}},
	{Path: "domain.cpu.dedicatedCpuPlacement", Support: Mapped, Note: "<features><kvm><hint-dedicated state=on>; the agent allocates exclusive host CPUs from the node's CPU-manager pool (--cpu-manager, --reserved-cpus), persists them, and pins each vCPU (<cputune><vcpupin>)"},
	{Path: "domain.cpu.isolateEmulatorThread", Support: Mapped, Note: "one more exclusive host CPU for QEMU's emulator thread (<cputune><emulatorpin>)"},
	{Path: "domain.cpu.numa", Support: Mapped, Note: "guestMappingPassthrough (with dedicatedCpuPlacement and hugepages), as KubeVirt: one guest <cpu><numa><cell> per host NUMA node holding pinned vCPUs, memory split in whole huge pages; <numatune><memory mode=strict> over those nodes and <memnode> per cell; <memoryBacking> pages per cell and <allocation mode=immediate>"},
	{Path: "domain.cpu.realtime", Support: Refused, Note: "realtime vCPUs are not supported yet"},
	{Path: "domain.memory.guest", Support: Mapped, Note: "<memory unit=KiB> and <currentMemory unit=KiB>, rounded down to KiB"},
	{Path: "domain.memory.hugepages", Support: Mapped, Note: "<memoryBacking><hugepages><page size=2048|1048576 unit=KiB> (explicit size, unlike KubeVirt) and <source type=memfd> as KubeVirt (annotation kubevirt.io/memfd: \"false\" keeps hugetlbfs); the reconciler checks the host's free pages first (HugepagesNeeded)"},
	{Path: "domain.memory.maxGuest", Support: Ignored, Note: "no memory hotplug; the VM has memory.guest",
		find: func(s *kubevirtv1.VirtualMachineInstanceSpec) []string {
			if m := s.Domain.Memory; m != nil && m.MaxGuest != nil && (m.Guest == nil || m.MaxGuest.Cmp(*m.Guest) != 0) {
				return []string{"domain.memory.maxGuest"}
			}
			return nil
		}},
	{Path: "domain.memory.reservedOverhead", Support: Mapped, Note: "addedOverhead is added to MemoryOverhead, so to the <memtune> hard limit when limits.memory is set; memLock has no effect (libvirt raises QEMU's memlock limit where it locks memory)"},
	{Path: "domain.machine.type", Support: Mapped, Note: "<os><type machine>"},
	{Path: "domain.firmware.uuid", Support: Mapped, Note: "<uuid> (the caller passes it as Input.UUID), which QEMU gives the guest as its SMBIOS UUID; cloud-init instance-id"},
	{Path: "domain.firmware.serial", Support: Mapped, Note: "<sysinfo type=smbios><system><entry name=serial>; every domain has <os><smbios mode=sysinfo> and system entries manufacturer, product, version, sku, family from the source's KubeVirt object (kubevirt.io/v1 KubeVirt spec.configuration.smbios), else KubeVirt's defaults (manufacturer KubeVirt, product None, family KubeVirt); annotation smbios.vm.kubevirt.io/baseBoardManufacturer → <baseBoard><entry name=manufacturer>"},
	{Path: "domain.firmware.bootloader", Support: Mapped, Note: "no bootloader = SeaBIOS (libvirt's default)"},
	{Path: "domain.firmware.bootloader.bios", Support: Mapped, Note: "SeaBIOS (libvirt's default)"},
	{Path: "domain.firmware.bootloader.bios.useSerial", Support: Mapped, Note: "<os><bios useserial=yes>"},
	{Path: "domain.firmware.bootloader.efi", Support: Mapped, Note: "<os firmware=efi>, libvirt picks OVMF from the QEMU firmware descriptors"},
	{Path: "domain.firmware.bootloader.efi.secureBoot", Support: Mapped, Note: "<os><firmware><feature name=secure-boot|enrolled-keys enabled=yes|no>; unset = yes"},
	{Path: "domain.firmware.bootloader.efi.persistent", Support: Ignored, Note: "the EFI variables persist across restarts either way (libvirt keeps the per-domain VARS file), where KubeVirt starts from the template each time unless persistent is true",
		find: func(s *kubevirtv1.VirtualMachineInstanceSpec) []string {
			if fw := s.Domain.Firmware; fw != nil && fw.Bootloader != nil && fw.Bootloader.EFI != nil && isFalse(fw.Bootloader.EFI.Persistent) {
				return []string{"domain.firmware.bootloader.efi.persistent"}
			}
			return nil
		}},
	{Path: "domain.firmware.kernelBoot.kernelArgs", Support: Mapped, Note: "<os><cmdline>; needs container (KubeVirt's rule)"},
	{Path: "domain.firmware.kernelBoot.container.image", Support: Mapped, Note: "direct kernel boot: artifact kernelBoot extracts the files into DiskDir/NS/NAME/kernel-boot/ from a local OCI image layout (oci:/dir[:tag]) or image archive (docker-archive:/file.tar, docker or podman save), under --allowed-host-dirs; a registry reference is refused when the VM starts, as registry pulls are not supported yet"},
	{Path: "domain.firmware.kernelBoot.container.kernelPath", Support: Mapped, Note: "<os><kernel> = DiskDir/NS/NAME/kernel-boot/kernel; absolute, clean path in the image"},
	{Path: "domain.firmware.kernelBoot.container.initrdPath", Support: Mapped, Note: "<os><initrd> = DiskDir/NS/NAME/kernel-boot/initrd; needs kernelPath (QEMU loads an initrd only with a kernel)"},
	{Path: "domain.firmware.kernelBoot.container.imagePullPolicy", Support: Mapped, Note: "artifact pullPolicy; a local OCI layout is extracted again whenever its image digest changes"},
	{Path: "domain.firmware.kernelBoot.container.imagePullSecret", Support: Refused, Note: "registry credentials are not supported: registry pulls are not supported yet"},
	{Path: "domain.firmware.acpi", Support: Refused, Note: "ACPI SLIC/MSDM tables from Secret volumes are not mapped yet"},
	{Path: "domain.clock", Support: Mapped, Note: "<clock>: utc → offset=utc adjustment=reset (offsetSeconds → adjustment=N); timezone → offset=timezone timezone=NAME (an IANA name; utc wins when both are set); timers rtc (tickpolicy, track), pit (tickpolicy), kvm → kvmclock, hpet (tickpolicy), hyperv → hypervclock, each present=yes unless present: false (without KVM the guest gets neither kvmclock nor hypervclock: warned); no clock = no <clock> (libvirt's UTC). KubeVirt's <timer name=tsc frequency> for migratable VMs is not added: one host has nowhere to migrate"},
	{Path: "domain.features.acpi", Support: Mapped, Note: "<features><acpi/> unless enabled: false"},
	{Path: "domain.features.apic", Support: Mapped, Note: "<features><apic/> (eoi=on with endOfInterrupt)"},
	{Path: "domain.features.smm", Support: Mapped, Note: "<features><smm state=on/> when enabled"},
	{Path: "domain.features.hyperv", Support: Mapped, Note: "<features><hyperv>: relaxed, vapic, spinlocks (retries, default 4096, at least 4095), vpindex, runtime, synic, synictimer → <stimer> (direct), reset, vendorid → <vendor_id value> (at most 12 characters), frequencies, reenlightenment, tlbflush (direct, extended), ipi, evmcs, each state=on unless enabled: false; defaulting enables the dependencies (synic, ipi, tlbflush → vpindex; synictimer → synic; evmcs → vapic and CPU feature vmx); tlbflush direct/extended are warned (libvirt 9.0 has no such setting). Without KVM (domain type qemu) QEMU runs them but fills the Hyper-V CPUID leaves only through KVM, so the guest sees none: warned, and vpindex is left out (QEMU refuses to start with it)"},
	{Path: "domain.features.hypervPassthrough", Support: Mapped, Note: "enabled: true → <hyperv mode=passthrough> (every enlightenment the host offers); not together with hyperv; without KVM the guest sees none (warned)"},
	{Path: "domain.features.kvm", Support: Mapped, Note: "<features><kvm><hidden state=on|off> from hidden: hides the KVM signature from the guest's CPUID"},
	{Path: "domain.features.pvspinlock", Support: Mapped, Note: "<features><pvspinlock state=on|off> (on unless enabled: false); without KVM, on is left out with a warning (libvirt refuses it there)"},
	{Path: "domain.ioThreadsPolicy", Support: Mapped, Note: "<iothreads> as KubeVirt counts them: shared = 1 thread; auto = one per disk up to 2 × requested CPUs (1 with an isolated emulator thread), dedicatedIOThread disks on threads after the shared ones; virtio disks get <driver iothread> (shared threads in turn), the virtio-scsi controller <driver queues=vCPUs iothread=1> when SCSI disks exist"},
	{Path: "domain.ioThreads", Support: Mapped, Note: "supplementalPoolThreadCount with ioThreadsPolicy supplementalPool: <iothreads> = the count; libvirt 9 cannot give one disk the whole pool as KubeVirt does, so each virtio disk gets one thread of it in turn, with a warning"},
	{Path: "domain.chassis", Support: Mapped, Note: "<sysinfo type=smbios><chassis> entries manufacturer, version, serial, asset, sku"},
	{Path: "domain.launchSecurity", Support: Refused, Note: "confidential computing (SEV, SNP, TDX) is not supported"},
	{Path: "domain.rebootPolicy", Support: Mapped, Note: "<on_reboot>: Terminate → destroy, otherwise restart"},

	// --- domain.devices ---
	{Path: "domain.devices.useVirtioTransitional", Support: Mapped, Note: "true: model virtio-transitional on virtio disks, NICs, balloon, RNG and the SCSI and virtio-serial controllers (libvirt puts them on a conventional PCI slot, so a guest with legacy virtio drivers finds them); default virtio-non-transitional, as KubeVirt writes them"},
	{Path: "domain.devices.disableHotplug", Support: Mapped, Note: "false (default): <controller type=scsi model=virtio-non-transitional index=0> for hot-plugged disks, and on q35 empty <controller type=pci model=pcie-root-port> with fixed indexes: 8 ports in total (16 above 2 GiB of guest memory) minus those devices take, at least 3 free (6), index ≤ 31; true: none of them"},
	{Path: "domain.devices.autoattachPodInterface", Support: Elsewhere, Note: "defaulting: adds the pod network and interface"},
	{Path: "domain.devices.autoattachGraphicsDevice", Support: Mapped, Note: "false = no <graphics>/<video>; default <graphics type=vnc port=-1 autoport=yes> on 127.0.0.1"},
	{Path: "domain.devices.autoattachSerialConsole", Support: Mapped, Note: "false = no <serial>/<console>; default pty serial port 0 + serial console"},
	{Path: "domain.devices.logSerialConsole", Support: Elsewhere, Note: "KubeVirt's console log file; virsh console works either way"},
	{Path: "domain.devices.autoattachMemBalloon", Support: Mapped, Note: "false = <memballoon model=none>; default a virtio balloon with <stats period=10> and freePageReporting=on, off for dedicated or realtime CPUs, huge pages, or annotation kubevirt.io/free-page-reporting-disabled: \"true\" (KubeVirt's rules)"},
	{Path: "domain.devices.autoattachInputDevice", Support: Mapped, Note: "true and no inputs = <input type=tablet bus=usb>; the USB controller is qemu-xhci when an input or disk is on usb, else <controller type=usb model=none> as KubeVirt"},
	{Path: "domain.devices.autoattachVSOCK", Support: Ignored, Note: "no virtio-vsock device"},
	{Path: "domain.devices.rng", Support: Mapped, Note: "<rng model=virtio-non-transitional> backed by /dev/urandom"},
	{Path: "domain.devices.blockMultiQueue", Support: Ignored, Note: "disks get one queue"},
	{Path: "domain.devices.networkInterfaceMultiqueue", Support: Ignored, Note: "interfaces get one queue"},
	{Path: "domain.devices.gpus", Support: Mapped, Note: "PCI passthrough: the agent allocates a free device of resource deviceName (HyperConverged spec.permittedHostDevices, bound to vfio-pci) and persists it → <hostdev mode=subsystem type=pci managed=no> with its address, alias ua-gpu-<name>; virtualGPUOptions and mediated devices are not supported"},
	{Path: "domain.devices.gpus[*].name", Support: Mapped, Note: "<alias name=ua-gpu-NAME>"},
	{Path: "domain.devices.gpus[*].deviceName", Support: Elsewhere, Note: "allocation: the agent picks a free device of this resource before conversion"},
	{Path: "domain.devices.gpus[*].claimName", Support: Refused, Note: "dynamic resource allocation needs Kubernetes; use deviceName"},
	{Path: "domain.devices.gpus[*].requestName", Support: Refused, Note: "dynamic resource allocation needs Kubernetes; use deviceName"},
	{Path: "domain.devices.gpus[*].virtualGPUOptions", Support: Ignored, Note: "mediated (vGPU) devices are not supported, so their display options do not apply"},
	{Path: "domain.devices.gpus[*].tag", Support: Ignored, Note: "config-drive meta_data.json gets no devices list; the tag is not passed to the guest",
		find: func(s *kubevirtv1.VirtualMachineInstanceSpec) []string {
			return taggedUnderConfigDrive(s, "domain.devices.gpus", s.Domain.Devices.GPUs, func(d kubevirtv1.GPU) string { return d.Tag })
		}},
	{Path: "domain.devices.hostDevices", Support: Mapped, Note: "PCI passthrough as for gpus, alias ua-hostdevice-<name>; USB and mediated devices are not supported"},
	{Path: "domain.devices.hostDevices[*].name", Support: Mapped, Note: "<alias name=ua-hostdevice-NAME>"},
	{Path: "domain.devices.hostDevices[*].deviceName", Support: Elsewhere, Note: "allocation: the agent picks a free device of this resource before conversion"},
	{Path: "domain.devices.hostDevices[*].claimName", Support: Refused, Note: "dynamic resource allocation needs Kubernetes; use deviceName"},
	{Path: "domain.devices.hostDevices[*].requestName", Support: Refused, Note: "dynamic resource allocation needs Kubernetes; use deviceName"},
	{Path: "domain.devices.hostDevices[*].tag", Support: Ignored, Note: "config-drive meta_data.json gets no devices list; the tag is not passed to the guest",
		find: func(s *kubevirtv1.VirtualMachineInstanceSpec) []string {
			return taggedUnderConfigDrive(s, "domain.devices.hostDevices", s.Domain.Devices.HostDevices, func(d kubevirtv1.HostDevice) string { return d.Tag })
		}},
	{Path: "domain.devices.downwardMetrics", Support: Ignored, Note: "no downward metrics channel"},
	{Path: "domain.devices.panicDevices", Support: Mapped, Note: "<panic model=hyperv|isa> per entry, one per model as libvirt requires (no model: libvirt's default, isa); pvpanic → model isa with a warning, as libvirt 9.0 has no PCI pvpanic device (left out beside an isa one); libvirt then applies <on_crash>"},
	{Path: "domain.devices.filesystems", Support: Mapped, Note: "virtiofs: <filesystem type=mount accessmode=passthrough><driver type=virtiofs queue=1024><binary path=virtiofsd> sharing the persistentVolumeClaim or dataVolume's directory (VolumeDir/NS/CLAIM, a Filesystem claim) with <target dir=NAME> + artifact sharedDir; guest memory becomes shared (<memoryBacking><source type=memfd><access mode=shared>); needs virtiofsd on the host (/usr/libexec/virtiofsd, or /usr/lib/qemu/virtiofsd from Debian 12's qemu-system-common)"},
	{Path: "domain.devices.filesystems[*].name", Support: Mapped, Note: "names the volume; <target dir=NAME> (the guest's mount tag) and <alias name=ua-NAME>"},
	{Path: "domain.devices.filesystems[*].virtiofs", Support: Mapped, Note: "<driver type=virtiofs>; required"},
	{Path: "domain.devices.clientPassthrough", Support: Ignored, Note: "no USB redirection"},
	{Path: "domain.devices.sound", Support: Mapped, Note: "<sound model=ac97> for model ac97, else <sound model=ich9>; alias ua-NAME"},
	{Path: "domain.devices.tpm", Support: Mapped, Note: "<tpm model=tpm-tis><backend type=emulator version=2.0>: a TPM 2.0 emulated by swtpm, which libvirt starts; its state lives in libvirt's /var/lib/libvirt/swtpm/UUID (libvirt 9 cannot move it) and is removed with the VM; it is cleared before every start, as a new virt-launcher pod starts empty. persistent: true → <tpm model=tpm-crb> with <backend persistent_state=yes>, as KubeVirt: the state is kept across restarts (no VMPersistentState feature gate or backend-storage claim needed) and copied into offline snapshots. enabled: false = no TPM"},
	{Path: "domain.devices.video", Support: Mapped, Note: "<video><model type>; default vga heads=1 vram=16384"},
	{Path: "domain.devices.watchdog.name", Support: Mapped, Note: "<alias name=ua-NAME>"},
	{Path: "domain.devices.watchdog.i6300esb", Support: Mapped, Note: "<watchdog model=i6300esb action> (default reset)"},
	{Path: "domain.devices.watchdog.diag288", Support: Refused, Note: "diag288 is an s390x watchdog"},
	{Path: "domain.devices.inputs[*].name", Support: Mapped, Note: "<alias name=ua-NAME>"},
	{Path: "domain.devices.inputs[*].type", Support: Mapped, Note: "<input type>"},
	{Path: "domain.devices.inputs[*].bus", Support: Mapped, Note: "<input bus> (default usb)"},

	// --- disks ---
	{Path: "domain.devices.disks", Support: Mapped, Note: "one <disk> per entry, in order"},
	{Path: "domain.devices.disks[*].name", Support: Mapped, Note: "names the volume; <alias name=ua-NAME>"},
	{Path: "domain.devices.disks[*].disk", Support: Mapped, Note: "<disk device=disk>, <driver discard=unmap>"},
	{Path: "domain.devices.disks[*].disk.bus", Support: Mapped, Note: "<target bus dev>: virtio → vda, vdb… with <disk model=virtio-non-transitional>; sata/scsi/usb → sda, sdb… (one counter); scsi adds <controller type=scsi model=virtio-non-transitional>; usb makes the USB controller qemu-xhci"},
	{Path: "domain.devices.disks[*].disk.readonly", Support: Mapped, Note: "<readonly/>"},
	{Path: "domain.devices.disks[*].disk.pciAddress", Support: Ignored, Note: "libvirt assigns the PCI address"},
	{Path: "domain.devices.disks[*].cdrom", Support: Mapped, Note: "<disk device=cdrom>; without a volume of its name an empty drive (no <source>), as KubeVirt allows"},
	{Path: "domain.devices.disks[*].cdrom.bus", Support: Mapped, Note: "<target bus dev>, as for disks"},
	{Path: "domain.devices.disks[*].cdrom.readonly", Support: Mapped, Note: "<readonly/> unless false"},
	{Path: "domain.devices.disks[*].cdrom.tray", Support: Mapped, Note: "<target tray=open> when open"},
	{Path: "domain.devices.disks[*].lun", Support: Mapped, Note: "<disk type=block device=lun> on a Block claim (PVC or DataVolume; a Filesystem claim is refused), sgio unset (libvirt's filtered) as in KubeVirt, <driver discard=unmap>; bus scsi only, since QEMU passes SCSI commands through on no other bus: an unset bus is scsi (KubeVirt's sata default would not start), sata written out is refused; readonly = <readonly/>; reservation = <source><reservations managed=yes>, libvirt runs qemu-pr-helper (KubeVirt uses its pr-helper daemon's socket)"},
	{Path: "domain.devices.disks[*].bootOrder", Support: Mapped, Note: "<boot order>; any boot order anywhere drops <os><boot dev=hd>"},
	{Path: "domain.devices.disks[*].serial", Support: Mapped, Note: "<serial>"},
	{Path: "domain.devices.disks[*].cache", Support: Mapped, Note: "<driver cache>; unset = none where the disk's filesystem supports O_DIRECT, writethrough where it does not (the agent probes the state's disk and volume directories and --allowed-host-dirs at start), as KubeVirt; none where O_DIRECT fails is refused"},
	{Path: "domain.devices.disks[*].io", Support: Mapped, Note: "<driver io>; unset = native with cache none on a block device (KubeVirt also picks native for preallocated files, which the converter cannot see: they keep QEMU's threads); native needs cache none"},
	{Path: "domain.devices.disks[*].errorPolicy", Support: Mapped, Note: "<driver error_policy> (default stop)"},
	{Path: "domain.devices.disks[*].shareable", Support: Mapped, Note: "<shareable/> and cache none (another cache is refused, as KubeVirt's converter does); a claim two VMs on the node write without it is warned about"},
	{Path: "domain.devices.disks[*].dedicatedIOThread", Support: Mapped, Note: "a virtio disk gets an I/O thread of its own (<driver iothread>), see ioThreadsPolicy; SCSI disks use their controller's thread"},
	{Path: "domain.devices.disks[*].blockSize", Support: Ignored, Note: "the guest sees QEMU's default 512-byte sectors"},
	{Path: "domain.devices.disks[*].changedBlockTracking", Support: Ignored, Note: "no incremental backup bitmaps"},
	{Path: "domain.devices.disks[*].tag", Support: Ignored, Note: "config-drive meta_data.json gets no devices list; the tag is not passed to the guest",
		find: func(s *kubevirtv1.VirtualMachineInstanceSpec) []string {
			return taggedUnderConfigDrive(s, "domain.devices.disks", s.Domain.Devices.Disks, func(d kubevirtv1.Disk) string { return d.Tag })
		}},

	// --- interfaces ---
	{Path: "domain.devices.interfaces", Support: Mapped, Note: "one <interface> per entry: masquerade on the pod network, bridge on a multus network"},
	{Path: "domain.devices.interfaces[*].name", Support: Mapped, Note: "names the network; <alias name=ua-NAME>"},
	{Path: "domain.devices.interfaces[*].model", Support: Mapped, Note: "<model type>; virtio (the default) is virtio-non-transitional, or virtio-transitional with useVirtioTransitional"},
	{Path: "domain.devices.interfaces[*].masquerade", Support: Mapped, Note: "<interface type=user>: QEMU user networking, outbound NAT + DHCP (guest 10.0.2.15, gateway 10.0.2.2), no inbound ports"},
	{Path: "domain.devices.interfaces[*].bridge", Support: Refused, Note: "refused on the pod network (use masquerade); on a multus network it is mapped, see networks[*].multus.networkName",
		find: func(s *kubevirtv1.VirtualMachineInstanceSpec) []string {
			var paths []string
			for i, iface := range s.Domain.Devices.Interfaces {
				if iface.Bridge != nil && onPodNetwork(s, iface.Name) {
					paths = append(paths, fmt.Sprintf("domain.devices.interfaces[%d].bridge", i))
				}
			}
			return paths
		}},
	{Path: "domain.devices.interfaces[*].sriov", Support: Refused, Note: "SR-IOV needs a multus network and VF passthrough, which are not supported"},
	{Path: "domain.devices.interfaces[*].slirp", Support: Refused, Note: "slirp is removed from KubeVirt; use masquerade"},
	{Path: "domain.devices.interfaces[*].macvtap", Support: Refused, Note: "macvtap is removed from KubeVirt; use masquerade"},
	{Path: "domain.devices.interfaces[*].passt", Support: Refused, Note: "the passt binding is not supported yet; use masquerade"},
	{Path: "domain.devices.interfaces[*].passtBinding", Support: Refused, Note: "the passt binding is not supported yet; use masquerade"},
	{Path: "domain.devices.interfaces[*].binding", Support: Refused, Note: "network binding plugins are not supported; use masquerade"},
	{Path: "domain.devices.interfaces[*].ports", Support: Ignored, Note: "QEMU user networking forwards no inbound ports"},
	{Path: "domain.devices.interfaces[*].portRanges", Support: Ignored, Note: "QEMU user networking forwards no inbound ports"},
	{Path: "domain.devices.interfaces[*].macAddress", Support: Mapped, Note: "<mac address>; unset = 52:54:00 + hash of firmware UUID and interface name"},
	{Path: "domain.devices.interfaces[*].bootOrder", Support: Mapped, Note: "<boot order>; without it <rom enabled=no>"},
	{Path: "domain.devices.interfaces[*].pciAddress", Support: Ignored, Note: "libvirt assigns the PCI address"},
	{Path: "domain.devices.interfaces[*].dhcpOptions", Support: Ignored, Note: "QEMU's DHCP server sends no extra options"},
	{Path: "domain.devices.interfaces[*].tag", Support: Ignored, Note: "config-drive meta_data.json gets no devices list; the tag is not passed to the guest",
		find: func(s *kubevirtv1.VirtualMachineInstanceSpec) []string {
			return taggedUnderConfigDrive(s, "domain.devices.interfaces", s.Domain.Devices.Interfaces, func(d kubevirtv1.Interface) string { return d.Tag })
		}},
	{Path: "domain.devices.interfaces[*].acpiIndex", Support: Mapped, Note: "<acpi index>"},
	{Path: "domain.devices.interfaces[*].state", Support: Mapped, Note: "down = <link state=down>; absent = no interface"},

	// --- volumes ---
	{Path: "volumes[*].name", Support: Mapped, Note: "matches disks[*].name; names the artifact file"},
	{Path: "volumes[*].containerDisk.image", Support: Mapped, Note: "qcow2 overlay DiskDir/NS/NAME/VOLUME.qcow2 + artifact containerDisk"},
	{Path: "volumes[*].containerDisk.path", Support: Mapped, Note: "artifact imagePath"},
	{Path: "volumes[*].containerDisk.imagePullPolicy", Support: Mapped, Note: "artifact pullPolicy"},
	{Path: "volumes[*].containerDisk.imagePullSecret", Support: Refused, Note: "registry credentials for image pulls are not read yet; pull with credentials outside nodevirt or use a local image"},
	{Path: "volumes[*].emptyDisk", Support: Mapped, Note: "qcow2 DiskDir/NS/NAME/VOLUME.qcow2 + artifact emptyDisk (capacity rounded down to MiB)"},
	{Path: "volumes[*].cloudInitNoCloud.userData", Support: Mapped, Note: "raw ISO DiskDir/NS/NAME/VOLUME.iso (label cidata) user-data; meta-data = instance-id UUID, local-hostname"},
	{Path: "volumes[*].cloudInitNoCloud.userDataBase64", Support: Mapped, Note: "decoded into user-data"},
	{Path: "volumes[*].cloudInitNoCloud.networkData", Support: Mapped, Note: "network-config"},
	{Path: "volumes[*].cloudInitNoCloud.networkDataBase64", Support: Mapped, Note: "decoded into network-config"},
	{Path: "volumes[*].cloudInitNoCloud.secretRef", Support: Mapped, Note: "user-data from the Secret's key userdata, else userData (KubeVirt's order)"},
	{Path: "volumes[*].cloudInitNoCloud.networkDataSecretRef", Support: Mapped, Note: "network-config from the Secret's key networkdata, else networkData"},
	{Path: "volumes[*].persistentVolumeClaim", Support: Mapped, Note: "raw file VolumeDir/NS/CLAIM/disk.img (a Block claim: <disk type=block> on its device) + artifact claim; readOnly = <readonly/>; hotpluggable with a scsi disk or lun: a live disk (named after the other disks, left out of the spec hash) that a running VM attaches or detaches without a restart"},
	{Path: "volumes[*].dataVolume", Support: Mapped, Note: "as persistentVolumeClaim, with the DataVolume's name as claim, hotpluggable included"},
	{Path: "volumes[*].hostDisk", Support: Mapped, Note: "raw file at path + artifact hostDisk (create with DiskOrCreate, size = capacity); shared = <shareable/>"},
	{Path: "volumes[*].cloudInitConfigDrive.userData", Support: Mapped, Note: "raw ISO DiskDir/NS/NAME/VOLUME.iso (label config-2) openstack/latest/user_data; meta_data.json = uuid (firmware UUID), name, hostname, instance_id NAME.NAMESPACE"},
	{Path: "volumes[*].cloudInitConfigDrive.userDataBase64", Support: Mapped, Note: "decoded into user_data"},
	{Path: "volumes[*].cloudInitConfigDrive.networkData", Support: Mapped, Note: "openstack/latest/network_data.json"},
	{Path: "volumes[*].cloudInitConfigDrive.networkDataBase64", Support: Mapped, Note: "decoded into network_data.json"},
	{Path: "volumes[*].cloudInitConfigDrive.secretRef", Support: Mapped, Note: "user_data from the Secret's key userdata, else userData (KubeVirt's order)"},
	{Path: "volumes[*].cloudInitConfigDrive.networkDataSecretRef", Support: Mapped, Note: "network_data.json from the Secret's key networkdata, else networkData"},
	{Path: "volumes[*].sysprep", Support: Mapped, Note: "raw ISO DiskDir/NS/NAME/VOLUME.iso (label unattendCD, as KubeVirt) with every key of the ConfigMap or Secret, lower-cased (Windows ignores case); one must be autounattend.xml or unattend.xml"},
	{Path: "volumes[*].ephemeral", Support: Refused, Note: "ephemeral claim overlays are not supported yet"},
	{Path: "volumes[*].configMap", Support: Mapped, Note: "raw ISO DiskDir/NS/NAME/VOLUME.iso, one file per key, label volumeLabel (default cfgdata, as KubeVirt); keys plain ISO 9660 cannot name (upper case, several dots) get Rock Ridge and Joliet names through xorrisofs, as KubeVirt writes them; optional and missing: an empty image"},
	{Path: "volumes[*].secret", Support: Mapped, Note: "as configMap; the values stay out of plans, records and logs (a digest stands for them)"},
	{Path: "volumes[*].downwardAPI", Support: Mapped, Note: "as configMap, one file per fields[*].path: metadata.name, namespace, labels, annotations (key=\"value\" lines, as the kubelet) of the VMI; other field paths and resourceFieldRef are refused"},
	{Path: "volumes[*].serviceAccount", Support: Refused, Note: "service account volumes need Kubernetes"},
	{Path: "volumes[*].downwardMetrics", Support: Refused, Note: "downwardMetrics volumes are not supported yet"},
	{Path: "volumes[*].memoryDump", Support: Refused, Note: "memory dump volumes are not supported yet"},
	{Path: "volumes[*].containerPath", Support: Refused, Note: "containerPath volumes need a virt-launcher pod"},

	// --- networks ---
	{Path: "networks[*].name", Support: Mapped, Note: "matches interfaces[*].name"},
	{Path: "networks[*].pod", Support: Mapped, Note: "the VM's NAT network (see interfaces[*].masquerade)"},
	{Path: "networks[*].pod.vmNetworkCIDR", Support: Ignored, Note: "QEMU user networking uses 10.0.2.0/24"},
	{Path: "networks[*].pod.vmIPv6NetworkCIDR", Support: Ignored, Note: "QEMU user networking uses fec0::/64"},
	{Path: "networks[*].multus.networkName", Support: Mapped, Note: "NetworkAttachmentDefinition NAME or NAMESPACE/NAME (default: the VM's namespace) with CNI plugin bridge or cnv-bridge → <interface type=bridge><source bridge>, <vlan><tag id> from vlan (libvirt 9.0 starts a tagged port only on an Open vSwitch bridge, not on a Linux bridge), <mtu size> from mtu; other plugins are refused, tuning/cnv-tuning is ignored (a custom MAC needs no plugin)"},
	{Path: "networks[*].multus.default", Support: Refused, Note: "a multus network cannot replace the pod network without Kubernetes; attach it as a secondary network"},
	{Path: "networks[*].resourceClaim", Support: Refused, Note: "dynamic resource allocation needs Kubernetes"},
}

// reportUnmapped reports every ignored or refused field the spec uses. It
// owns no domain element.
func reportUnmapped(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	for _, c := range unmappedChecks() {
		for _, p := range c.paths(in.Spec) {
			if c.refused {
				out.refuse(p, c.note)
			} else {
				out.ignore(p, c.note)
			}
		}
	}
	reportUnused(in, out)
}

// unmappedCheck is one ignored or refused row of the table, ready to run.
type unmappedCheck struct {
	refused bool
	note    string
	paths   func(*kubevirtv1.VirtualMachineInstanceSpec) []string
}

// unmappedChecks lists the rows reportUnmapped checks, once per process:
// every VM would otherwise scan the whole table and look each path up.
var unmappedChecks = sync.OnceValue(func() []unmappedCheck {
	compiled := compiledPaths()
	var out []unmappedCheck
	for _, f := range fields {
		if f.Support != Ignored && f.Support != Refused {
			continue
		}
		paths := f.find
		if paths == nil {
			paths = setPaths(compiled[f.Path])
		}
		out = append(out, unmappedCheck{refused: f.Support == Refused, note: f.Note, paths: paths})
	}
	return out
})

// reportUnused warns about mapped fields that the rest of the spec leaves
// without an effect.
func reportUnused(in Input, out *output) {
	if in.Spec.Hostname != "" && !hasCloudInit(in.Spec) {
		// KubeVirt's DHCP server also hands the guest its hostname; QEMU's
		// user networking, as libvirt drives it, cannot.
		out.ignore("hostname", "the guest learns its hostname from cloud-init meta-data only, and the VM has no cloudInitNoCloud or cloudInitConfigDrive volume")
	}
}

func hasCloudInit(s *kubevirtv1.VirtualMachineInstanceSpec) bool {
	for _, v := range s.Volumes {
		if v.CloudInitNoCloud != nil || v.CloudInitConfigDrive != nil {
			return true
		}
	}
	return false
}

// taggedUnderConfigDrive lists the paths of the items of list (at field)
// that carry a tag, when a config drive would have listed them: KubeVirt
// puts tagged devices into its meta_data.json, nodevirt does not.
func taggedUnderConfigDrive[T any](s *kubevirtv1.VirtualMachineInstanceSpec, field string, list []T, tag func(T) string) []string {
	if !hasConfigDrive(s) {
		return nil
	}
	var paths []string
	for i, item := range list {
		if tag(item) != "" {
			paths = append(paths, fmt.Sprintf("%s[%d].tag", field, i))
		}
	}
	return paths
}

func hasConfigDrive(s *kubevirtv1.VirtualMachineInstanceSpec) bool {
	for _, v := range s.Volumes {
		if v.CloudInitConfigDrive != nil {
			return true
		}
	}
	return false
}

func onPodNetwork(s *kubevirtv1.VirtualMachineInstanceSpec, name string) bool {
	for _, n := range s.Networks {
		if n.Name == name {
			return n.Pod != nil
		}
	}
	return false
}

func orOneU(n uint32) uint32 {
	if n == 0 {
		return 1
	}
	return n
}

// setPaths returns what lists the concrete paths of a compiled pattern
// ("a.b[*].c", JSON names) whose value is in use: a non-nil pointer (an
// empty object such as `tpm: {}` counts), a non-empty list or map, a true
// *bool, a non-zero scalar.
func setPaths(steps []pathStep) func(*kubevirtv1.VirtualMachineInstanceSpec) []string {
	return func(spec *kubevirtv1.VirtualMachineInstanceSpec) []string {
		return walkSet(reflect.ValueOf(spec).Elem(), steps, "")
	}
}

// pathStep is one segment of a support-table path, resolved to its field
// index (through embedded structs) once for the spec type, so that checking
// every VM does not look fields up by their JSON tags again.
type pathStep struct {
	// rel is the path from after the last list step before this one
	// through this one ("domain.devices.disks"), so a walk only builds
	// the strings of the paths it returns.
	rel   string
	index []int
	list  bool
}

// compiledPaths resolves the path of every row setPaths reads, once per
// process: the table and the spec type are fixed at build time.
var compiledPaths = sync.OnceValue(func() map[string][]pathStep {
	out := map[string][]pathStep{}
	for _, f := range fields {
		if f.find == nil && (f.Support == Ignored || f.Support == Refused) {
			out[f.Path] = compilePath(reflect.TypeFor[kubevirtv1.VirtualMachineInstanceSpec](), f.Path)
		}
	}
	return out
})

func compilePath(t reflect.Type, pattern string) []pathStep {
	var steps []pathStep
	at, rel := "", ""
	for seg := range strings.SplitSeq(pattern, ".") {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		name, list := strings.CutSuffix(seg, "[*]")
		index, ft, ok := fieldIndexByJSON(t, name)
		if !ok {
			panic("domain: support table names unknown field " + at + seg)
		}
		if rel != "" {
			rel += "."
		}
		rel += name
		steps = append(steps, pathStep{rel: rel, index: index, list: list})
		at += name + "."
		if list {
			ft = ft.Elem()
			rel = ""
		}
		t = ft
	}
	return steps
}

func walkSet(v reflect.Value, steps []pathStep, at string) []string {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	s := steps[0]
	fv, err := v.FieldByIndexErr(s.index)
	if err != nil {
		return nil // inside a nil embedded struct: nothing is set there
	}
	if s.list {
		var out []string
		for i := 0; i < fv.Len(); i++ {
			if len(steps) == 1 {
				out = append(out, at+s.rel+"["+strconv.Itoa(i)+"]")
				continue
			}
			// Most elements set none of the field below: the element's
			// path is built only for those that do.
			below := walkSet(fv.Index(i), steps[1:], "")
			if len(below) == 0 {
				continue
			}
			elem := at + s.rel + "[" + strconv.Itoa(i) + "]."
			for _, p := range below {
				out = append(out, elem+p)
			}
		}
		return out
	}
	if len(steps) == 1 {
		if inUse(fv) {
			return []string{at + s.rel}
		}
		return nil
	}
	return walkSet(fv, steps[1:], at)
}

func inUse(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return false
		}
		if v.Elem().Kind() == reflect.Bool {
			return v.Elem().Bool()
		}
		return true
	case reflect.Slice, reflect.Map:
		return v.Len() > 0
	}
	return !v.IsZero()
}

// fieldByJSON finds the struct field with the given JSON name, looking into
// inlined (embedded) structs as encoding/json does.
func fieldByJSON(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name && name != "" {
			return v.Field(i), true
		}
		if tag == "" && f.Anonymous {
			fv := v.Field(i)
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					// Nothing set inside, but the name may still be valid:
					// search a zero value of the embedded type.
					fv = reflect.New(fv.Type().Elem()).Elem()
				} else {
					fv = fv.Elem()
				}
			}
			if fv.Kind() == reflect.Struct {
				if r, ok := fieldByJSON(fv, name); ok {
					return r, true
				}
			}
		}
	}
	return reflect.Value{}, false
}

// fieldIndexByJSON is fieldByJSON on a type: the index of the field with the
// given JSON name, in the same order of search, and its type.
func fieldIndexByJSON(t reflect.Type, name string) ([]int, reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name && name != "" {
			return []int{i}, f.Type, true
		}
		if tag == "" && f.Anonymous {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if sub, st, ok := fieldIndexByJSON(ft, name); ok {
					return append([]int{i}, sub...), st, true
				}
			}
		}
	}
	return nil, nil, false
}
