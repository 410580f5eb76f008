//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// hotplugVM is a running VM with a blank root disk and, in extra, more
// disks and volumes of the spec (YAML list items, indented for the lists).
func hotplugVM(ns, disks, volumes string) string {
	return fmt.Sprintf(`---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: app, namespace: %s}
spec:
  runStrategy: Always
  template:
    spec:
      terminationGracePeriodSeconds: 0
      domain:
        cpu:
          features: [{name: arch-capabilities, policy: disable}]
        memory: {guest: 64Mi}
        devices:
          disks:
            - {name: root, disk: {bus: virtio}}
%s      volumes:
        - {name: root, emptyDisk: {capacity: 16Mi}}
%s`, ns, disks, volumes)
}

func blankDV(name string) string {
	return fmt.Sprintf(`---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata: {name: %s}
spec:
  source: {blank: {}}
  pvc: {storageClassName: hostpath, accessModes: [ReadWriteOnce], resources: {requests: {storage: 8Mi}}}
`, name)
}

// cli runs a command against the running agent of sw (through its socket).
func (sw *storageWorld) cli(args ...string) (string, string, error) {
	sw.t.Helper()
	cmd := exec.Command(nodevirtBin, append([]string{"--state", sw.state, "--namespace", sw.ns}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

func (sw *storageWorld) startHotplugAgent() *agent {
	return sw.start("--source", sw.repo, "--state", sw.state, "--root", sw.hostRoot, "--namespace", sw.ns,
		"--node", storageNode, "--secrets-dir", sw.secrets, "--libvirt", "qemu:///system", "--domain-type", "qemu",
		"run", "--interval", "2s", "--drift-interval", "1h")
}

// liveDisk returns the <disk> element of the live XML whose alias is alias.
func liveDisk(t *testing.T, domain, alias string) string {
	xml := virsh(t, "dumpxml", domain)
	for _, part := range strings.Split(xml, "<disk ")[1:] {
		d := part[:strings.Index(part, "</disk>")]
		if strings.Contains(d, "<alias name='"+alias+"'/>") {
			return d
		}
	}
	return ""
}

// addvolume of a blank DataVolume of the source into a running VM: the
// disk is in the live XML with its serial on the SCSI bus, survives
// reconciles, drift shows it, removevolume takes it out; the domain keeps
// running throughout.
func TestHotplug_addRemoveVolume(t *testing.T) {
	sw := newStorageWorld(t)
	sw.write("all.yaml", storageClasses+blankDV("data")+hotplugVM(sw.ns, "", ""))
	a := sw.startHotplugAgent()
	sw.awaitState("app", "running", 3*time.Minute)
	dom := sw.dom("app")
	id := strings.TrimSpace(virsh(t, "domid", dom))

	var out, errOut string
	var err error
	took := await(t, "addvolume to succeed (the DataVolume ready)", 2*time.Minute, func() bool {
		out, errOut, err = sw.cli("addvolume", "app", "--volume-name=data", "--serial=HOTSER1")
		if err != nil && !strings.Contains(errOut, "not ready") {
			t.Fatalf("addvolume: %v\n%s%s\nagent:\n%s", err, out, errOut, a.logs())
		}
		return err == nil
	})
	t.Logf("addvolume answered after %s: %s", took, strings.TrimSpace(out))
	disk := liveDisk(t, dom, "ua-data")
	if !strings.Contains(disk, "<serial>HOTSER1</serial>") || !strings.Contains(disk, "bus='scsi'") || !strings.Contains(disk, "/disk.img'") {
		t.Fatalf("live disk ua-data:\n%s", disk)
	}
	if strings.Contains(virsh(t, "dumpxml", "--inactive", dom), "ua-data") {
		t.Fatal("a volume added without --persist must stay out of the persistent definition")
	}

	// A reconcile and a few agent loops leave it attached.
	if out, errOut, err := sw.cli("reconcile"); err != nil {
		t.Fatalf("reconcile: %v\n%s%s", err, out, errOut)
	}
	time.Sleep(8 * time.Second)
	if liveDisk(t, dom, "ua-data") == "" {
		t.Fatalf("the hot-plugged disk is gone after reconciles\nagent:\n%s", a.logs())
	}
	if out, _, _ := sw.cli("drift"); !strings.Contains(out, "volume data: hot-plugged, not in the source") {
		t.Fatalf("drift does not show the hot-plugged volume:\n%s", out)
	}
	if out, _, err := sw.cli("get", "vmi", "app", "-o", "json"); err != nil || !strings.Contains(out, `"volumeStatus"`) || !strings.Contains(out, `"hotplugVolume"`) {
		t.Fatalf("vmi status: %v\n%s", err, out)
	}

	// Errors as virtctl's.
	if _, errOut, err := sw.cli("addvolume", "app", "--volume-name=data"); err == nil || !strings.Contains(errOut, "Unable to add volume [data] because volume with that name already exists") {
		t.Fatalf("second addvolume: %v %s", err, errOut)
	}
	if _, errOut, err := sw.cli("removevolume", "app", "--volume-name=root"); err == nil || !strings.Contains(errOut, "because it is not hotpluggable") {
		t.Fatalf("removevolume of a cold disk: %v %s", err, errOut)
	}

	start := time.Now()
	if out, errOut, err := sw.cli("removevolume", "app", "--volume-name=data"); err != nil {
		t.Fatalf("removevolume: %v\n%s%s", err, out, errOut)
	}
	t.Logf("removevolume (detach confirmed) took %s", time.Since(start).Round(time.Millisecond))
	if d := liveDisk(t, dom, "ua-data"); d != "" {
		t.Fatalf("the disk is still in the live XML after removevolume:\n%s", d)
	}
	if now := strings.TrimSpace(virsh(t, "domid", dom)); now != id {
		t.Fatalf("the domain restarted (id %s, was %s)", now, id)
	}
}

// A hotpluggable DataVolume added to a running VM in the source is attached
// live without a restart (same domain id), and detached live when the
// source drops it.
func TestHotplug_declarative(t *testing.T) {
	sw := newStorageWorld(t)
	sw.write("all.yaml", storageClasses+blankDV("hot")+hotplugVM(sw.ns, "", ""))
	a := sw.startHotplugAgent()
	sw.awaitState("app", "running", 3*time.Minute)
	dom := sw.dom("app")
	id := strings.TrimSpace(virsh(t, "domid", dom))

	sw.write("all.yaml", storageClasses+blankDV("hot")+hotplugVM(sw.ns,
		"            - {name: hot, serial: DECL1, disk: {bus: scsi}}\n",
		"        - {name: hot, dataVolume: {name: hot, hotpluggable: true}}\n"))
	took := await(t, "the hotpluggable volume to be attached live", 3*time.Minute, func() bool {
		return liveDisk(t, dom, "ua-hot") != ""
	})
	t.Logf("attached %s after the change", took)
	if d := liveDisk(t, dom, "ua-hot"); !strings.Contains(d, "<serial>DECL1</serial>") || !strings.Contains(d, "bus='scsi'") {
		t.Fatalf("live disk:\n%s", d)
	}
	if now := strings.TrimSpace(virsh(t, "domid", dom)); now != id {
		t.Fatalf("the domain restarted for a hotpluggable volume (id %s, was %s)\nagent:\n%s", now, id, a.logs())
	}
	if !strings.Contains(virsh(t, "dumpxml", "--inactive", dom), "ua-hot") {
		t.Fatal("the definition lacks the volume: the next boot would lose it")
	}
	if !strings.Contains(a.logs(), "attach-volume") {
		t.Fatalf("the plan did not show a live attach:\n%s", a.logs())
	}
	await(t, "the VMI to show the volume", time.Minute, func() bool {
		out, _, _ := sw.cli("get", "vmi", "app", "-o", "json")
		return strings.Contains(out, `"hotplugVolume"`) && strings.Contains(out, `"target": "sda"`)
	})
	// A few more loops change nothing.
	time.Sleep(6 * time.Second)
	if out, _, _ := sw.cli("plan"); strings.Contains(out, "attach-volume") || strings.Contains(out, "restart") || strings.Contains(out, "update") {
		t.Fatalf("plan after the attach:\n%s", out)
	} else {
		t.Logf("plan after the attach:\n%s", out)
	}

	sw.write("all.yaml", storageClasses+blankDV("hot")+hotplugVM(sw.ns, "", ""))
	took = await(t, "the volume to be detached live", 3*time.Minute, func() bool {
		return liveDisk(t, dom, "ua-hot") == ""
	})
	t.Logf("detached %s after the change", took)
	if now := strings.TrimSpace(virsh(t, "domid", dom)); now != id {
		t.Fatalf("the domain restarted for a removed hotpluggable volume (id %s, was %s)", now, id)
	}
	if strings.Contains(virsh(t, "dumpxml", "--inactive", dom), "ua-hot") {
		t.Fatal("the definition still holds the removed volume")
	}
}

// --persist keeps a volume across a restart (attached again) and prints the
// change to commit; a volume added without it is gone after the restart;
// once the change is committed the source owns the volume: it is in the
// definition and no longer reported as hot-plugged.
func TestHotplug_persist(t *testing.T) {
	sw := newStorageWorld(t)
	sw.write("all.yaml", storageClasses+blankDV("data")+blankDV("eph")+hotplugVM(sw.ns, "", ""))
	a := sw.startHotplugAgent()
	sw.awaitState("app", "running", 3*time.Minute)
	dom := sw.dom("app")

	var out, errOut string
	var err error
	await(t, "addvolume --persist to succeed", 2*time.Minute, func() bool {
		out, errOut, err = sw.cli("addvolume", "app", "--volume-name=data", "--persist")
		return err == nil
	})
	if !strings.Contains(out, "hotpluggable: true") || !strings.Contains(out, "name: data") || !strings.Contains(out, "bus: scsi") {
		t.Fatalf("addvolume --persist must print the change to commit:\n%s", out)
	}
	if out, errOut, err = sw.cli("addvolume", "app", "--volume-name=eph"); err != nil {
		t.Fatalf("addvolume eph: %v\n%s%s", err, out, errOut)
	}
	id := strings.TrimSpace(virsh(t, "domid", dom))
	if out, errOut, err = sw.cli("restart", "app"); err != nil {
		t.Fatalf("restart: %v\n%s%s", err, out, errOut)
	}
	await(t, "the domain to boot again", 2*time.Minute, func() bool {
		now, err := virshOK("domid", dom)
		return err == nil && strings.TrimSpace(now) != id && strings.TrimSpace(now) != "-"
	})
	took := await(t, "the persisted volume to be attached again", 2*time.Minute, func() bool {
		return liveDisk(t, dom, "ua-data") != ""
	})
	t.Logf("attached again %s after the boot", took)
	if liveDisk(t, dom, "ua-eph") != "" {
		t.Fatal("a volume added without --persist survived the restart")
	}
	await(t, "drift to forget the unpersisted volume", time.Minute, func() bool {
		out, _, _ := sw.cli("drift")
		return strings.Contains(out, "volume data: hot-plugged, not in the source") && !strings.Contains(out, "volume eph")
	})

	// The change lands in the source.
	id = strings.TrimSpace(virsh(t, "domid", dom))
	sw.write("all.yaml", storageClasses+blankDV("data")+blankDV("eph")+hotplugVM(sw.ns,
		"            - {name: data, serial: data, disk: {bus: scsi}}\n",
		"        - {name: data, dataVolume: {name: data, hotpluggable: true}}\n"))
	await(t, "the definition to hold the committed volume", 2*time.Minute, func() bool {
		return strings.Contains(virsh(t, "dumpxml", "--inactive", dom), "ua-data")
	})
	await(t, "drift to stop reporting the committed volume", time.Minute, func() bool {
		out, _, _ := sw.cli("drift")
		return !strings.Contains(out, "hot-plugged")
	})
	if liveDisk(t, dom, "ua-data") == "" {
		t.Fatalf("the committed volume is no longer attached\nagent:\n%s", a.logs())
	}
	if now := strings.TrimSpace(virsh(t, "domid", dom)); now != id {
		t.Fatalf("committing the volume restarted the domain (id %s, was %s)", now, id)
	}
}

// A running domain defined before the hotplug controllers existed is not
// restarted for them and not reported as drift: one redefine adds them to
// the definition (they take effect at its next boot), then it is in sync.
func TestHotplug_oldDomainGainsControllers(t *testing.T) {
	sw := newStorageWorld(t)
	sw.write("all.yaml", storageClasses+hotplugVM(sw.ns, "", ""))
	cmd := func(args ...string) string {
		t.Helper()
		out, errOut, err := sw.nodevirtAt(sw.repo, append([]string{"--node", storageNode, "--secrets-dir", sw.secrets, "--domain-type", "qemu"}, args...)...)
		if err != nil {
			t.Fatalf("%v: %v\n%s%s", args, err, out, errOut)
		}
		return out
	}
	cmd("apply", "--timeout", "3m")
	dom := sw.dom("app")
	if st := domState(dom); st != "running" {
		t.Fatalf("domain is %q", st)
	}
	id := strings.TrimSpace(virsh(t, "domid", dom))
	// The definition as an older nodevirt wrote it: no hotplug controllers.
	def := virsh(t, "dumpxml", "--inactive", dom)
	var old strings.Builder
	rest := def
	for {
		i := strings.Index(rest, "<controller ")
		if i < 0 {
			old.WriteString(rest)
			break
		}
		end := i + strings.Index(rest[i:], "</controller>") + len("</controller>")
		if j := strings.Index(rest[i:], "/>"); j >= 0 && i+j+2 < end && !strings.Contains(rest[i:i+j], ">") {
			end = i + j + 2 // <controller …/>
		}
		old.WriteString(rest[:i])
		if !strings.Contains(rest[i:end], "ua-nodevirt_hotplug") {
			old.WriteString(rest[i:end])
		}
		rest = rest[end:]
	}
	file := sw.repo + "/../old.xml"
	if err := os.WriteFile(file, []byte(old.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	virsh(t, "define", file)
	if strings.Contains(virsh(t, "dumpxml", "--inactive", dom), "ua-nodevirt_hotplug") {
		t.Fatal("the old definition still has the hotplug controllers")
	}

	plan := cmd("plan")
	if !strings.Contains(plan, "\nupdate ") || !strings.Contains(plan, "restart required to add hotplug controllers") || strings.Contains(plan, "\nrestart ") {
		t.Fatalf("plan for the old domain:\n%s", plan)
	}
	t.Logf("plan for the old domain:\n%s", plan)
	if drift := cmd("drift"); strings.Contains(drift, "DRIFTED") {
		t.Fatalf("the missing controllers are reported as drift:\n%s", drift)
	}
	cmd("apply", "--timeout", "3m")
	if now := strings.TrimSpace(virsh(t, "domid", dom)); now != id {
		t.Fatalf("the domain restarted for the hotplug controllers (id %s, was %s)", now, id)
	}
	if !strings.Contains(virsh(t, "dumpxml", "--inactive", dom), "ua-nodevirt_hotplug-scsi") {
		t.Fatal("the redefine did not add the hotplug controllers")
	}
	if plan := cmd("plan"); !strings.Contains(plan, "In sync: "+dom) {
		t.Fatalf("plan after the redefine:\n%s", plan)
	}
}
