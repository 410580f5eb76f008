package domain

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"
)

func TestConfigureDevices(t *testing.T) {
	port := uint(0)
	serial := libvirtxml.DomainSerial{
		Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
		Target: &libvirtxml.DomainSerialTarget{Port: &port},
	}
	console := libvirtxml.DomainConsole{
		Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
		Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: &port},
	}
	vnc := libvirtxml.DomainGraphic{VNC: &libvirtxml.DomainGraphicVNC{
		Port: -1, AutoPort: "yes",
		Listeners: []libvirtxml.DomainGraphicListener{{Address: &libvirtxml.DomainGraphicListenerAddress{Address: "127.0.0.1"}}},
	}}
	vga := libvirtxml.DomainVideo{Model: libvirtxml.DomainVideoModel{Type: "vga", Heads: 1, VRam: 16384}}
	agent := libvirtxml.DomainChannel{
		Source: &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{}},
		Target: &libvirtxml.DomainChannelTarget{VirtIO: &libvirtxml.DomainChannelTargetVirtIO{Name: "org.qemu.guest_agent.0"}},
	}
	stats := &libvirtxml.DomainMemBalloonStats{Period: 10}
	balloon := &libvirtxml.DomainMemBalloon{Model: "virtio-non-transitional", FreePageReporting: "on", Stats: stats}
	for _, tc := range []struct {
		name        string
		devices     kubevirtv1.Devices
		cpu         *kubevirtv1.CPU
		memory      *kubevirtv1.Memory
		annotations map[string]string
		want        *libvirtxml.DomainDeviceList
	}{
		{
			name: "defaults",
			want: &libvirtxml.DomainDeviceList{
				Serials: []libvirtxml.DomainSerial{serial}, Consoles: []libvirtxml.DomainConsole{console},
				Graphics: []libvirtxml.DomainGraphic{vnc}, Videos: []libvirtxml.DomainVideo{vga},
				MemBalloon: balloon,
				Channels:   []libvirtxml.DomainChannel{agent},
			},
		},
		{
			name: "everything switched off",
			devices: kubevirtv1.Devices{
				AutoattachSerialConsole: ptr(false), AutoattachGraphicsDevice: ptr(false), AutoattachMemBalloon: ptr(false),
				Video: &kubevirtv1.VideoDevice{Type: "virtio"},
			},
			want: &libvirtxml.DomainDeviceList{
				MemBalloon: &libvirtxml.DomainMemBalloon{Model: "none"},
				Channels:   []libvirtxml.DomainChannel{agent},
			},
		},
		{
			name: "rng, watchdog, inputs, video type",
			devices: kubevirtv1.Devices{
				AutoattachSerialConsole: ptr(false),
				Rng:                     &kubevirtv1.Rng{},
				Watchdog: &kubevirtv1.Watchdog{Name: "wd", WatchdogDevice: kubevirtv1.WatchdogDevice{
					I6300ESB: &kubevirtv1.I6300ESBWatchdog{Action: kubevirtv1.WatchdogActionShutdown}}},
				Inputs: []kubevirtv1.Input{{Name: "tab", Type: "tablet"}, {Name: "kbd", Type: "keyboard", Bus: "virtio"}},
				// Ignored when inputs are given.
				AutoattachInputDevice: ptr(true),
				Video:                 &kubevirtv1.VideoDevice{Type: "bochs"},
			},
			want: &libvirtxml.DomainDeviceList{
				Graphics: []libvirtxml.DomainGraphic{vnc},
				Videos:   []libvirtxml.DomainVideo{{Model: libvirtxml.DomainVideoModel{Type: "bochs"}}},
				Inputs: []libvirtxml.DomainInput{
					{Type: "tablet", Bus: "usb", Alias: &libvirtxml.DomainAlias{Name: "ua-tab"}},
					{Type: "keyboard", Bus: "virtio", Alias: &libvirtxml.DomainAlias{Name: "ua-kbd"}},
				},
				Watchdogs:  []libvirtxml.DomainWatchdog{{Model: "i6300esb", Action: "shutdown", Alias: &libvirtxml.DomainAlias{Name: "ua-wd"}}},
				MemBalloon: balloon,
				RNGs: []libvirtxml.DomainRNG{{Model: "virtio-non-transitional", Backend: &libvirtxml.DomainRNGBackend{
					Random: &libvirtxml.DomainRNGBackendRandom{Device: "/dev/urandom"}}}},
				Channels: []libvirtxml.DomainChannel{agent},
			},
		},
		{
			name: "autoattach input device, watchdog default action",
			devices: kubevirtv1.Devices{
				AutoattachSerialConsole: ptr(false), AutoattachGraphicsDevice: ptr(false),
				AutoattachInputDevice: ptr(true),
				Watchdog:              &kubevirtv1.Watchdog{Name: "wd", WatchdogDevice: kubevirtv1.WatchdogDevice{I6300ESB: &kubevirtv1.I6300ESBWatchdog{}}},
			},
			want: &libvirtxml.DomainDeviceList{
				Inputs:     []libvirtxml.DomainInput{{Type: "tablet", Bus: "usb"}},
				Watchdogs:  []libvirtxml.DomainWatchdog{{Model: "i6300esb", Action: "reset", Alias: &libvirtxml.DomainAlias{Name: "ua-wd"}}},
				MemBalloon: balloon,
				Channels:   []libvirtxml.DomainChannel{agent},
			},
		},
		{
			name: "transitional virtio models, sound",
			devices: kubevirtv1.Devices{
				AutoattachSerialConsole: ptr(false), AutoattachGraphicsDevice: ptr(false),
				UseVirtioTransitional: ptr(true),
				Rng:                   &kubevirtv1.Rng{},
				Sound:                 &kubevirtv1.SoundDevice{Name: "audio", Model: "ac97"},
			},
			want: &libvirtxml.DomainDeviceList{
				Sounds:     []libvirtxml.DomainSound{{Model: "ac97", Alias: &libvirtxml.DomainAlias{Name: "ua-audio"}}},
				MemBalloon: &libvirtxml.DomainMemBalloon{Model: "virtio-transitional", FreePageReporting: "on", Stats: stats},
				RNGs: []libvirtxml.DomainRNG{{Model: "virtio-transitional", Backend: &libvirtxml.DomainRNGBackend{
					Random: &libvirtxml.DomainRNGBackendRandom{Device: "/dev/urandom"}}}},
				Channels: []libvirtxml.DomainChannel{agent},
			},
		},
		{
			// Any model but ac97 is ich9, KubeVirt's default.
			name: "sound ich9, no free page reporting with dedicated CPUs",
			devices: kubevirtv1.Devices{
				AutoattachSerialConsole: ptr(false), AutoattachGraphicsDevice: ptr(false),
				Sound: &kubevirtv1.SoundDevice{Name: "audio"},
			},
			cpu: &kubevirtv1.CPU{DedicatedCPUPlacement: true},
			want: &libvirtxml.DomainDeviceList{
				Sounds:     []libvirtxml.DomainSound{{Model: "ich9", Alias: &libvirtxml.DomainAlias{Name: "ua-audio"}}},
				MemBalloon: &libvirtxml.DomainMemBalloon{Model: "virtio-non-transitional", FreePageReporting: "off", Stats: stats},
				Channels:   []libvirtxml.DomainChannel{agent},
			},
		},
		{
			name:    "no free page reporting with huge pages",
			devices: kubevirtv1.Devices{AutoattachSerialConsole: ptr(false), AutoattachGraphicsDevice: ptr(false)},
			memory:  &kubevirtv1.Memory{Hugepages: &kubevirtv1.Hugepages{PageSize: "2Mi"}},
			want: &libvirtxml.DomainDeviceList{
				MemBalloon: &libvirtxml.DomainMemBalloon{Model: "virtio-non-transitional", FreePageReporting: "off", Stats: stats},
				Channels:   []libvirtxml.DomainChannel{agent},
			},
		},
		{
			name:        "no free page reporting when the annotation asks",
			devices:     kubevirtv1.Devices{AutoattachSerialConsole: ptr(false), AutoattachGraphicsDevice: ptr(false)},
			annotations: map[string]string{"kubevirt.io/free-page-reporting-disabled": "true"},
			want: &libvirtxml.DomainDeviceList{
				MemBalloon: &libvirtxml.DomainMemBalloon{Model: "virtio-non-transitional", FreePageReporting: "off", Stats: stats},
				Channels:   []libvirtxml.DomainChannel{agent},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := kubevirtv1.VirtualMachineInstanceSpec{}
			spec.Domain.Devices = tc.devices
			spec.Domain.CPU = tc.cpu
			spec.Domain.Memory = tc.memory
			in := testInput(spec)
			in.Annotations = tc.annotations
			dom, out := run(configureDevices, in)
			if diff := cmp.Diff(&libvirtxml.Domain{Devices: tc.want}, dom); diff != "" {
				t.Errorf("domain (-want +got):\n%s", diff)
			}
			if len(out.diags) != 0 {
				t.Errorf("unexpected diagnostics: %v", out.diags)
			}
		})
	}
}
