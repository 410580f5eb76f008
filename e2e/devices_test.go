//go:build e2e

package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// devicesInit prints the PCI devices the guest finds (vendor:device) and,
// with virtio_pci and virtio_balloon loaded, each virtio device's type and
// the feature bits its driver accepted, again and again.
const devicesInit = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
for m in /lib/modules/*.ko; do /bin/busybox insmod "$m"; done
/bin/busybox sleep 1
pci=""
for d in /sys/bus/pci/devices/*; do
  pci="$pci $(/bin/busybox cut -c3- $d/vendor):$(/bin/busybox cut -c3- $d/device)"
done
virtio=""
for d in /sys/bus/virtio/devices/*; do
  virtio="$virtio $(/bin/busybox cat $d/device)=$(/bin/busybox cat $d/features)"
done
while true; do
  /bin/busybox echo "nodevirt-guest: pci$pci ;" > /dev/console
  /bin/busybox echo "nodevirt-guest: virtio$virtio ;" > /dev/console
  /bin/busybox sleep 1
done
`

// PCI IDs (vendor:device) the test looks for. Virtio devices are 1af4:
// 1000+ for transitional (legacy-capable) ones, 1040+type for modern-only.
const (
	pciTransitionalBalloon = "1af4:1002"
	pciTransitionalRNG     = "1af4:1005"
	pciTransitionalSerial  = "1af4:1003"
	pciTransitionalNIC     = "1af4:1000"
	pciModernBalloon       = "1af4:1045"
	pciModernNIC           = "1af4:1041"
	pciModernSerial        = "1af4:1043"
	pciAC97                = "8086:2415"
	pciQemuXHCI            = "1b36:000d"
	// virtio device type 5 is the balloon; feature bit 5 is free page
	// reporting, bit 1 the statistics queue.
	virtioBalloon = "0x0005"
)

func devicesVM(ns, name, devices string) string {
	return `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: ` + name + `, namespace: ` + ns + `}
spec:
  runStrategy: Always
  template:
    spec:
      terminationGracePeriodSeconds: 0
      domain:
` + fidelityCPU + `        memory: {guest: 256Mi}
        devices:
` + devices + `        firmware:
          kernelBoot:
            container: {image: "oci:` + hostImageDir + `/kernel", kernelPath: /boot/vmlinuz, initrdPath: /boot/initrd}
            kernelArgs: console=ttyS0
`
}

// guestLine waits for the guest's line starting with prefix and returns it.
func guestLine(t *testing.T, con *serialConsole, prefix string) string {
	t.Helper()
	con.await(t, prefix, 1, 120*time.Second)
	m := regexp.MustCompile(regexp.QuoteMeta(prefix) + `[^;]*;`).FindString(con.text())
	if m == "" {
		con.await(t, prefix, 2, 10*time.Second)
		m = regexp.MustCompile(regexp.QuoteMeta(prefix) + `[^;]*;`).FindString(con.text())
	}
	return m
}

// The guest finds KubeVirt's devices: with useVirtioTransitional the
// balloon, RNG, NIC and virtio-serial are transitional (legacy-capable)
// PCI functions, by default modern-only ones; the balloon offers free page
// reporting; the AC97 sound card is there; no USB controller unless a
// device needs one.
func TestFidelity_GuestSeesKubeVirtDevices(t *testing.T) {
	w := newWorld(t)
	g := w.guestVirt()
	g.log(t)
	kernelBootLayout(t, filepath.Join(w.hostRoot, hostImageDir, "kernel"), devicesInit, "virtio_pci", "virtio_balloon")
	w.commit("device VMs", map[string]string{
		"vms/legacy.yaml": devicesVM(w.ns, "legacy", `          useVirtioTransitional: true
          rng: {}
          sound: {name: audio, model: ac97}
`),
		"vms/modern.yaml": devicesVM(w.ns, "modern", `          rng: {}
`),
	})
	w.startAgent()
	w.awaitAgentFirstBoot("legacy", 60*time.Second)
	w.awaitAgentFirstBoot("modern", 60*time.Second)

	check := func(name string, want, forbidden []string) {
		con := attachConsole(t, w.dom(name))
		pci := guestLine(t, con, "nodevirt-guest: pci")
		for _, id := range want {
			if !strings.Contains(pci, " "+id) {
				t.Errorf("%s: the guest lacks PCI device %s: %s", name, id, pci)
			}
		}
		for _, id := range forbidden {
			if strings.Contains(pci, " "+id) {
				t.Errorf("%s: the guest has PCI device %s: %s", name, id, pci)
			}
		}
		virtio := guestLine(t, con, "nodevirt-guest: virtio")
		m := regexp.MustCompile(virtioBalloon + `=([01]+)`).FindStringSubmatch(virtio)
		if m == nil || len(m[1]) < 6 {
			t.Errorf("%s: no virtio balloon with features: %s", name, virtio)
			return
		}
		if m[1][1] != '1' || m[1][5] != '1' {
			t.Errorf("%s: balloon features %s: want the statistics queue (bit 1) and free page reporting (bit 5)", name, m[1])
		}
		t.Logf("%s: %s / %s", name, pci, virtio)
	}
	check("legacy",
		[]string{pciTransitionalBalloon, pciTransitionalRNG, pciTransitionalSerial, pciTransitionalNIC, pciAC97},
		[]string{pciModernBalloon, pciModernNIC, pciQemuXHCI})
	check("modern",
		[]string{pciModernBalloon, pciModernNIC, pciModernSerial},
		[]string{pciTransitionalBalloon, pciTransitionalNIC, pciAC97, pciQemuXHCI})

	live := virsh(t, "dumpxml", w.dom("modern"))
	for _, want := range []string{`<memballoon model='virtio-non-transitional' freePageReporting='on'>`, `<stats period='10'/>`, `<vmport state='off'/>`, `<controller type='usb' index='0' model='none'`} {
		if !strings.Contains(live, want) {
			t.Errorf("live domain lacks %s:\n%s", want, live)
		}
	}
}
