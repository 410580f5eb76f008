package manifests

import "errors"

// Decoding problems. Each diagnostic wraps one of these in Diagnostic.Err, so
// callers (and tests) can tell rules apart with errors.Is.
var (
	ErrRead         = errors.New("cannot read file")
	ErrSyntax       = errors.New("YAML syntax error")
	ErrNotMapping   = errors.New("document is not a mapping")
	ErrDuplicateKey = errors.New("duplicate key")
	ErrMergeKey     = errors.New("merge keys (<<) are not supported; write the fields out")
	ErrKeyNotScalar = errors.New("mapping keys must be scalars")
	ErrTag          = errors.New("unsupported YAML tag")
	ErrUnknownField = errors.New("unknown field")
	ErrIgnoredField = errors.New("field not used by nodevirt; ignored")
	// ErrMovedField marks a setting written where an older version of the
	// kind keeps it; it is read all the same.
	ErrMovedField        = errors.New("setting written in its older place")
	ErrType              = errors.New("wrong type")
	ErrMissingAPIVersion = errors.New("apiVersion is required")
	ErrMissingKind       = errors.New("kind is required")
	ErrUnknownKind       = errors.New("unknown kind")
	// ErrNotServed is matched by NotServedError: an apiVersion upstream no
	// longer serves for a kind nodevirt reads.
	ErrNotServed = errors.New("apiVersion is not served")
	// ErrUnsupportedKind is matched by UnsupportedKindError: a kind the
	// upstream projects serve that nodevirt does not run.
	ErrUnsupportedKind  = errors.New("kind is not supported")
	ErrMissingName      = errors.New("metadata.name is required")
	ErrClusterNamespace = errors.New("kind is cluster-scoped; metadata.namespace is ignored")
	ErrDuplicateObject  = errors.New("object is defined more than once")
	// ErrInvalidName wraps Kubernetes' own message for a metadata.name or
	// metadata.namespace its rules refuse.
	ErrInvalidName = errors.New("invalid name")
)

// VirtualMachine rules (KubeVirt validateRunStrategy and friends).
var (
	ErrRunStrategyConflict = errors.New("running and runStrategy are mutually exclusive (running is deprecated; use runStrategy)")
	ErrRunStrategyRequired = errors.New("runStrategy must be specified")
	ErrRunStrategyInvalid  = errors.New("runStrategy must be one of Always, RerunOnFailure, Manual, Halted, Once")
	ErrTemplateRequired    = errors.New("template is required")
	// KubeVirt's dataVolumeTemplate admission.
	ErrDataVolumeTemplateUnused    = errors.New("a dataVolumeTemplate must be used by a dataVolume or persistentVolumeClaim volume of the template")
	ErrDataVolumeTemplateNamespace = errors.New("a dataVolumeTemplate's namespace must be the VM's")
)

// Compute rules: memory, CPU, machine and firmware.
var (
	ErrMemoryRequired         = errors.New("memory must be set: domain.memory.guest, domain.memory.hugepages.pageSize or domain.resources.requests.memory")
	ErrNegativeQuantity       = errors.New("must not be negative")
	ErrMemoryRequestTooSmall  = errors.New("requests.memory must be at least 1M")
	ErrMemoryRequestOverLimit = errors.New("requests.memory must not be greater than limits.memory")
	// KubeVirt's webhook does not check this; OpenShift Virtualization
	// requires it of VMs under a quota with limits (seed 8.14.1), and nodevirt
	// keeps it so the same manifest still runs there.
	ErrMemoryLimitHeadroom = errors.New("limits.memory must be at least 100Mi more than requests.memory (OpenShift Virtualization's rule for limits, kept so the manifest runs there too)")
	ErrCPURequestOverLimit = errors.New("requests.cpu must not be greater than limits.cpu")
	// KubeVirt takes any size the node offers; nodevirt reserves the pages
	// itself (x86_64's two sizes) before a VM starts.
	ErrHugepagesPageSize = errors.New("hugepages.pageSize must be 2Mi or 1Gi, the huge page sizes nodevirt reserves on the host")
	// KubeVirt validateHugepagesMemoryRequests: the memory is at least one
	// page and a whole number of pages.
	ErrHugepagesTooLarge     = errors.New("hugepages.pageSize must not be larger than the requested memory")
	ErrHugepagesNotDivisible = errors.New("the requested memory must be divisible by hugepages.pageSize")
	ErrCPUFeaturePolicy      = errors.New("cpu feature policy must be one of force, require, optional, disable, forbid")
	ErrIsolateEmulatorThread = errors.New("isolateEmulatorThread requires dedicatedCpuPlacement")
	ErrMachineType           = errors.New("machine.type must be q35 or match pc-q35*")
	ErrBootloaderConflict    = errors.New("bootloader bios and efi are mutually exclusive")
	ErrSecureBootSMM         = errors.New("EFI Secure Boot requires SMM, which is disabled: set domain.features.smm or efi.secureBoot: false")
	ErrWatchdogAction        = errors.New("watchdog action must be one of poweroff, reset, shutdown")
	// KubeVirt validateGuestMemoryLimit: nodevirt has no live-update rollout,
	// so the rule KubeVirt skips under LiveUpdate always applies.
	ErrGuestMemoryOverLimit = errors.New("memory.guest must not be greater than limits.memory")
	ErrMaxSockets           = errors.New("cpu.sockets must not be greater than cpu.maxSockets")
	// KubeVirt validateCpuPinning: the rules of dedicatedCpuPlacement.
	ErrDedicatedCPUInteger  = errors.New("CPU requests and limits must be whole numbers when dedicatedCpuPlacement is true")
	ErrDedicatedCPUEqual    = errors.New("requests.cpu and limits.cpu must be equal when dedicatedCpuPlacement is true")
	ErrDedicatedMemoryEqual = errors.New("requests.memory must be equal to limits.memory when dedicatedCpuPlacement is true")
	ErrDedicatedCPUCount    = errors.New("requests.cpu or limits.cpu must equal the number of vCPUs (sockets × cores × threads) when dedicatedCpuPlacement is true")
	ErrDedicatedThreads     = errors.New("cpu.threads must not be greater than 2 when dedicatedCpuPlacement is true")
	ErrNUMADedicated        = errors.New("numa.guestMappingPassthrough requires dedicatedCpuPlacement")
	ErrNUMAHugepages        = errors.New("numa.guestMappingPassthrough requires memory.hugepages")
	ErrRealtimeDedicated    = errors.New("realtime requires dedicatedCpuPlacement")
	ErrRealtimeNUMA         = errors.New("realtime requires numa.guestMappingPassthrough")
	// KubeVirt's Hyper-V webhook: the mutator turns dependencies on, so only
	// an explicitly disabled one can be missing.
	ErrHypervDependency  = errors.New("Hyper-V feature requires another one that is disabled")
	ErrHypervPassthrough = errors.New("hyperv and hypervPassthrough are mutually exclusive: set the enlightenments or pass the host's through, not both")
	// Values libvirt and QEMU refuse when the domain starts.
	ErrClockTimezone      = errors.New("clock.timezone must be a time zone of the IANA database, such as Europe/Paris")
	ErrTimerTickPolicy    = errors.New("timer tickPolicy is not one the timer has")
	ErrRTCTrack           = errors.New("rtc track must be guest or wall")
	ErrStartStrategy      = errors.New("startStrategy must be Paused")
	ErrPausedLiveness     = errors.New("startStrategy Paused cannot be combined with a livenessProbe")
	ErrProbePodNetwork    = errors.New("probes need a pod network")
	ErrSoundName          = errors.New("sound.name is required")
	ErrSoundModel         = errors.New("sound.model must be ich9 or ac97")
	ErrPanicModel         = errors.New("panic device model must be hyperv, isa or pvpanic")
	ErrPanicDuplicate     = errors.New("panic devices must have different models")
	ErrProbeHandler       = errors.New("a probe must set exactly one of httpGet, tcpSocket, exec and guestAgentPing")
	ErrIOThreadsPolicy    = errors.New("ioThreadsPolicy must be one of shared, auto, supplementalPool")
	ErrIOThreadsPoolCount = errors.New("ioThreadsPolicy supplementalPool needs ioThreads.supplementalPoolThreadCount of at least 1")
	ErrHostname           = errors.New("hostname must be a DNS-1123 label")
	ErrSubdomain          = errors.New("subdomain must be a DNS-1123 subdomain")
)

// Disk and volume rules (KubeVirt pkg/storage/admitters).
var (
	ErrDiskNameDuplicate   = errors.New("disks must not have the same name")
	ErrDiskName            = errors.New("disk name must be a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters)")
	ErrDiskVolumeMissing   = errors.New("disk refers to a volume that does not exist")
	ErrDiskTargets         = errors.New("a disk may set only one of disk, cdrom and lun")
	ErrDiskBus             = errors.New("bus must be one of virtio, sata, scsi, usb")
	ErrCDROMVirtio         = errors.New("a cdrom cannot use bus virtio")
	ErrBootOrderZero       = errors.New("bootOrder must be greater than 0")
	ErrBootOrderDuplicate  = errors.New("boot order is already set for a different device")
	ErrDiskCache           = errors.New("cache must be one of none, writethrough, writeback")
	ErrDiskIO              = errors.New("io must be one of native, threads")
	ErrDiskErrorPolicy     = errors.New("errorPolicy must be one of stop, ignore, report, enospace")
	ErrDiskSerial          = errors.New("serial must consist of A-Z, a-z, 0-9, '_', '.', '+', '-' and be at most 256 characters")
	ErrVolumeNameDuplicate = errors.New("volumes must not have the same name")
	ErrVolumeSource        = errors.New("a volume must have exactly one source")
	ErrContainerDiskImage  = errors.New("containerDisk.image is required")
	ErrEmptyDiskCapacity   = errors.New("emptyDisk.capacity must be greater than 0")
	ErrHostDiskPath        = errors.New("hostDisk.path is required")
	ErrHostDiskType        = errors.New("hostDisk.type must be Disk or DiskOrCreate")
	ErrHostDiskCapacity    = errors.New("hostDisk.capacity is only allowed with type DiskOrCreate")
	ErrDataVolumeName      = errors.New("dataVolume.name is required")
	ErrCloudInitNoData     = errors.New("cloud-init needs userData, userDataBase64, secretRef, or network data")
	ErrCloudInitSources    = errors.New("only one of the inline, base64 and secretRef variants may be set")
	ErrCloudInitTooLarge   = errors.New("inline cloud-init data must not exceed 2048 bytes; use a secretRef")
	ErrCloudInitBase64     = errors.New("invalid base64")
	ErrPCIAddressBus       = errors.New("setting a PCI address is only possible with bus virtio")
	ErrPCIAddress          = errors.New("PCI address must have the form DDDD:BB:SS.F (hexadecimal)")
	ErrSATAReadonly        = errors.New("sata disks do not support readonly")
	ErrIOThreadBus         = errors.New("dedicatedIOThread is only possible with bus virtio")
	ErrLUNVolume           = errors.New("a lun needs a persistentVolumeClaim or dataVolume volume")
	ErrBlockSize           = errors.New("invalid custom block size")
	ErrVolumeSingleton     = errors.New("at most one volume of this kind is allowed")
)

// Network and interface rules (KubeVirt pkg/network/admitter).
var (
	ErrNetworkNameDuplicate   = errors.New("networks must not have the same name")
	ErrInterfaceNameDuplicate = errors.New("only one interface can be connected to one specific network")
	ErrInterfaceName          = errors.New("interface name must match ^[A-Za-z0-9-_]+$")
	ErrInterfaceNoNetwork     = errors.New("interface has no network of the same name")
	ErrNetworkNoInterface     = errors.New("network has no interface of the same name")
	ErrMultiplePodNetworks    = errors.New("at most one pod network is allowed")
	ErrNetworkSource          = errors.New("a network must have exactly one source (pod or multus)")
	ErrInterfaceBinding       = errors.New("an interface may set only one binding method")
	ErrInterfaceModel         = errors.New("interface model must be one of e1000, e1000e, igb, ne2k_pci, pcnet, rtl8139, virtio")
	ErrMACAddress             = errors.New("macAddress must be a valid 6-byte MAC address")
	ErrMasqueradeNotPod       = errors.New("masquerade is only possible on the pod network")
	ErrPortName               = errors.New("port names must be unique")
	ErrPortProtocol           = errors.New("port protocol must be TCP or UDP")
	ErrPortNumber             = errors.New("port must be between 1 and 65535")
	// A NetworkAttachmentDefinition's spec.config is a CNI configuration (or
	// configuration list) in JSON.
	ErrNADConfig = errors.New("spec.config must be a JSON CNI network configuration")
)

// Instancetype and preference rules (KubeVirt pkg/instancetype).
var (
	ErrMatcherName           = errors.New("either name or inferFromVolume must be set")
	ErrInstancetypeKind      = errors.New("kind must be VirtualMachineInstancetype or VirtualMachineClusterInstancetype")
	ErrPreferenceKind        = errors.New("kind must be VirtualMachinePreference or VirtualMachineClusterPreference")
	ErrInstancetypeNotFound  = errors.New("the referenced instancetype is not in the repository")
	ErrPreferenceNotFound    = errors.New("the referenced preference is not in the repository")
	ErrInstancetypeInvalid   = errors.New("the referenced instancetype or preference has errors of its own")
	ErrInferFromVolume       = errors.New("cannot infer from the volume")
	ErrRevisionNameIgnored   = errors.New("ignored: ControllerRevisions exist only in a cluster; nodevirt expands the object the repository holds now")
	ErrInstancetypeConflict  = errors.New("conflicts with selected instance type")
	ErrPreferenceRequirement = errors.New("preference requirement not met")
	ErrInstancetypeCPUGuest  = errors.New("cpu.guest must be at least 1")
	ErrInstancetypeMemory    = errors.New("memory.guest must be greater than 0")
	ErrOvercommitPercent     = errors.New("memory.overcommitPercent must be between 0 and 100")
	ErrPreferredTopology     = errors.New("preferredCPUTopology must be one of sockets, cores, threads, spread, any")
	ErrTopologyDeprecated    = errors.New("preferredCPUTopology is deprecated")
	ErrSpreadAcross          = errors.New("spreadOptions.across must be one of SocketsCores, CoresThreads, SocketsCoresThreads")
	ErrSpreadCoresThreads    = errors.New("spreadOptions.ratio must be 2 (1 core, 2 threads) when spreading across CoresThreads")
	ErrSpreadRatio           = errors.New("spreadOptions.ratio must be at least 1")
	ErrSpreadTopology        = errors.New("the preference cannot spread the instancetype's vCPUs")
	ErrOvercommitHugepages   = errors.New("memory.overcommitPercent and memory.hugepages cannot be used together: huge pages are never overcommitted")
)

// Host kinds.
var (
	// The certConfig texts are the HyperConverged webhook's; seed 8.14.3 quotes
	// "spec.certConfig: ca.duration is smaller than server.duration".
	ErrCertDurationTooSmall  = errors.New("value is too small")
	ErrCertCARenewBefore     = errors.New("spec.certConfig.ca: duration is smaller than renewBefore")
	ErrCertServerRenewBefore = errors.New("spec.certConfig.server: duration is smaller than renewBefore")
	ErrCertCAServer          = errors.New("spec.certConfig: ca.duration is smaller than server.duration")
	// Seed 8.18.2: the backing directory must not be the file system root.
	ErrHostPathRoot = errors.New("path must be an absolute directory other than /")
	// The provisioner creates and removes directories in its path.
	ErrHostPathSystem   = errors.New("path may not be a system directory or lie inside one")
	ErrHostPathNotClean = errors.New("path must be clean (no \".\", \"..\", \"//\" or trailing \"/\")")
)

// Snapshot and restore rules (KubeVirt's snapshot admitters; nodevirt
// restores in place and only into the VM the snapshot was taken of).
var (
	ErrSnapshotSourceGroup   = errors.New("apiGroup must be kubevirt.io")
	ErrSnapshotSourceKind    = errors.New("kind must be VirtualMachine")
	ErrSnapshotSourceName    = errors.New("name is required")
	ErrSnapshotDeletion      = errors.New("deletionPolicy must be Delete or Retain")
	ErrSnapshotDeadline      = errors.New("failureDeadline must not be negative")
	ErrRestoreSnapshotName   = errors.New("virtualMachineSnapshotName is required")
	ErrRestoreReadiness      = errors.New("targetReadinessPolicy must be one of StopTarget, WaitGracePeriod, FailImmediate, WaitEventually")
	ErrRestoreVolumePolicy   = errors.New("volumeRestorePolicy must be InPlace (or unset): nodevirt puts the snapshot's data back into the VM's own volumes, which the source declares")
	ErrRestoreOverrides      = errors.New("volumeRestoreOverrides need new volumes, which nodevirt does not create: a restore is in place")
	ErrRestorePatches        = errors.New("patches apply only to a VM the restore creates; nodevirt restores into a VM the source declares")
	ErrContentSnapshotName   = errors.New("virtualMachineSnapshotName is required")
	ErrContentNotUsed        = errors.New("VirtualMachineSnapshotContent is made by the agent when it takes a snapshot; a committed one is checked and shown, not used")
	ErrSnapshotVolumeMissing = errors.New("volumeName is required")
)
