package agent

import (
	"context"
	"errors"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/nodedesc"
	"github.com/nodevirt/nodevirt/internal/report"
	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/vm"
)

// Report is the plan as `plan -o json` prints it.
func (p NodePlan) Report() report.Plan {
	var r report.Plan
	if p.VMs != nil {
		r.Plan = p.VMs.Plan
	}
	if p.Host != nil {
		r.Host = *p.Host
	}
	r.Storage = p.Storage
	if p.Snapshots != nil {
		r.Snapshots = appendSteps(nil, p.Snapshots.Steps)
	}
	return r
}

// Service is a running node as its API drives it: the agent's status,
// plans and actions, and the node description read from the host.
type Service struct{ rt *Runtime }

// Service returns the runtime's API face.
func (r *Runtime) Service() *Service { return &Service{rt: r} }

func (s *Service) Status() status.Node    { return s.rt.Agent.Status() }
func (s *Service) StatusVersion() uint64  { return s.rt.Agent.StatusVersion() }
func (s *Service) Events() []status.Event { return s.rt.Agent.Events() }
func (s *Service) agent() *Agent          { return s.rt.Agent }

// Plan plans the node now, between two reconciles.
func (s *Service) Plan(ctx context.Context) (report.Plan, error) {
	_, np, err := s.agent().PlanNow(ctx)
	return np.Report(), err
}

// Describe describes the node as `node describe` does, from the revision
// the agent rendered last.
func (s *Service) Describe(ctx context.Context) (nodedesc.Description, error) {
	a, c := s.agent(), s.rt.cfg
	n := a.node.Load()
	if n == nil {
		return nodedesc.Description{}, errors.New("the agent has not rendered the source yet")
	}
	in := nodedesc.Input{Root: c.Root, StateDir: c.StateDir, CPUManager: c.CPUManager, Facts: s.rt.Facts,
		Host: n.Host, State: n.VMs, Set: n.Set, PCI: PCIDevices(c.Root, nil), DomainsErr: s.rt.HypervisorErr}
	if s.rt.HV != nil {
		in.Domains = s.rt.HV
	}
	return nodedesc.Describe(ctx, in)
}

// Reconcile asks the loop to fetch and apply now.
func (s *Service) Reconcile(context.Context) (status.ActionResult, error) {
	s.agent().Reconcile()
	s.agent().Event(status.Normal, "ReconcileRequested", "", "a fetch and apply was asked for through the API")
	return status.ActionResult{Changed: true, Action: "reconcile", Message: "a fetch and apply is queued"}, nil
}

// VMAction runs one of virtctl's actions on a VM; its errors say which
// answer they are (no such VM, refused by its state, bad request).
func (s *Service) VMAction(ctx context.Context, action, namespace, name string) (status.ActionResult, error) {
	if _, err := vm.ParseRequest(action); err != nil {
		return status.ActionResult{}, api.Invalid(err)
	}
	res, err := s.agent().VMAction(ctx, action, namespace, name)
	switch {
	case errors.Is(err, ErrUnknownVM):
		err = api.NotFound(err)
	case errors.Is(err, vm.ErrRefused):
		err = api.Conflict(err)
	}
	if err == nil && res.Changed {
		s.agent().Event(status.Normal, eventReason(plan.Action(res.Action)), res.Object, res.Message)
		// The status the API serves is the loop's: a reconcile now shows
		// the change.
		s.agent().Kick()
	}
	return res, err
}

// Suspend suspends (on) or resumes reconciliation of object, or of the
// node when object is "".
func (s *Service) Suspend(ctx context.Context, object string, on bool) (status.ActionResult, error) {
	if object != "" {
		if _, err := ParseObject(object, s.agent().defaultNamespace()); err != nil {
			return status.ActionResult{}, api.Invalid(err)
		}
	}
	a := s.agent()
	var res status.ActionResult
	var err error
	if on {
		res, err = a.Suspend(ctx, object)
	} else {
		res, err = a.Resume(ctx, object)
	}
	if err == nil && res.Changed {
		reason := "Resumed"
		if on {
			reason = "Suspended"
		}
		a.Event(status.Normal, reason, res.Object, res.Message)
		a.Kick()
	}
	return res, err
}
