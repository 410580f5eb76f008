package manifests

import (
	"maps"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	instancetypev1beta1 "kubevirt.io/api/instancetype/v1beta1"
)

// applyInstancetype writes an instancetype into a VMI spec the way KubeVirt's
// pkg/instancetype/apply does: the instancetype's values are authoritative,
// so a value the VM sets itself is a conflict, never an override. It returns
// the conflicting paths (p is where spec sits in the document); with
// conflicts the spec is half-applied and must not be used.
func applyInstancetype(it *instancetypev1beta1.VirtualMachineInstancetypeSpec, pref *instancetypev1beta1.VirtualMachinePreferenceSpec,
	spec *kubevirtv1.VirtualMachineInstanceSpec, meta *metav1.ObjectMeta, p string) []string {
	var conflicts []string
	conflict := func(rel string) { conflicts = append(conflicts, p+"."+rel) }

	if it.NodeSelector != nil {
		if spec.NodeSelector != nil {
			conflict("nodeSelector")
		} else {
			spec.NodeSelector = maps.Clone(it.NodeSelector)
		}
	}
	if it.SchedulerName != "" {
		if spec.SchedulerName != "" {
			conflict("schedulerName")
		} else {
			spec.SchedulerName = it.SchedulerName
		}
	}
	applyInstancetypeCPU(it, pref, spec, conflict)
	applyInstancetypeMemory(it, spec, conflict)

	d := &spec.Domain
	if it.IOThreads != nil && it.IOThreads.SupplementalPoolThreadCount != nil {
		if d.IOThreads != nil && d.IOThreads.SupplementalPoolThreadCount != nil {
			conflict("domain.ioThreads.supplementalPoolThreadCount")
		} else {
			if d.IOThreads == nil {
				d.IOThreads = &kubevirtv1.DiskIOThreads{}
			}
			d.IOThreads.SupplementalPoolThreadCount = ptrTo(*it.IOThreads.SupplementalPoolThreadCount)
		}
	}
	if it.IOThreadsPolicy != nil {
		if d.IOThreadsPolicy != nil {
			conflict("domain.ioThreadsPolicy")
		} else {
			d.IOThreadsPolicy = ptrTo(*it.IOThreadsPolicy)
		}
	}
	if it.LaunchSecurity != nil {
		if d.LaunchSecurity != nil {
			conflict("domain.launchSecurity")
		} else {
			d.LaunchSecurity = it.LaunchSecurity.DeepCopy()
		}
	}
	if len(it.GPUs) > 0 {
		if len(d.Devices.GPUs) > 0 {
			conflict("domain.devices.gpus")
		} else {
			d.Devices.GPUs = append([]kubevirtv1.GPU(nil), it.GPUs...)
		}
	}
	if len(it.HostDevices) > 0 {
		if len(d.Devices.HostDevices) > 0 {
			conflict("domain.devices.hostDevices")
		} else {
			d.Devices.HostDevices = append([]kubevirtv1.HostDevice(nil), it.HostDevices...)
		}
	}
	for _, key := range sortedKeys(it.Annotations) {
		value := it.Annotations[key]
		if have, ok := meta.Annotations[key]; ok {
			if have != value {
				// The template's metadata sits beside its spec.
				conflicts = append(conflicts, joinKey(strings.TrimSuffix(p, ".spec")+".metadata.annotations", key))
			}
			continue
		}
		if meta.Annotations == nil {
			meta.Annotations = map[string]string{}
		}
		meta.Annotations[key] = value
	}
	return conflicts
}

func applyInstancetypeCPU(it *instancetypev1beta1.VirtualMachineInstancetypeSpec, pref *instancetypev1beta1.VirtualMachinePreferenceSpec,
	spec *kubevirtv1.VirtualMachineInstanceSpec, conflict func(string)) {
	d := &spec.Domain
	if d.CPU == nil {
		d.CPU = &kubevirtv1.CPU{}
	}
	cpu := d.CPU
	n := 0
	check := func(set bool, rel string) {
		if set {
			conflict(rel)
			n++
		}
	}
	_, reqCPU := d.Resources.Requests[corev1.ResourceCPU]
	_, limCPU := d.Resources.Limits[corev1.ResourceCPU]
	check(reqCPU, "domain.resources.requests.cpu")
	check(limCPU, "domain.resources.limits.cpu")
	check(cpu.Sockets != 0, "domain.cpu.sockets")
	check(cpu.Cores != 0, "domain.cpu.cores")
	check(cpu.Threads != 0, "domain.cpu.threads")
	check(cpu.Model != "" && it.CPU.Model != nil, "domain.cpu.model")
	check(cpu.DedicatedCPUPlacement && it.CPU.DedicatedCPUPlacement != nil, "domain.cpu.dedicatedCpuPlacement")
	check(cpu.IsolateEmulatorThread && it.CPU.IsolateEmulatorThread != nil, "domain.cpu.isolateEmulatorThread")
	check(cpu.NUMA != nil && it.CPU.NUMA != nil, "domain.cpu.numa")
	check(cpu.Realtime != nil && it.CPU.Realtime != nil, "domain.cpu.realtime")
	if n > 0 {
		return
	}
	if it.CPU.Model != nil {
		cpu.Model = *it.CPU.Model
	}
	if it.CPU.DedicatedCPUPlacement != nil {
		cpu.DedicatedCPUPlacement = *it.CPU.DedicatedCPUPlacement
	}
	if it.CPU.IsolateEmulatorThread != nil {
		cpu.IsolateEmulatorThread = *it.CPU.IsolateEmulatorThread
	}
	if it.CPU.NUMA != nil {
		cpu.NUMA = it.CPU.NUMA.DeepCopy()
	}
	if it.CPU.Realtime != nil {
		cpu.Realtime = it.CPU.Realtime.DeepCopy()
	}
	if it.CPU.MaxSockets != nil {
		cpu.MaxSockets = *it.CPU.MaxSockets
	}
	guestTopology(it.CPU.Guest, pref, cpu)
}

// guestTopology lays the instancetype's vCPUs out as the preference asks:
// all in sockets by default.
func guestTopology(vcpus uint32, pref *instancetypev1beta1.VirtualMachinePreferenceSpec, cpu *kubevirtv1.CPU) {
	cpu.Sockets, cpu.Cores, cpu.Threads = 1, 1, 1
	if vcpus <= 1 {
		return
	}
	switch preferredTopology(pref) {
	case instancetypev1beta1.Cores, instancetypev1beta1.DeprecatedPreferCores:
		cpu.Cores = vcpus
	case instancetypev1beta1.Threads, instancetypev1beta1.DeprecatedPreferThreads:
		cpu.Threads = vcpus
	case instancetypev1beta1.Spread, instancetypev1beta1.DeprecatedPreferSpread:
		ratio, across := spreadOptions(pref)
		switch across {
		case instancetypev1beta1.SpreadAcrossSocketsCores:
			cpu.Cores, cpu.Sockets = ratio, vcpus/ratio
		case instancetypev1beta1.SpreadAcrossCoresThreads:
			cpu.Threads, cpu.Cores = ratio, vcpus/ratio
		case instancetypev1beta1.SpreadAcrossSocketsCoresThreads:
			const threadsPerCore = 2
			cpu.Threads, cpu.Cores, cpu.Sockets = threadsPerCore, ratio, vcpus/threadsPerCore/ratio
		}
	default: // sockets, any
		cpu.Sockets = vcpus
	}
}

func preferredTopology(pref *instancetypev1beta1.VirtualMachinePreferenceSpec) instancetypev1beta1.PreferredCPUTopology {
	if pref != nil && pref.CPU != nil && pref.CPU.PreferredCPUTopology != nil {
		return *pref.CPU.PreferredCPUTopology
	}
	return instancetypev1beta1.Sockets
}

// spreadOptions: KubeVirt's defaults are a ratio of 2 across sockets and cores.
func spreadOptions(pref *instancetypev1beta1.VirtualMachinePreferenceSpec) (uint32, instancetypev1beta1.SpreadAcross) {
	ratio := uint32(2)
	if pref.PreferSpreadSocketToCoreRatio != 0 {
		ratio = pref.PreferSpreadSocketToCoreRatio
	}
	across := instancetypev1beta1.SpreadAcrossSocketsCores
	if pref.CPU != nil && pref.CPU.SpreadOptions != nil {
		if a := pref.CPU.SpreadOptions.Across; a != nil {
			across = *a
		}
		if r := pref.CPU.SpreadOptions.Ratio; r != nil {
			ratio = *r
		}
	}
	return ratio, across
}

// applyInstancetypeMemory reports only the first conflict, as KubeVirt does.
func applyInstancetypeMemory(it *instancetypev1beta1.VirtualMachineInstancetypeSpec, spec *kubevirtv1.VirtualMachineInstanceSpec, conflict func(string)) {
	d := &spec.Domain
	if d.Memory == nil {
		d.Memory = &kubevirtv1.Memory{}
	}
	m := d.Memory
	_, reqMem := d.Resources.Requests[corev1.ResourceMemory]
	_, limMem := d.Resources.Limits[corev1.ResourceMemory]
	switch {
	case m.Guest != nil:
		conflict("domain.memory.guest")
		return
	case m.Hugepages != nil && it.Memory.Hugepages != nil:
		conflict("domain.memory.hugepages")
		return
	case m.MaxGuest != nil && it.Memory.MaxGuest != nil:
		conflict("domain.memory.maxGuest")
		return
	case reqMem:
		conflict("domain.resources.requests.memory")
		return
	case limMem:
		conflict("domain.resources.limits.memory")
		return
	}
	guest := it.Memory.Guest.DeepCopy()
	m.Guest = &guest
	if pct := it.Memory.OvercommitPercent; pct > 0 {
		// The instancetype's overcommit: the request is that much below
		// the guest memory (KubeVirt computes it in float32, so does this).
		if d.Resources.Requests == nil {
			d.Resources.Requests = corev1.ResourceList{}
		}
		req := int64(float32(guest.Value()) * (1 - float32(pct)/100))
		d.Resources.Requests[corev1.ResourceMemory] = *resource.NewQuantity(req, guest.Format)
	}
	if it.Memory.Hugepages != nil {
		m.Hugepages = it.Memory.Hugepages.DeepCopy()
	}
	if it.Memory.MaxGuest != nil {
		mg := it.Memory.MaxGuest.DeepCopy()
		m.MaxGuest = &mg
	}
}

// applyPreference fills what the VM leaves unset from a preference
// (KubeVirt pkg/instancetype/preference/apply); a preference never
// overrides a value the VM or its instancetype sets, except the two fields
// KubeVirt cannot tell unset from false (features.acpi, disableHotplug).
func applyPreference(pref *instancetypev1beta1.VirtualMachinePreferenceSpec, spec *kubevirtv1.VirtualMachineInstanceSpec, meta *metav1.ObjectMeta) {
	d := &spec.Domain
	if c := pref.CPU; c != nil && len(c.PreferredCPUFeatures) > 0 {
		if d.CPU == nil {
			d.CPU = &kubevirtv1.CPU{}
		}
		have := map[string]bool{}
		for _, f := range d.CPU.Features {
			have[f.Name] = true
		}
		for _, f := range c.PreferredCPUFeatures {
			if !have[f.Name] {
				d.CPU.Features = append(d.CPU.Features, f)
			}
		}
	}
	if pref.Devices != nil {
		applyDevicePreferences(pref.Devices, spec)
	}
	if pref.Features != nil {
		applyFeaturePreferences(pref.Features, d)
	}
	if pref.Firmware != nil {
		applyFirmwarePreferences(pref.Firmware, d)
	}
	if m := pref.Machine; m != nil && m.PreferredMachineType != "" {
		if d.Machine == nil {
			d.Machine = &kubevirtv1.Machine{}
		}
		if d.Machine.Type == "" {
			d.Machine.Type = m.PreferredMachineType
		}
	}
	if c := pref.Clock; c != nil {
		if d.Clock == nil {
			d.Clock = &kubevirtv1.Clock{}
		}
		// The offset is all or nothing: never mix the VM's and the preference's.
		if c.PreferredClockOffset != nil && d.Clock.UTC == nil && d.Clock.Timezone == nil {
			d.Clock.ClockOffset = *c.PreferredClockOffset.DeepCopy()
		}
		if c.PreferredTimer != nil && d.Clock.Timer == nil {
			d.Clock.Timer = c.PreferredTimer.DeepCopy()
		}
	}
	if spec.Subdomain == "" && pref.PreferredSubdomain != nil {
		spec.Subdomain = *pref.PreferredSubdomain
	}
	if spec.TerminationGracePeriodSeconds == nil && pref.PreferredTerminationGracePeriodSeconds != nil {
		spec.TerminationGracePeriodSeconds = ptrTo(*pref.PreferredTerminationGracePeriodSeconds)
	}
	if a := pref.PreferredArchitecture; a != nil && *a != "" && spec.Architecture == "" {
		spec.Architecture = *a
	}
	for _, key := range sortedKeys(pref.Annotations) {
		if _, ok := meta.Annotations[key]; ok {
			continue
		}
		if meta.Annotations == nil {
			meta.Annotations = map[string]string{}
		}
		meta.Annotations[key] = pref.Annotations[key]
	}
	if pref.PreferredLaunchSecurity != nil && d.LaunchSecurity == nil {
		d.LaunchSecurity = pref.PreferredLaunchSecurity.DeepCopy()
	}
}

func applyDevicePreferences(p *instancetypev1beta1.DevicePreferences, spec *kubevirtv1.VirtualMachineInstanceSpec) {
	devs := &spec.Domain.Devices
	fillBool := func(pref *bool, dst **bool) {
		if pref != nil && *dst == nil {
			*dst = ptrTo(*pref)
		}
	}
	fillBool(p.PreferredUseVirtioTransitional, &devs.UseVirtioTransitional)
	fillBool(p.PreferredBlockMultiQueue, &devs.BlockMultiQueue)
	fillBool(p.PreferredNetworkInterfaceMultiQueue, &devs.NetworkInterfaceMultiQueue)
	if p.PreferredDisableHotplug != nil {
		devs.DisableHotplug = *p.PreferredDisableHotplug
	}
	if p.PreferredSoundModel != "" && devs.Sound != nil && devs.Sound.Model == "" {
		devs.Sound.Model = p.PreferredSoundModel
	}
	if p.PreferredRng != nil && devs.Rng == nil {
		devs.Rng = p.PreferredRng.DeepCopy()
	}
	if p.PreferredTPM != nil && devs.TPM == nil {
		devs.TPM = p.PreferredTPM.DeepCopy()
	}
	if p.PreferredVideoType != nil {
		if devs.Video == nil {
			devs.Video = &kubevirtv1.VideoDevice{}
		}
		if devs.Video.Type == "" {
			devs.Video.Type = *p.PreferredVideoType
		}
	}
	applyAutoAttachPreferences(p, spec)

	for i := range devs.Disks {
		disk := &devs.Disks[i]
		if disk.Disk == nil && disk.CDRom == nil && disk.LUN == nil {
			disk.Disk = &kubevirtv1.DiskTarget{}
		}
		switch {
		case disk.Disk != nil:
			if p.PreferredDiskBus != "" && disk.Disk.Bus == "" {
				disk.Disk.Bus = p.PreferredDiskBus
			}
			if p.PreferredDiskBlockSize != nil && disk.BlockSize == nil {
				disk.BlockSize = p.PreferredDiskBlockSize.DeepCopy()
			}
			if p.PreferredDiskCache != "" && disk.Cache == "" {
				disk.Cache = p.PreferredDiskCache
			}
			if p.PreferredDiskIO != "" && disk.IO == "" {
				disk.IO = p.PreferredDiskIO
			}
			if p.PreferredDiskDedicatedIoThread != nil && disk.DedicatedIOThread == nil && disk.Disk.Bus == kubevirtv1.DiskBusVirtio {
				disk.DedicatedIOThread = ptrTo(*p.PreferredDiskDedicatedIoThread)
			}
		case disk.CDRom != nil:
			if p.PreferredCdromBus != "" && disk.CDRom.Bus == "" {
				disk.CDRom.Bus = p.PreferredCdromBus
			}
		case disk.LUN != nil:
			if p.PreferredLunBus != "" && disk.LUN.Bus == "" {
				disk.LUN.Bus = p.PreferredLunBus
			}
		}
	}
	for i := range devs.Interfaces {
		iface := &devs.Interfaces[i]
		if p.PreferredInterfaceModel != "" && iface.Model == "" {
			iface.Model = p.PreferredInterfaceModel
		}
		if p.PreferredInterfaceMasquerade != nil && reflect.ValueOf(iface.InterfaceBindingMethod).IsZero() &&
			iface.Binding == nil && onPodNetwork(spec, iface.Name) {
			iface.Masquerade = p.PreferredInterfaceMasquerade.DeepCopy()
		}
	}
	for i := range devs.Inputs {
		in := &devs.Inputs[i]
		if p.PreferredInputBus != "" && in.Bus == "" {
			in.Bus = p.PreferredInputBus
		}
		if p.PreferredInputType != "" && in.Type == "" {
			in.Type = p.PreferredInputType
		}
	}
	if model := p.PreferredPanicDeviceModel; model != nil {
		if len(devs.PanicDevices) == 0 {
			devs.PanicDevices = []kubevirtv1.PanicDevice{{Model: ptrTo(*model)}}
		}
		for i := range devs.PanicDevices {
			if devs.PanicDevices[i].Model == nil {
				devs.PanicDevices[i].Model = ptrTo(*model)
			}
		}
	}
}

// applyAutoAttachPreferences fills the autoattach* switches the VM leaves unset.
func applyAutoAttachPreferences(p *instancetypev1beta1.DevicePreferences, spec *kubevirtv1.VirtualMachineInstanceSpec) {
	devs := &spec.Domain.Devices
	for _, f := range []struct {
		pref *bool
		dst  **bool
	}{
		{p.PreferredAutoattachGraphicsDevice, &devs.AutoattachGraphicsDevice},
		{p.PreferredAutoattachMemBalloon, &devs.AutoattachMemBalloon},
		{p.PreferredAutoattachPodInterface, &devs.AutoattachPodInterface},
		{p.PreferredAutoattachSerialConsole, &devs.AutoattachSerialConsole},
		{p.PreferredAutoattachInputDevice, &devs.AutoattachInputDevice},
	} {
		if f.pref != nil && *f.dst == nil {
			*f.dst = ptrTo(*f.pref)
		}
	}
}

// autoAttachInputDevice adds the input device autoattachInputDevice asks
// for as KubeVirt's VM controller does: a bare "default-0", so a
// preference's input bus and type reach it before defaulting makes it a USB
// tablet.
func autoAttachInputDevice(spec *kubevirtv1.VirtualMachineInstanceSpec) {
	devs := &spec.Domain.Devices
	if devs.AutoattachInputDevice == nil || !*devs.AutoattachInputDevice || len(devs.Inputs) > 0 {
		return
	}
	devs.Inputs = append(devs.Inputs, kubevirtv1.Input{Name: "default-0"})
}

func onPodNetwork(spec *kubevirtv1.VirtualMachineInstanceSpec, name string) bool {
	for _, n := range spec.Networks {
		if n.Name == name {
			return n.Pod != nil
		}
	}
	return false
}

func applyFeaturePreferences(p *instancetypev1beta1.FeaturePreferences, d *kubevirtv1.DomainSpec) {
	if d.Features == nil {
		d.Features = &kubevirtv1.Features{}
	}
	f := d.Features
	if p.PreferredAcpi != nil {
		// features.acpi is not a pointer, so "unset" cannot be told apart:
		// KubeVirt lets the preference win.
		f.ACPI = *p.PreferredAcpi.DeepCopy()
	}
	if p.PreferredApic != nil && f.APIC == nil {
		f.APIC = p.PreferredApic.DeepCopy()
	}
	if p.PreferredKvm != nil && f.KVM == nil {
		f.KVM = p.PreferredKvm.DeepCopy()
	}
	if p.PreferredPvspinlock != nil && f.Pvspinlock == nil {
		f.Pvspinlock = p.PreferredPvspinlock.DeepCopy()
	}
	if p.PreferredSmm != nil && f.SMM == nil {
		f.SMM = p.PreferredSmm.DeepCopy()
	}
	// A VM that passes the host's enlightenments through takes none from the
	// preference: KubeVirt refuses the two together.
	if ph := p.PreferredHyperv; ph != nil && (f.HypervPassthrough == nil || f.HypervPassthrough.Enabled == nil || !*f.HypervPassthrough.Enabled) {
		if f.Hyperv == nil {
			f.Hyperv = &kubevirtv1.FeatureHyperv{}
		}
		fillUnsetPointers(reflect.ValueOf(f.Hyperv).Elem(), reflect.ValueOf(ph).Elem())
	}
}

// fillUnsetPointers deep-copies every non-nil pointer field of src into the
// same field of dst where dst's is nil (both of one struct type: every Hyper-V
// enlightenment, so fields added upstream are covered too).
func fillUnsetPointers(dst, src reflect.Value) {
	for i := 0; i < src.NumField(); i++ {
		s, d := src.Field(i), dst.Field(i)
		if s.Kind() != reflect.Pointer || s.IsNil() || !d.IsNil() {
			continue
		}
		if dc := s.MethodByName("DeepCopy"); dc.IsValid() {
			d.Set(dc.Call(nil)[0])
			continue
		}
		c := reflect.New(s.Elem().Type())
		c.Elem().Set(s.Elem())
		d.Set(c)
	}
}

func applyFirmwarePreferences(p *instancetypev1beta1.FirmwarePreferences, d *kubevirtv1.DomainSpec) {
	if d.Firmware == nil {
		d.Firmware = &kubevirtv1.Firmware{}
	}
	fw := d.Firmware
	if fw.Bootloader == nil {
		fw.Bootloader = &kubevirtv1.Bootloader{}
	}
	bl := fw.Bootloader
	if p.PreferredUseBios != nil && *p.PreferredUseBios && bl.BIOS == nil && bl.EFI == nil {
		bl.BIOS = &kubevirtv1.BIOS{}
	}
	if p.PreferredUseBiosSerial != nil && bl.BIOS != nil && bl.BIOS.UseSerial == nil {
		bl.BIOS.UseSerial = ptrTo(*p.PreferredUseBiosSerial)
	}
	if bl.EFI == nil && bl.BIOS == nil && p.PreferredEfi != nil {
		bl.EFI = p.PreferredEfi.DeepCopy()
		return // the deprecated EFI preferences below do not apply then
	}
	if p.DeprecatedPreferredUseEfi != nil && *p.DeprecatedPreferredUseEfi && bl.EFI == nil && bl.BIOS == nil {
		bl.EFI = &kubevirtv1.EFI{}
	}
	if p.DeprecatedPreferredUseSecureBoot != nil && bl.EFI != nil && bl.EFI.SecureBoot == nil {
		bl.EFI.SecureBoot = ptrTo(*p.DeprecatedPreferredUseSecureBoot)
	}
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
