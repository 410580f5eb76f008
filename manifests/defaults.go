package manifests

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// Default applies KubeVirt's mutating-webhook defaults for amd64 (kubevirt
// pkg/defaults and api/core/v1 defaulters) to a VMI spec, in KubeVirt's order,
// so conversion, diffing and validation all see what KubeVirt would run.
//
// Deliberate differences from KubeVirt:
//   - No CPU or memory hotplug defaults (cpu.maxSockets, memory.maxGuest).
//     KubeVirt adds them under its LiveUpdate rollout strategy; nodevirt has no
//     live update path, and the extra <vcpus>/<maxMemory> slots would only make
//     domains differ from what the manifest says.
//   - firmware.uuid is left empty. KubeVirt stores a random UUID in the object
//     at creation; a git-driven agent cannot write it back, so the reconciler
//     derives a stable one from the object's identity instead of one per start.
//   - The default network's interface is masquerade, not KubeVirt's
//     cluster-configurable bridge default (see defaultNetwork).
func Default(spec *kubevirtv1.VirtualMachineInstanceSpec) {
	if spec == nil {
		return
	}
	defaultMachineType(spec)
	defaultResourceRequests(spec)
	defaultGuestMemory(spec)
	defaultCPU(spec)
	defaultPullPolicies(spec)
	defaultNetwork(spec)
	defaultVolumeDisks(spec)
	applyAPIDefaults(spec)
	defaultHypervDependencies(spec)
	defaultDiskBus(spec)
	defaultWatchdog(spec)
	if spec.TerminationGracePeriodSeconds == nil {
		grace := kubevirtv1.DefaultGracePeriodSeconds
		spec.TerminationGracePeriodSeconds = &grace
	}
}

func defaultMachineType(spec *kubevirtv1.VirtualMachineInstanceSpec) {
	if spec.Domain.Machine == nil {
		spec.Domain.Machine = &kubevirtv1.Machine{}
	}
	if spec.Domain.Machine.Type == "" {
		spec.Domain.Machine.Type = "q35"
	}
}

// defaultResourceRequests copies a CPU limit into a missing CPU request, as
// Kubernetes does for containers.
func defaultResourceRequests(spec *kubevirtv1.VirtualMachineInstanceSpec) {
	res := &spec.Domain.Resources
	if limit, ok := res.Limits[corev1.ResourceCPU]; ok && !limit.IsZero() {
		if req := res.Requests[corev1.ResourceCPU]; req.IsZero() {
			if res.Requests == nil {
				res.Requests = corev1.ResourceList{}
			}
			res.Requests[corev1.ResourceCPU] = limit.DeepCopy()
		}
	}
}

// defaultGuestMemory sets memory.guest from requests.memory, else
// limits.memory, else the hugepage size.
func defaultGuestMemory(spec *kubevirtv1.VirtualMachineInstanceSpec) {
	mem := spec.Domain.Memory
	if mem != nil && mem.Guest != nil {
		return
	}
	res := spec.Domain.Resources
	if q, ok := res.Requests[corev1.ResourceMemory]; ok && !q.IsZero() {
		ensureMemory(spec).Guest = ptrTo(q.DeepCopy())
		return
	}
	if q, ok := res.Limits[corev1.ResourceMemory]; ok && !q.IsZero() {
		ensureMemory(spec).Guest = ptrTo(q.DeepCopy())
		return
	}
	if mem != nil && mem.Hugepages != nil {
		if q, err := parseQuantity(mem.Hugepages.PageSize); err == nil {
			mem.Guest = &q
		}
	}
}

func ensureMemory(spec *kubevirtv1.VirtualMachineInstanceSpec) *kubevirtv1.Memory {
	if spec.Domain.Memory == nil {
		spec.Domain.Memory = &kubevirtv1.Memory{}
	}
	return spec.Domain.Memory
}

// defaultCPU sets the model and, when no topology is given, puts all vCPUs into
// sockets (KubeVirt's choice: sockets perform best, bugzilla 1653453).
func defaultCPU(spec *kubevirtv1.VirtualMachineInstanceSpec) {
	if spec.Domain.CPU == nil {
		spec.Domain.CPU = &kubevirtv1.CPU{}
	}
	cpu := spec.Domain.CPU
	if cpu.Model == "" {
		cpu.Model = kubevirtv1.DefaultCPUModel
	}
	if cpu.Sockets != 0 || cpu.Cores != 0 || cpu.Threads != 0 {
		return
	}
	sockets := int64(1)
	res := spec.Domain.Resources
	if q, ok := res.Limits[corev1.ResourceCPU]; ok {
		sockets = q.Value() // Value rounds up: 1500m is 2 sockets
	} else if q, ok := res.Requests[corev1.ResourceCPU]; ok {
		sockets = q.Value()
	}
	cpu.Sockets = uint32(max(sockets, 1))
	cpu.Cores = 1
	cpu.Threads = 1
}

// defaultPullPolicies: like Kubernetes, "latest" or untagged images are pulled
// every time, pinned ones only when missing.
func defaultPullPolicies(spec *kubevirtv1.VirtualMachineInstanceSpec) {
	for i := range spec.Volumes {
		cd := spec.Volumes[i].ContainerDisk
		if cd == nil || cd.ImagePullPolicy != "" {
			continue
		}
		cd.ImagePullPolicy = corev1.PullIfNotPresent
		if tag, pinned := imageTag(cd.Image); !pinned && (tag == "" || tag == "latest") {
			cd.ImagePullPolicy = corev1.PullAlways
		}
	}
}

// imageTag splits the tag off an image reference; pinned means a digest. A
// colon before the last slash is a registry port, not a tag.
func imageTag(image string) (tag string, pinned bool) {
	if strings.Contains(image, "@") {
		return "", true
	}
	last := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(last, ":"); i >= 0 {
		return last[i+1:], false
	}
	return "", false
}

// defaultNetwork attaches the default pod network when the spec has neither
// networks nor interfaces. nodevirt binds it with masquerade rather than
// KubeVirt's stock bridge default: a plain host has no pod network to bridge
// the guest into, while masquerade maps onto a libvirt NAT network that
// exists on any host.
func defaultNetwork(spec *kubevirtv1.VirtualMachineInstanceSpec) {
	devices := &spec.Domain.Devices
	if len(spec.Networks) > 0 || len(devices.Interfaces) > 0 {
		return
	}
	if devices.AutoattachPodInterface != nil && !*devices.AutoattachPodInterface {
		return
	}
	spec.Networks = []kubevirtv1.Network{*kubevirtv1.DefaultPodNetwork()}
	devices.Interfaces = []kubevirtv1.Interface{*kubevirtv1.DefaultMasqueradeNetworkInterface()}
}

// defaultVolumeDisks gives every volume without a disk or filesystem a disk of
// the same name (KubeVirt util.SetDefaultVolumeDisk).
func defaultVolumeDisks(spec *kubevirtv1.VirtualMachineInstanceSpec) {
	devices := &spec.Domain.Devices
	used := map[string]bool{}
	for _, d := range devices.Disks {
		used[d.Name] = true
	}
	for _, fs := range devices.Filesystems {
		used[fs.Name] = true
	}
	for _, v := range spec.Volumes {
		if !used[v.Name] {
			devices.Disks = append(devices.Disks, kubevirtv1.Disk{Name: v.Name})
			used[v.Name] = true
		}
	}
}

// applyAPIDefaults runs the generated defaulters of kubevirt.io/api (disk:{}
// for bare disks, cdrom readonly and tray, Features non-nil so ACPI is on,
// feature states enabled when given, timers present, spinlock retries, input
// bus and type, probe timings) without the random firmware UUID they would add
// (see Default).
func applyAPIDefaults(spec *kubevirtv1.VirtualMachineInstanceSpec) {
	firmware := spec.Domain.Firmware
	placeholder := firmware != nil && firmware.UUID == ""
	if placeholder {
		firmware.UUID = "placeholder"
	}
	vmi := kubevirtv1.VirtualMachineInstance{Spec: *spec}
	kubevirtv1.SetObjectDefaults_VirtualMachineInstance(&vmi)
	*spec = vmi.Spec
	if placeholder {
		firmware.UUID = ""
	}
	spec.Domain.Firmware = firmware
}

// defaultHypervDependencies enables the Hyper-V enlightenments that enabled
// ones need (KubeVirt def/hyperv.go); explicitly disabled dependencies are left
// alone and rejected by validation.
func defaultHypervDependencies(spec *kubevirtv1.VirtualMachineInstanceSpec) {
	if spec.Domain.Features == nil || spec.Domain.Features.Hyperv == nil {
		return
	}
	hv := spec.Domain.Features.Hyperv
	enable := func(fs **kubevirtv1.FeatureState) {
		if *fs == nil {
			*fs = &kubevirtv1.FeatureState{Enabled: ptrTo(true)}
		}
	}
	if on(hv.EVMCS) {
		enable(&hv.VAPIC)
		cpu := spec.Domain.CPU
		if cpu == nil {
			cpu = &kubevirtv1.CPU{}
			spec.Domain.CPU = cpu
		}
		// Enlightened VMCS is nested virtualization: the guest must see
		// vmx, whatever policy the VM gave it (KubeVirt overrides it too).
		found := false
		for i, f := range cpu.Features {
			if f.Name == "vmx" {
				found = true
				cpu.Features[i].Policy = "require"
			}
		}
		if !found {
			cpu.Features = append(cpu.Features, kubevirtv1.CPUFeature{Name: "vmx", Policy: "require"})
		}
	}
	if hv.SyNICTimer != nil && on(&hv.SyNICTimer.FeatureState) {
		enable(&hv.SyNIC)
	}
	if on(hv.SyNIC) || on(hv.IPI) || (hv.TLBFlush != nil && on(&hv.TLBFlush.FeatureState)) {
		enable(&hv.VPIndex)
	}
}

func on(fs *kubevirtv1.FeatureState) bool {
	return fs != nil && (fs.Enabled == nil || *fs.Enabled)
}

// defaultDiskBus: sata on amd64, the bus every guest can boot from without
// extra drivers (KubeVirt def/amd64.go). A lun gets scsi instead: KubeVirt
// gives it sata too, which libvirt refuses to start ("disk device='lun' is
// not supported for bus='sata'"), so the user guide's own `lun: {}` would
// not run; scsi is the one bus QEMU passes SCSI commands on.
func defaultDiskBus(spec *kubevirtv1.VirtualMachineInstanceSpec) {
	for i := range spec.Domain.Devices.Disks {
		d := &spec.Domain.Devices.Disks[i]
		switch {
		case d.Disk != nil && d.Disk.Bus == "":
			d.Disk.Bus = kubevirtv1.DiskBusSATA
		case d.CDRom != nil && d.CDRom.Bus == "":
			d.CDRom.Bus = kubevirtv1.DiskBusSATA
		case d.LUN != nil && d.LUN.Bus == "":
			d.LUN.Bus = kubevirtv1.DiskBusSCSI
		}
	}
}

func defaultWatchdog(spec *kubevirtv1.VirtualMachineInstanceSpec) {
	wd := spec.Domain.Devices.Watchdog
	if wd == nil {
		return
	}
	if wd.I6300ESB == nil && wd.Diag288 == nil {
		wd.I6300ESB = &kubevirtv1.I6300ESBWatchdog{}
	}
	if wd.I6300ESB != nil && wd.I6300ESB.Action == "" {
		wd.I6300ESB.Action = kubevirtv1.WatchdogActionReset
	}
}

func ptrTo[T any](v T) *T { return &v }
