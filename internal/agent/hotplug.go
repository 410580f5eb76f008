package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"

	kubevirtv1 "kubevirt.io/api/core/v1"
	"libvirt.org/go/libvirtxml"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/hotplug"
	"github.com/nodevirt/nodevirt/reconciler/plan"
)

// claimDisks tells hotplug which claims the source holds and where the
// storage manager keeps their data.
type claimDisks struct{ a *Agent }

func (c claimDisks) ClaimDisk(namespace, name string) (hotplug.ClaimDisk, bool) {
	n := c.a.node.Load()
	if n == nil || n.Storage == nil {
		return hotplug.ClaimDisk{}, false
	}
	cl := n.Storage.Claims[namespace+"/"+name]
	if cl == nil {
		return hotplug.ClaimDisk{}, false
	}
	d := hotplug.ClaimDisk{DataVolume: cl.Kind == "DataVolume", Phase: "Pending"}
	if st, ok := c.a.storage.Claim(namespace, name); ok {
		d.Path, d.Block, d.Ready, d.Phase = st.Path, st.Block, st.Ready, st.Phase
	}
	return d, true
}

// openHotplug wires volume hotplug when the VM and storage stages and the
// state database are all there.
func (rt *Runtime) openHotplug() {
	if rt.VMs == nil || rt.Storage == nil || rt.DB == nil || rt.HV == nil {
		return
	}
	rt.Agent.hotplug = hotplug.New(rt.HV, claimDisks{rt.Agent}, rt.DB)
	rt.VMs.WithHotplug(rt.Agent.hotplug)
}

// AddVolume attaches a DataVolume or PVC of the source to the running VM
// namespace/name (virtctl addvolume). With persist the result carries the
// spec change to commit, and the volume stays until that commit lands.
// It never runs beside a reconcile.
func (a *Agent) AddVolume(ctx context.Context, namespace, name string, opts kubevirtv1.AddVolumeOptions, persist bool) (ActionResult, error) {
	return a.volumeAction(ctx, "addvolume", namespace, name, func(v *desired.VM) (hotplug.Result, error) {
		return a.hotplug.Add(ctx, v, opts, persist)
	})
}

// RemoveVolume detaches volume from the running VM namespace/name (virtctl
// removevolume) once the guest released it.
func (a *Agent) RemoveVolume(ctx context.Context, namespace, name, volume string, persist bool) (ActionResult, error) {
	return a.volumeAction(ctx, "removevolume", namespace, name, func(v *desired.VM) (hotplug.Result, error) {
		return a.hotplug.Remove(ctx, v, volume, persist)
	})
}

func (a *Agent) volumeAction(ctx context.Context, action, namespace, name string, do func(*desired.VM) (hotplug.Result, error)) (ActionResult, error) {
	if namespace == "" {
		namespace = a.defaultNamespace()
	}
	res := ActionResult{Action: action, Object: "VirtualMachine " + namespace + "/" + name}
	if a.hotplug == nil {
		return res, errors.New("volume hotplug needs the VM and storage stages and the state database, which this run did not open")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.node.Load()
	if n == nil {
		var err error
		if n, err = a.Load(ctx); err != nil {
			return res, fmt.Errorf("%s %s: %w", action, res.Object, err)
		}
	}
	v, err := findVM(n, namespace, name)
	if err != nil {
		return res, err
	}
	res.Object = v.Object
	r, err := do(v)
	res.Changed, res.Message, res.Patch = r.Changed, r.Message, r.Patch
	if err != nil {
		a.log.Warn("volume action refused or failed", "action", action, "object", v.Object, "err", err)
		return res, err
	}
	a.log.Info("volume action", "action", action, "object", v.Object, "result", r.Message)
	return res, nil
}

// syncHotplug settles the hotplug records after the VM stage: restarts
// forget unpersisted volumes, persisted ones are attached again, commits
// that hold them take them over.
func (a *Agent) syncHotplug(ctx context.Context, st *desired.State) error {
	if a.hotplug == nil || st == nil {
		return nil
	}
	vms := make(map[string]*desired.VM, len(st.VMs))
	for _, v := range st.VMs {
		vms[v.DomainName] = v
	}
	return a.hotplug.Sync(ctx, vms)
}

// hotplugStatus adds the VMIs' live volumes to their volumeStatus: the
// source's hotpluggable ones and those attached by hand.
func (a *Agent) hotplugStatus(st *status.Node, vms *desired.State) {
	byDomain := map[string]*desired.VM{}
	for _, v := range vms.VMs {
		byDomain[v.DomainName] = v
	}
	for i := range st.VirtualMachineInstances {
		vmi := &st.VirtualMachineInstances[i]
		if vmi.Status.Phase != kubevirtv1.Running {
			continue
		}
		d := domain.DomainName(vmi.Namespace, vmi.Name)
		var detached []string
		if a.hotplug != nil {
			detached = a.hotplug.Detached(d)
		}
		if v := byDomain[d]; v != nil {
			for _, h := range v.HotplugDisks {
				if slices.Contains(detached, h.Volume) {
					continue
				}
				vmi.Status.VolumeStatus = append(vmi.Status.VolumeStatus, kubevirtv1.VolumeStatus{
					Name: h.Volume, Target: targetOf(h.XML), Phase: kubevirtv1.VolumeReady, HotplugVolume: &kubevirtv1.HotplugVolumeStatus{}})
			}
		}
		if a.hotplug != nil {
			vmi.Status.VolumeStatus = append(vmi.Status.VolumeStatus, a.hotplug.VolumeStatus(d)...)
		}
	}
}

// targetOf is the target device of a <disk> element.
func targetOf(diskXML string) string {
	var d libvirtxml.DomainDisk
	if d.Unmarshal(diskXML) != nil || d.Target == nil {
		return ""
	}
	return d.Target.Dev
}

// AddVolume is the API's addvolume; persist is true on the VirtualMachine
// route and false on the VirtualMachineInstance one, as in KubeVirt.
func (s *Service) AddVolume(ctx context.Context, namespace, name string, opts kubevirtv1.AddVolumeOptions, persist bool) (status.ActionResult, error) {
	res, err := s.agent().AddVolume(ctx, namespace, name, opts, persist)
	return s.volumeAnswer(res, err)
}

// RemoveVolume is the API's removevolume.
func (s *Service) RemoveVolume(ctx context.Context, namespace, name string, opts kubevirtv1.RemoveVolumeOptions, persist bool) (status.ActionResult, error) {
	res, err := s.agent().RemoveVolume(ctx, namespace, name, opts.Name, persist)
	return s.volumeAnswer(res, err)
}

func (s *Service) volumeAnswer(res status.ActionResult, err error) (status.ActionResult, error) {
	switch {
	case errors.Is(err, ErrUnknownVM), errors.Is(err, hotplug.ErrUnknownClaim):
		err = api.NotFound(err)
	case errors.Is(err, hotplug.ErrNotRunning), errors.Is(err, hotplug.ErrClaimNotReady):
		err = api.Conflict(err)
	case errors.Is(err, hotplug.ErrInvalid):
		err = api.Invalid(err)
	}
	if err == nil && res.Changed {
		s.agent().Event(status.Normal, eventReason(plan.Action(res.Action)), res.Object, res.Message)
		s.agent().Kick()
	}
	return res, err
}
