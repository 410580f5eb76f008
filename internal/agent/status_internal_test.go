package agent

import (
	"testing"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/hv"
)

// printableStatus follows the domain's state and what the plan and the
// apply did for the VM, as KubeVirt's controller follows the VMI and pod.
func TestPrintable(t *testing.T) {
	wait := []plan.Step{{Action: plan.Wait, Reason: "anything"}}
	start := func(r plan.Result, why string) []plan.Outcome {
		return []plan.Outcome{{Step: plan.Step{Action: vm.Start}, Result: r, Error: why}}
	}
	for _, tc := range []struct {
		name          string
		unschedulable string
		exists        bool
		state         hv.State
		steps         []plan.Step
		outs          []plan.Outcome
		want          kubevirtv1.VirtualMachinePrintableStatus
	}{
		{name: "running", exists: true, state: hv.Running, want: kubevirtv1.VirtualMachineStatusRunning},
		{name: "paused", exists: true, state: hv.Paused, want: kubevirtv1.VirtualMachineStatusPaused},
		{name: "shutting down", exists: true, state: hv.ShuttingOff, want: kubevirtv1.VirtualMachineStatusStopping},
		{name: "defined, off", exists: true, state: hv.Shutoff, want: kubevirtv1.VirtualMachineStatusStopped},
		{name: "not defined", want: kubevirtv1.VirtualMachineStatusStopped},
		{name: "claim disk missing", steps: wait, want: kubevirtv1.VirtualMachineStatusWaitingForVolumeBinding},
		{name: "no huge pages", exists: true, state: hv.Shutoff, steps: wait, want: kubevirtv1.VirtualMachineStatusUnschedulable},
		{name: "no free CPUs", unschedulable: "needs 2 dedicated CPUs", exists: true, state: hv.Shutoff, want: kubevirtv1.VirtualMachineStatusUnschedulable},
		{name: "running though now unschedulable", unschedulable: "x", exists: true, state: hv.Running, want: kubevirtv1.VirtualMachineStatusRunning},
		{name: "start failed", exists: true, state: hv.Shutoff, outs: start(plan.Failed, "boom"), want: kubevirtv1.VirtualMachineStatusCrashLoopBackOff},
		{name: "start in back-off", exists: true, state: hv.Shutoff, outs: start(plan.Skipped, "start failed 3 times (last: boom); next try in 40s"), want: kubevirtv1.VirtualMachineStatusCrashLoopBackOff},
		{name: "start suspended", exists: true, state: hv.Shutoff, outs: start(plan.Skipped, plan.SkipSuspended), want: kubevirtv1.VirtualMachineStatusStopped},
		{name: "started", exists: true, state: hv.Running, outs: start(plan.Done, ""), want: kubevirtv1.VirtualMachineStatusRunning},
	} {
		got := printable(&desired.VM{Unschedulable: tc.unschedulable}, tc.exists, tc.state, tc.steps, tc.outs)
		if got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
