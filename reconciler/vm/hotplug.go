package vm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/runtime/hv"
)

// Live volume steps: a hotpluggable volume added to or removed from a
// running VM in the source.
const (
	AttachVolume plan.Action = "attach-volume"
	DetachVolume plan.Action = "detach-volume"
)

// DetachTimeout is how long a detach waits for the guest to release a disk.
const DetachTimeout = 60 * time.Second

// Hotplugger is a hypervisor that attaches and detaches devices of running
// domains; the libvirt driver is one.
type Hotplugger interface {
	AttachDevice(ctx context.Context, name, deviceXML string, persist bool) error
	DetachDevice(ctx context.Context, name, alias string, persist bool, timeout time.Duration) error
	LiveDomain(ctx context.Context, name string) (*libvirtxml.Domain, error)
}

// liveVolumes compares the live-hotpluggable disks of vm with the
// persistent definition dom: the ones to attach, and the aliases of disks
// to detach (a ua- SCSI disk whose volume left the source). Removed ones
// are only recognised while the hash is unchanged: otherwise the removed
// disk may have been a cold one, which the redefine and restart handle.
func liveVolumes(vm *desired.VM, dom hv.Domain, sameHash bool) (attach []string, detach []string) {
	have := persistentSCSIAliases(dom.XML)
	for _, h := range vm.HotplugDisks {
		if !slices.Contains(have, h.Alias) {
			attach = append(attach, h.Alias)
		}
	}
	if !sameHash {
		return attach, nil
	}
	for _, a := range have {
		if !slices.Contains(vm.Volumes, strings.TrimPrefix(a, "ua-")) {
			detach = append(detach, a)
		}
	}
	return attach, detach
}

// persistentSCSIAliases lists the user aliases of SCSI disks in a domain
// document; documents without SCSI disks are not parsed.
func persistentSCSIAliases(doc string) []string {
	if !strings.Contains(doc, "bus='scsi'") && !strings.Contains(doc, `bus="scsi"`) {
		return nil
	}
	root, err := parse(doc)
	if err != nil {
		return nil
	}
	var out []string
	for _, c := range root.children {
		if c.name != "devices" {
			continue
		}
		for _, d := range c.children {
			if d.name != "disk" {
				continue
			}
			scsi, alias := false, ""
			for _, e := range d.children {
				switch e.name {
				case "target":
					scsi = e.attrs["bus"] == "scsi"
				case "alias":
					alias = e.attrs["name"]
				}
			}
			if scsi && strings.HasPrefix(alias, "ua-") {
				out = append(out, alias)
			}
		}
	}
	return out
}

// withoutDisks removes the <disk> elements carrying one of aliases from a
// domain document, so the field comparison leaves live volumes to their
// own steps. Both encoding/xml's and libvirt's quoting are matched.
func withoutDisks(doc string, aliases []string) string {
	if len(aliases) == 0 {
		return doc
	}
	var b strings.Builder
	rest := doc
	for {
		i := strings.Index(rest, "<disk ")
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		j := strings.Index(rest[i:], "</disk>")
		if j < 0 {
			b.WriteString(rest)
			return b.String()
		}
		end := i + j + len("</disk>")
		el := rest[i:end]
		drop := false
		for _, a := range aliases {
			drop = drop || strings.Contains(el, `<alias name="`+a+`"`) || strings.Contains(el, `<alias name='`+a+`'`)
		}
		b.WriteString(rest[:i])
		if !drop {
			b.WriteString(el)
		}
		rest = rest[end:]
	}
}

func volumeStep(a plan.Step) string {
	if len(a.Changes) == 0 {
		return ""
	}
	return strings.TrimSuffix(strings.TrimPrefix(a.Changes[0].Path, "devices.disk["), "]")
}

// liveVolumeSteps are the attach and detach steps of a running domain, or a
// wait for a claim whose disk is not there yet.
func liveVolumeSteps(vm *desired.VM, attach, detach []string, opt Options, act func(plan.Action, string) plan.Step) []plan.Step {
	var out []plan.Step
	for _, alias := range attach {
		i := slices.IndexFunc(vm.HotplugDisks, func(h domain.HotplugDisk) bool { return h.Alias == alias })
		h := vm.HotplugDisks[i]
		if opt.Missing[h.Path] {
			out = append(out, act(Wait, fmt.Sprintf("hotpluggable volume %s: claim disk %s does not exist yet", h.Volume, h.Path)))
			continue
		}
		s := act(AttachVolume, fmt.Sprintf("hotpluggable volume %s added in the source; attached live, no restart", h.Volume))
		s.Changes = []plan.Change{{Path: "devices.disk[" + alias + "]", To: "attached"}}
		out = append(out, s)
	}
	for _, alias := range detach {
		s := act(DetachVolume, fmt.Sprintf("hotpluggable volume %s removed from the source; detached live once the guest releases it", strings.TrimPrefix(alias, "ua-")))
		s.Changes = []plan.Change{{Path: "devices.disk[" + alias + "]", From: "attached"}}
		out = append(out, s)
	}
	return out
}

// doLive attaches or detaches a live volume, then writes the definition so
// the next boot has the same disks. A detach returns only once the guest
// released the disk: its data is never touched before.
func (r *Reconciler) doLive(ctx context.Context, a plan.Step, vm *desired.VM) error {
	h, ok := r.hv.(Hotplugger)
	if !ok {
		return errors.New("the hypervisor cannot attach devices to running domains")
	}
	alias := volumeStep(a)
	live, err := h.LiveDomain(ctx, a.Target)
	if err != nil {
		return err
	}
	attached := false
	if live != nil && live.Devices != nil {
		for _, d := range live.Devices.Disks {
			attached = attached || (d.Alias != nil && d.Alias.Name == alias)
		}
	}
	switch {
	case live == nil:
		// Stopped meanwhile: the definition below is what it boots with.
	case a.Action == AttachVolume && !attached:
		i := slices.IndexFunc(vm.HotplugDisks, func(h domain.HotplugDisk) bool { return h.Alias == alias })
		if i < 0 {
			return fmt.Errorf("attach %s to %s: the source no longer has it", alias, a.Target)
		}
		if err := h.AttachDevice(ctx, a.Target, vm.HotplugDisks[i].XML, false); err != nil {
			return fmt.Errorf("attach %s to %s: %w", alias, a.Target, err)
		}
	case a.Action == DetachVolume && attached:
		if err := h.DetachDevice(ctx, a.Target, alias, false, DetachTimeout); err != nil {
			return fmt.Errorf("detach %s from %s: %w", alias, a.Target, err)
		}
	}
	if err := r.hv.Define(ctx, vm.XML); err != nil {
		return fmt.Errorf("define %s: %w", vm.DomainName, err)
	}
	return r.remember(vm, false)
}

// hotAliases are the disks the field comparison leaves out: the source's
// live volumes and the ones to detach.
func hotAliases(vm *desired.VM, detach []string) []string {
	out := slices.Clone(detach)
	for _, h := range vm.HotplugDisks {
		out = append(out, h.Alias)
	}
	return out
}
