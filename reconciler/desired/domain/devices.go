package domain

import (
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

// guestAgentChannel is the virtio-serial port name qemu-guest-agent opens.
const guestAgentChannel = "org.qemu.guest_agent.0"

// configureDevices owns the devices every VM gets or switches with a flag:
// <serial>/<console>, <graphics>/<video>, <memballoon>, <rng>, <watchdog>,
// <input>, <sound> and the guest agent <channel>. PCI addresses and the controllers
// these need are left to libvirt.
func configureDevices(in Input, ctx Context, dom *libvirtxml.Domain, out *output) {
	spec := in.Spec.Domain.Devices
	devs := devices(dom)

	if !isFalse(spec.AutoattachSerialConsole) {
		// A pty: `virsh console` attaches to it, no socket path to manage.
		port := uint(0)
		devs.Serials = append(devs.Serials, libvirtxml.DomainSerial{
			Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
			Target: &libvirtxml.DomainSerialTarget{Port: &port},
		})
		devs.Consoles = append(devs.Consoles, libvirtxml.DomainConsole{
			Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
			Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: &port},
		})
	}

	if !isFalse(spec.AutoattachGraphicsDevice) {
		// VNC on loopback only, with a port libvirt picks: reach it through
		// an SSH tunnel, never from the network unauthenticated.
		devs.Graphics = append(devs.Graphics, libvirtxml.DomainGraphic{VNC: &libvirtxml.DomainGraphicVNC{
			Port: -1, AutoPort: "yes",
			Listeners: []libvirtxml.DomainGraphicListener{{Address: &libvirtxml.DomainGraphicListenerAddress{Address: "127.0.0.1"}}},
		}})
		devs.Videos = append(devs.Videos, video(spec.Video))
	}

	devs.MemBalloon = memBalloon(in)

	if spec.Rng != nil {
		devs.RNGs = append(devs.RNGs, libvirtxml.DomainRNG{
			Model:   virtioModel(in.Spec),
			Backend: &libvirtxml.DomainRNGBackend{Random: &libvirtxml.DomainRNGBackendRandom{Device: "/dev/urandom"}},
		})
	}

	if s := spec.Sound; s != nil {
		// KubeVirt's rule: ac97 when asked for, ich9 (HDA) for anything else.
		model := "ich9"
		if s.Model == "ac97" {
			model = "ac97"
		}
		devs.Sounds = append(devs.Sounds, libvirtxml.DomainSound{Model: model, Alias: userAlias(s.Name)})
	}

	if w := spec.Watchdog; w != nil && w.I6300ESB != nil {
		action := w.I6300ESB.Action
		if action == "" {
			action = kubevirtv1.WatchdogActionReset
		}
		devs.Watchdogs = append(devs.Watchdogs, libvirtxml.DomainWatchdog{
			Model: "i6300esb", Action: string(action), Alias: userAlias(w.Name),
		})
	}

	for _, input := range spec.Inputs {
		bus := input.Bus
		if bus == "" {
			bus = kubevirtv1.InputBusUSB
		}
		devs.Inputs = append(devs.Inputs, libvirtxml.DomainInput{
			Type: string(input.Type), Bus: string(bus), Alias: userAlias(input.Name),
		})
	}
	if len(spec.Inputs) == 0 && isTrue(spec.AutoattachInputDevice) {
		// A USB tablet keeps the VNC pointer in sync with the guest's.
		devs.Inputs = append(devs.Inputs, libvirtxml.DomainInput{Type: "tablet", Bus: "usb"})
	}

	// Always there, as in KubeVirt: a guest without the agent ignores it.
	// No source path: libvirt makes one under its own state directory.
	devs.Channels = append(devs.Channels, libvirtxml.DomainChannel{
		Source: &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{}},
		Target: &libvirtxml.DomainChannelTarget{VirtIO: &libvirtxml.DomainChannelTargetVirtIO{Name: guestAgentChannel}},
	})
}

// video is the display adapter behind the VNC console: KubeVirt's VGA with
// 16 MiB of video RAM, or devices.video.type with libvirt's sizes for it.
func video(v *kubevirtv1.VideoDevice) libvirtxml.DomainVideo {
	if v != nil && v.Type != "" && v.Type != "vga" {
		return libvirtxml.DomainVideo{Model: libvirtxml.DomainVideoModel{Type: v.Type}}
	}
	return libvirtxml.DomainVideo{Model: libvirtxml.DomainVideoModel{Type: "vga", Heads: 1, VRam: 16384}}
}

// memBalloonStatsPeriod is KubeVirt's default memBalloonStatsPeriod
// (KubeVirt CR spec.configuration), in seconds: the guest reports its memory
// statistics that often, so `virsh dommemstat` shows current figures.
const memBalloonStatsPeriod = 10

// annotationFreePageReportingDisabled opts a VM out of free page reporting,
// as in KubeVirt.
const annotationFreePageReportingDisabled = "kubevirt.io/free-page-reporting-disabled"

// memBalloon is KubeVirt's balloon: model none when autoattachMemBalloon is
// false, else a virtio balloon with statistics every 10 s and free page
// reporting, which returns memory the guest frees to the host. Reporting
// is off for high-performance VMs (dedicated CPUs, realtime, huge pages),
// whose memory must stay put, and when the annotation asks.
func memBalloon(in Input) *libvirtxml.DomainMemBalloon {
	spec := in.Spec
	if isFalse(spec.Domain.Devices.AutoattachMemBalloon) {
		// libvirt needs model none to add no balloon at all.
		return &libvirtxml.DomainMemBalloon{Model: "none"}
	}
	reporting := "on"
	if highPerformance(spec) || in.Annotations[annotationFreePageReportingDisabled] == "true" {
		reporting = "off"
	}
	return &libvirtxml.DomainMemBalloon{
		Model:             virtioModel(spec),
		FreePageReporting: reporting,
		Stats:             &libvirtxml.DomainMemBalloonStats{Period: memBalloonStatsPeriod},
	}
}

// highPerformance is KubeVirt's IsHighPerformanceVMI: dedicated or realtime
// CPUs, or huge pages.
func highPerformance(spec *kubevirtv1.VirtualMachineInstanceSpec) bool {
	if c := spec.Domain.CPU; c != nil && (c.DedicatedCPUPlacement || c.Realtime != nil) {
		return true
	}
	return spec.Domain.Memory != nil && spec.Domain.Memory.Hugepages != nil
}

// virtioModel is the model of every virtio device: virtio-transitional
// when devices.useVirtioTransitional asks for it (guests without virtio 1.0
// drivers, such as RHEL 6 or Windows without current drivers, see it as a
// legacy device), else virtio-non-transitional, as KubeVirt writes them.
func virtioModel(spec *kubevirtv1.VirtualMachineInstanceSpec) string {
	if isTrue(spec.Domain.Devices.UseVirtioTransitional) {
		return "virtio-transitional"
	}
	return "virtio-non-transitional"
}
