package drift

import (
	"testing"

	"github.com/nodevirt/nodevirt/reconciler/vm"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevirt/nodevirt/reconciler/host"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/storage"
)

// One status per domain, the out-of-band change winning; a start after a
// create is part of the missing VM.
func TestVMs_statusPerDomain(t *testing.T) {
	a := func(k plan.Action, dom string, drift bool) plan.Step {
		return plan.Step{Stage: plan.StageVM, Action: k, Object: "VirtualMachine default/" + dom, Target: "default_" + dom, Reason: string(k), Drift: drift}
	}
	rep := VMs(vm.Plan{Revision: "r1", InSync: []string{"default_ok"}, Actions: []plan.Step{
		a(vm.Create, "new", false), a(vm.Start, "new", false),
		a(vm.Update, "edited", false), a(vm.Start, "edited", true),
		a(vm.Update, "changed", false), a(vm.RestartRequired, "changed", false),
		a(vm.RestartRequired, "refused", false),
		a(vm.Delete, "gone", false), a(vm.Hold, "guarded", false), a(vm.Keep, "broken", false),
		a(vm.Conflict, "taken", false), a(vm.Orphan, "foreign", false), a(vm.Wait, "waits", false),
		a(vm.Stop, "halted", false),
	}})
	got := map[string]string{}
	for _, e := range rep.Entries {
		got[e.Domain] = e.Status
	}
	want := map[string]string{
		"default_new": Missing, "default_edited": Drifted, "default_changed": Pending, "default_refused": RestartRequired,
		"default_gone": Extra, "default_guarded": Extra, "default_broken": Invalid, "default_taken": Conflict,
		"default_foreign": Orphan, "default_waits": Waiting, "default_halted": Drifted,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if rep.Drifted != 2 || rep.Revision != "r1" || len(rep.InSync) != 1 {
		t.Errorf("report = %+v", rep)
	}
}

// Every step is a difference but the host checks that cannot change
// anything; the plans count them all.
func TestPlans_differences(t *testing.T) {
	hp := host.Plan{Actions: []host.Action{
		{Step: plan.Step{Stage: plan.StageHost, Action: host.NotApplicable, Target: "/var/hpvolumes"}},
		{Step: plan.Step{Stage: plan.StageHost, Action: host.DeviceUnbound, Target: "0000:02:01.0"}},
	}}
	ps := Plans{VMs: &vm.Plan{}, Host: &hp, Storage: &storage.Plan{}}
	if n := ps.Differences(); n != 0 {
		t.Fatalf("checks that change nothing are no difference: %d", n)
	}
	hp.Actions = append(hp.Actions, host.Action{Step: plan.Step{Stage: plan.StageHost, Action: host.RebootRequired, Target: "kernel arguments"}})
	ps.VMs.Actions = []plan.Step{{Stage: plan.StageVM, Action: vm.Wait}}
	ps.Storage.Actions = []storage.Action{{Step: plan.Step{Stage: plan.StageStorage, Action: storage.ActWait}}, {Step: plan.Step{Stage: plan.StageStorage, Action: storage.ActHold}}}
	if n := ps.Differences(); n != 4 {
		t.Errorf("differences = %d, want 4 (reboot, VM wait, storage wait and hold)", n)
	}
	if got := Host(hp).Entries; len(got) != 3 || got[0].Status != NotApplicable || got[1].Status != Unbound || got[2].Status != RebootRequired {
		t.Errorf("host entries = %+v", got)
	}
	if ps.Incomplete() {
		t.Error("no parse failed")
	}
	ps.Storage.PruneSuspended = true
	if !ps.Incomplete() {
		t.Error("a file that failed to parse leaves the plans incomplete")
	}
	if got := Storage(ps.Storage); len(got) != 2 || got[0].Status != Waiting || got[1].Status != Held {
		t.Errorf("storage entries = %+v", got)
	}
	if got := Storage(nil); got == nil || len(got) != 0 {
		t.Errorf("no storage plan is no entry, and an empty list: %#v", got)
	}
}

func TestVMs_hotPlugged(t *testing.T) {
	p := vm.Plan{Revision: "r", Actions: []plan.Step{{Stage: plan.StageVM, Action: vm.HotPlugged, Object: "VirtualMachine lab/vm",
		Target: "lab_vm", Reason: "volume data: hot-plugged, not in the source"}}}
	if !p.Empty() {
		t.Fatal("a hot-plugged note must not make the plan change anything")
	}
	rep := VMs(p)
	if len(rep.Entries) != 1 || rep.Entries[0].Status != HotPlugged || rep.Entries[0].Heal != "volume data: hot-plugged, not in the source" || rep.Drifted != 0 {
		t.Fatalf("report: %+v", rep)
	}
}
