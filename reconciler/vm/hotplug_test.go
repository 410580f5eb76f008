package vm

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/runtime/hv"
)

const hotDisk = `<disk type="file" device="disk"><driver name="qemu" type="raw"></driver><source file="/volumes/default/data/disk.img"></source><target dev="sda" bus="scsi"></target><alias name="ua-data"></alias></disk>`

// libvirt's form of hotDisk in a persistent definition.
const hotDiskLibvirt = `<disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/volumes/default/data/disk.img'/>
      <target dev='sda' bus='scsi'/>
      <alias name='ua-data'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
    `

// A hotpluggable volume added to a running VM in the source is attached
// live (the hash leaves it out: no update, no restart); removed, it is
// detached live; a stopped VM gets it by a redefine.
func TestDiff_liveVolumes(t *testing.T) {
	hot := vm("web", kubevirtv1.RunStrategyAlways, "sha256:aa")
	hot.XML = strings.Replace(hot.XML, "</devices>", hotDisk+"</devices>", 1)
	hot.Volumes = []string{"data", "default"}
	hot.HotplugDisks = []domain.HotplugDisk{{Volume: "data", Alias: "ua-data", Path: "/volumes/default/data/disk.img", XML: hotDisk}}
	cold := vm("web", kubevirtv1.RunStrategyAlways, "sha256:aa")
	cold.Volumes = []string{"default"}
	without := observed("web", hv.Running, "booted", "sha256:aa")
	with := without
	with.XML = strings.Replace(without.XML, "<controller type='usb'", hotDiskLibvirt+"<controller type='usb'", 1)

	p := Diff(state(hot), []hv.Domain{without}, Options{})
	if d := cmp.Diff([]row{{AttachVolume, "default_web", false}}, rows(p)); d != "" {
		t.Fatalf("added (-want +got):\n%s", d)
	}
	if got := volumeStep(p.Actions[0]); got != "ua-data" {
		t.Fatalf("attach step names %q", got)
	}
	if p := Diff(state(hot), []hv.Domain{with}, Options{}); len(p.Actions) != 0 {
		t.Fatalf("attached: want no actions, got %+v", p.Actions)
	}
	p = Diff(state(cold), []hv.Domain{with}, Options{})
	if d := cmp.Diff([]row{{DetachVolume, "default_web", false}}, rows(p)); d != "" {
		t.Fatalf("removed (-want +got):\n%s", d)
	}
	p = Diff(state(hot), []hv.Domain{without}, Options{Missing: map[string]bool{"/volumes/default/data/disk.img": true}})
	if d := cmp.Diff([]row{{Wait, "default_web", false}}, rows(p)); d != "" {
		t.Fatalf("claim not there yet (-want +got):\n%s", d)
	}
	stopped := without
	stopped.State, stopped.Reason = hv.Shutoff, "shutdown"
	manual := *hot
	manual.RunStrategy = kubevirtv1.RunStrategyManual
	p = Diff(state(&manual), []hv.Domain{stopped}, Options{})
	if d := cmp.Diff([]row{{Update, "default_web", false}}, rows(p)); d != "" {
		t.Fatalf("stopped VM (-want +got):\n%s", d)
	}
}

func TestWithoutDisks(t *testing.T) {
	doc := "<devices>" + hotDisk + "<disk type='file'><alias name='ua-root'/></disk>" + hotDiskLibvirt + "</devices>"
	got := withoutDisks(doc, []string{"ua-data"})
	if want := "<devices><disk type='file'><alias name='ua-root'/></disk>\n    </devices>"; got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
