package vm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/runtime/hv"
)

// Request is one of virtctl's imperative VM actions.
type Request string

const (
	RequestStart   Request = "start"
	RequestStop    Request = "stop"
	RequestRestart Request = "restart"
	RequestPause   Request = "pause"
	RequestUnpause Request = "unpause"
)

// Requests lists every action Act knows, in the order virtctl lists them.
var Requests = []Request{RequestStart, RequestStop, RequestRestart, RequestPause, RequestUnpause}

// ParseRequest reads an action's name.
func ParseRequest(s string) (Request, error) {
	for _, r := range Requests {
		if strings.EqualFold(s, string(r)) {
			return r, nil
		}
	}
	names := make([]string, len(Requests))
	for i, r := range Requests {
		names[i] = string(r)
	}
	return "", fmt.Errorf("unknown VM action %q (want one of %s)", s, strings.Join(names, ", "))
}

// ErrRefused matches (errors.Is) an action the VM's runStrategy or run
// state does not allow: KubeVirt answers those with a conflict.
var ErrRefused = errors.New("action refused")

// refusal is an action refused, in KubeVirt's words.
type refusal string

func (r refusal) Error() string      { return string(r) }
func (refusal) Is(target error) bool { return target == ErrRefused }

// errNotRunning is KubeVirt's answer to an action that needs a running VM.
const errNotRunning = refusal("VM is not running")

// ActResult is what Act did.
type ActResult struct {
	// Changed: the domain's run state or a persisted request changed.
	Changed bool
	// Message says what was done, or why nothing was.
	Message string
	// Undefined: the domain is not defined on this node yet, and the action
	// wants it running; applying the VM's plan defines it (and starts it
	// when the request or runStrategy says so), then Act again finishes.
	Undefined bool
}

// RunRequests returns the starts and stops asked for by hand, by domain.
func (r *Reconciler) RunRequests() (map[string]RunRequest, error) { return r.rec.runRequests() }

// Act does one of virtctl's actions on vm's domain at once, with KubeVirt's
// runStrategy rules (virt-api's start, stop and restart subresources):
//
//   - start: Halted records a start request (it then runs as Always);
//     Always, RerunOnFailure and Once drop a stop request; Once is refused
//     otherwise; a running VM is left alone.
//   - stop: Always, RerunOnFailure and Once record a stop request (they
//     stay off, self-heal included, until a start); Halted drops a start
//     request; the guest is shut down as the reconciler's stop does.
//   - restart: a running VM is shut down and booted; Halted (without a
//     start request) and Once are refused.
//   - pause and unpause: libvirt's suspend and resume of a running domain.
//
// A request that changes the desired run state is persisted before the
// domain is touched, so a failed call is finished by the next reconcile.
func (r *Reconciler) Act(ctx context.Context, req Request, vm *desired.VM) (ActResult, error) {
	dom, exists, err := r.domain(ctx, vm.DomainName)
	if err != nil {
		return ActResult{}, err
	}
	if exists {
		if o, ok := desired.OwnerOf(dom.XML); !ok || o.Namespace != vm.Namespace || o.Name != vm.Name {
			return ActResult{}, refusal(fmt.Sprintf("a domain named %s exists and is not owned by nodevirt for %s; it is left untouched", vm.DomainName, vm.Object))
		}
	}
	cur, err := r.rec.runRequest(vm.DomainName)
	if err != nil {
		return ActResult{}, err
	}
	active := exists && dom.State.Active()
	switch req {
	case RequestStart:
		return r.actStart(ctx, vm, dom, exists, cur)
	case RequestStop:
		return r.actStop(ctx, vm, active, cur)
	case RequestRestart:
		return r.actRestart(ctx, vm, active, cur)
	case RequestPause, RequestUnpause:
		return r.actPause(ctx, vm, dom, active, req == RequestPause)
	}
	_, err = ParseRequest(string(req))
	return ActResult{}, err
}

// domain observes one domain.
func (r *Reconciler) domain(ctx context.Context, name string) (hv.Domain, bool, error) {
	doms, err := r.hv.Domains(ctx)
	if err != nil {
		return hv.Domain{}, false, fmt.Errorf("observe domains: %w", err)
	}
	for _, d := range doms {
		if d.Name == name {
			return d, true, nil
		}
	}
	return hv.Domain{}, false, nil
}

// setRequest records (or, with action "", drops) the run request of vm's
// domain; it reports whether that changed anything.
func (r *Reconciler) setRequest(vm *desired.VM, cur RunRequest, action kubevirtv1.StateChangeRequestAction) (bool, error) {
	if cur.Action == action {
		return false, nil
	}
	if action == "" {
		return true, r.rec.clearRunRequest(vm.DomainName)
	}
	return true, r.rec.setRunRequest(vm.DomainName, RunRequest{Action: action, Time: r.cfg.Now().UTC()})
}

func (r *Reconciler) actStart(ctx context.Context, vm *desired.VM, dom hv.Domain, exists bool, cur RunRequest) (ActResult, error) {
	active := exists && dom.State.Active()
	rs := vm.RunStrategy
	if rs == kubevirtv1.RunStrategyOnce && !active {
		return ActResult{}, refusal(fmt.Sprintf("%s does not support manual start requests", rs))
	}
	want := kubevirtv1.StateChangeRequestAction("")
	if rs == kubevirtv1.RunStrategyHalted {
		want = kubevirtv1.StartRequest
	}
	changed, err := r.setRequest(vm, cur, want)
	if err != nil {
		return ActResult{}, err
	}
	switch {
	case active:
		return ActResult{Changed: changed, Message: "VM is already running"}, nil
	case !exists:
		return ActResult{Changed: changed, Message: "the domain is not defined on this node yet", Undefined: true}, nil
	}
	if err := r.hv.Start(ctx, vm.DomainName); err != nil {
		return ActResult{Changed: changed}, fmt.Errorf("start %s: %w", vm.DomainName, err)
	}
	r.starts.record(vm.DomainName, nil, r.cfg.Now())
	if err := r.remember(vm, true); err != nil {
		return ActResult{Changed: true}, err
	}
	return ActResult{Changed: true, Message: fmt.Sprintf("started (runStrategy %s)", rs)}, nil
}

func (r *Reconciler) actStop(ctx context.Context, vm *desired.VM, active bool, cur RunRequest) (ActResult, error) {
	want := kubevirtv1.StopRequest
	switch vm.RunStrategy {
	case kubevirtv1.RunStrategyHalted, kubevirtv1.RunStrategyManual:
		// Off is what they want anyway, Manual never starts by itself:
		// only a start request is dropped.
		want = ""
	}
	changed, err := r.setRequest(vm, cur, want)
	if err != nil {
		return ActResult{}, err
	}
	if !active {
		msg := "VM is not running"
		if changed && want != "" {
			msg += "; a stop is recorded: it stays off until a start"
		}
		return ActResult{Changed: changed, Message: msg}, nil
	}
	if err := r.hv.Shutdown(ctx, vm.DomainName, vm.GracePeriod); err != nil {
		return ActResult{Changed: changed}, fmt.Errorf("stop %s: %w", vm.DomainName, err)
	}
	msg := "stopped"
	if want != "" {
		msg += "; it stays off until a start"
	}
	return ActResult{Changed: true, Message: msg}, nil
}

func (r *Reconciler) actRestart(ctx context.Context, vm *desired.VM, active bool, cur RunRequest) (ActResult, error) {
	rs := vm.RunStrategy
	if rs == kubevirtv1.RunStrategyOnce || (rs == kubevirtv1.RunStrategyHalted && cur.Action != kubevirtv1.StartRequest) {
		return ActResult{}, refusal(fmt.Sprintf("RunStrategy %s does not support manual restart requests", rs))
	}
	if !active {
		return ActResult{}, errNotRunning
	}
	// KubeVirt's restart is a stop and a start request: a stop request
	// still recorded (its stop failed) goes with it.
	if cur.Action == kubevirtv1.StopRequest {
		if err := r.rec.clearRunRequest(vm.DomainName); err != nil {
			return ActResult{}, err
		}
	}
	if err := r.hv.Shutdown(ctx, vm.DomainName, vm.GracePeriod); err != nil {
		return ActResult{}, fmt.Errorf("restart %s: %w", vm.DomainName, err)
	}
	if err := r.hv.Start(ctx, vm.DomainName); err != nil {
		return ActResult{Changed: true}, fmt.Errorf("restart %s: %w", vm.DomainName, err)
	}
	r.starts.record(vm.DomainName, nil, r.cfg.Now())
	if err := r.remember(vm, true); err != nil {
		return ActResult{Changed: true}, err
	}
	return ActResult{Changed: true, Message: "restarted"}, nil
}

func (r *Reconciler) actPause(ctx context.Context, vm *desired.VM, dom hv.Domain, active, pause bool) (ActResult, error) {
	if !active {
		return ActResult{}, errNotRunning
	}
	paused := dom.State == hv.Paused
	switch {
	case pause && paused:
		return ActResult{Message: "VM is already paused"}, nil
	case !pause && !paused:
		return ActResult{Message: "VM is not paused"}, nil
	case pause:
		if err := r.hv.Pause(ctx, vm.DomainName); err != nil {
			return ActResult{}, fmt.Errorf("pause %s: %w", vm.DomainName, err)
		}
		return ActResult{Changed: true, Message: "paused"}, nil
	}
	if err := r.hv.Resume(ctx, vm.DomainName); err != nil {
		return ActResult{}, fmt.Errorf("unpause %s: %w", vm.DomainName, err)
	}
	return ActResult{Changed: true, Message: "unpaused"}, nil
}
