package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/vm"
)

// ActionResult is what an action asked for by hand did (a VM action, a
// suspend or resume).
type ActionResult = status.ActionResult

// ErrUnknownVM matches (errors.Is) a VM action on a VM this node's desired
// state does not hold. vm.ErrRefused matches one its runStrategy or run
// state does not allow.
var ErrUnknownVM = errors.New("not in this node's desired state")

// RunRequest is a start or stop asked for by hand, kept until the opposite
// action (KubeVirt's status.stateChangeRequests).
type RunRequest = vm.RunRequest

// RunRequests returns the starts and stops asked for by hand, by domain
// name; nil without a VM stage.
func (a *Agent) RunRequests() (map[string]RunRequest, error) {
	if a.rec == nil {
		return nil, nil
	}
	return a.rec.RunRequests()
}

// VMAction does one of virtctl's actions (start, stop, restart, pause,
// unpause) on a VM of this node's desired state, with KubeVirt's
// runStrategy rules (vm.Reconciler.Act), at once: it does not wait for the
// next reconcile, and never runs beside one. A start or stop that changes
// the desired run state is kept in the state database until the opposite
// action. The node is loaded first when nothing loaded it yet (a one-shot
// command). namespace "" is the agent's default namespace.
func (a *Agent) VMAction(ctx context.Context, action, namespace, name string) (ActionResult, error) {
	if namespace == "" {
		namespace = a.defaultNamespace()
	}
	res := ActionResult{Action: action, Object: "VirtualMachine " + namespace + "/" + name}
	req, err := vm.ParseRequest(action)
	if err != nil {
		return res, err
	}
	res.Action = string(req)
	if a.rec == nil {
		return res, errors.New("VM actions need the VM stage (libvirt and the state database), which this run did not open")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.node.Load()
	if n == nil {
		if n, err = a.Load(ctx); err != nil {
			return res, fmt.Errorf("%s %s: %w", req, res.Object, err)
		}
	}
	v, err := findVM(n, namespace, name)
	if err != nil {
		return res, err
	}
	res.Object = v.Object
	r, err := a.rec.Act(ctx, req, v)
	if err == nil && r.Undefined {
		r, err = a.defineAndAct(ctx, n, req, v, r)
	}
	res.Changed, res.Message = r.Changed, r.Message
	if err != nil {
		a.log.Warn("VM action refused or failed", "action", req, "object", v.Object, "err", err)
		return res, err
	}
	a.log.Info("VM action", "action", req, "object", v.Object, "changed", r.Changed, "result", r.Message)
	return res, nil
}

// findVM returns the VM namespace/name of n (a VirtualMachine, or a
// VirtualMachineInstance of that name).
func findVM(n *Node, namespace, name string) (*desired.VM, error) {
	for _, v := range n.VMs.VMs {
		if v.Namespace == namespace && v.Name == name {
			return v, nil
		}
	}
	for _, obj := range n.VMs.Invalid {
		if strings.HasSuffix(obj, " "+namespace+"/"+name) {
			return nil, fmt.Errorf("%s: the manifest is invalid at revision %s; fix it first", obj, n.Revision)
		}
	}
	return nil, fmt.Errorf("VirtualMachine %s/%s is %w (revision %s)", namespace, name, ErrUnknownVM, n.Revision)
}

// defineAndAct defines a VM whose domain does not exist yet by applying its
// own steps of the VM plan (suspended ones are not), then acts again.
func (a *Agent) defineAndAct(ctx context.Context, n *Node, req vm.Request, v *desired.VM, first vm.ActResult) (vm.ActResult, error) {
	p, err := a.rec.Plan(ctx, n.VMs)
	if err != nil {
		return first, fmt.Errorf("plan %s: %w", v.Object, err)
	}
	sus, err := a.suspension(n)
	if err != nil {
		return first, err
	}
	sus.markVMs(p)
	rep := a.rec.ApplyTo(ctx, p, v.DomainName)
	for _, o := range rep.Outcomes {
		if o.Result == plan.Failed {
			return first, fmt.Errorf("define %s: %s", v.Object, o.Error)
		}
	}
	r, err := a.rec.Act(ctx, req, v)
	if err != nil {
		return first, err
	}
	if r.Undefined {
		why := "nothing defines it"
		for _, s := range p.Actions {
			if s.Target == v.DomainName {
				why = s.Reason
				if s.Suspended {
					why = plan.SkipSuspended
				}
			}
		}
		return first, fmt.Errorf("%s: the domain is not defined on this node yet (%s)", v.Object, why)
	}
	started := false
	for _, o := range rep.Outcomes {
		started = started || (o.Action == vm.Start && o.Result == plan.Done)
	}
	r.Changed = true
	if started {
		r.Message = "defined and started"
	} else {
		r.Message = "defined; " + r.Message
	}
	return r, nil
}
