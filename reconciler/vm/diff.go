package vm

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/placement"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/runtime/hv"
)

// The VM stage's actions.
const (
	Create  plan.Action = "create"
	Update  plan.Action = "update"
	Start   plan.Action = "start"
	Stop    plan.Action = "stop"
	Restart plan.Action = "restart"
	Delete  plan.Action = "delete"
	// Wait: the VM cannot be defined yet (a claim it uses does not exist).
	Wait = plan.Wait
	// Hold: a delete the prune guard stopped; it needs confirmation.
	Hold = plan.Hold
	// Keep: an invalid manifest; the VM keeps its last good state.
	Keep = plan.Keep
	// Conflict: a domain with the VM's name exists and nodevirt does not own it.
	Conflict = plan.Conflict
	// RestartRequired: the definition changed while the VM runs and the VM asked
	// not to be restarted for it.
	RestartRequired plan.Action = "restart-required"
	// Orphan: a domain with nodevirt's ownership mark that is not in this
	// agent's inventory (another agent's, or from a lost state directory);
	// reported, never pruned.
	Orphan plan.Action = "orphan"
	// HotPlugged: a volume attached by hand (addvolume) that the source
	// does not hold; reported, never detached by self-heal.
	HotPlugged plan.Action = "hot-plugged"
)

// Plan is what the VM stage would do for one revision; the target of its
// steps is the domain.
type Plan struct {
	Revision string      `json:"revision"`
	Actions  []plan.Step `json:"actions"`
	Diags    diag.List   `json:"diagnostics,omitempty"`
	// PruneSuspended: a file failed to parse, so nothing is deleted.
	PruneSuspended bool `json:"pruneSuspended,omitempty"`
	// InSync lists the domains that need nothing.
	InSync []string `json:"inSync,omitempty"`
}

// Options carry what Diff needs beyond desired and observed state.
type Options struct {
	// AllowPruneAll confirms a commit whose deletes reach the guard.
	AllowPruneAll bool
	// PruneGuardShare is the share of owned VMs (0 < s <= 1) whose deletion in
	// one revision needs confirmation; 0 means 1, i.e. only deleting all of them.
	PruneGuardShare float64
	// Inventory holds the domains this agent has defined (its state records):
	// only they are pruned, as Flux prunes only its own inventory. Nil means
	// every owned domain counts as this agent's.
	Inventory map[string]bool
	// Started holds the domains nodevirt has started at least once (runStrategy
	// Once and RerunOnFailure need that history).
	Started map[string]bool
	// Missing holds artifact paths of claims that do not exist on the host.
	Missing map[string]bool
	// LastGood holds, for invalid manifests, the VM last applied from a good
	// revision: it stays the desired state until the manifest is fixed.
	LastGood map[string]*desired.VM
	// Unschedulable maps a domain to why this node cannot run it (its CPU
	// model, no free dedicated CPUs); it is defined but waits instead of starting.
	Unschedulable map[string]string
	// FreeHugepages maps a page size in KiB to the free pages of that size on
	// the host; a VM that needs more waits instead of starting.
	FreeHugepages map[int64]int64
	// Requests are the starts and stops asked for by hand, by domain: a stop
	// keeps the domain off whatever its runStrategy, a start makes a Halted
	// VM run as Always, until the opposite request clears it.
	Requests map[string]RunRequest
	// Fields compares two domain documents; nil means the package's Fields.
	// The reconciler passes a memoized one, since between two iterations
	// almost no document changes and parsing them dominates a no-op plan.
	Fields func(desiredXML, observedXML string) ([]plan.Change, error)
	// Owner reads a domain's ownership mark; nil means desired.OwnerOf.
	// The reconciler passes a memoized one, for the same reason as Fields.
	Owner func(name, domainXML string) (desired.Owner, bool)
}

// Diff computes the plan that brings observed to desired.
func Diff(d *desired.State, observed []hv.Domain, opt Options) Plan {
	p := Plan{Revision: d.Revision, Diags: d.Diags, PruneSuspended: d.PruneSuspended}
	if opt.Fields == nil {
		opt.Fields = Fields
	}
	if opt.Owner == nil {
		opt.Owner = func(_, x string) (desired.Owner, bool) { return desired.OwnerOf(x) }
	}
	byName := make(map[string]hv.Domain, len(observed))
	owners := make(map[string]desired.Owner, len(observed))
	for _, dom := range observed {
		byName[dom.Name] = dom
		if o, ok := opt.Owner(dom.Name, dom.XML); ok {
			owners[dom.Name] = o
		}
	}

	want := make([]*desired.VM, 0, len(d.VMs)+len(d.Invalid))
	want = append(want, d.VMs...)
	for name, obj := range d.Invalid {
		if vm := opt.LastGood[name]; vm != nil {
			want = append(want, vm)
			p.Actions = append(p.Actions, plan.Step{Stage: plan.StageVM, Action: Keep, Object: obj, Target: name,
				Reason: fmt.Sprintf("manifest is invalid; keeping the state last applied from %s", vm.Revision)})
		} else {
			p.Actions = append(p.Actions, plan.Step{Stage: plan.StageVM, Action: Keep, Object: obj, Target: name,
				Reason: "manifest is invalid and was never applied; nothing to do until it is fixed"})
		}
	}
	sort.Slice(want, func(i, j int) bool { return want[i].DomainName < want[j].DomainName })

	wanted := map[string]bool{}
	var unsched []string
	for name := range d.Unschedulable {
		unsched = append(unsched, name)
	}
	sort.Strings(unsched)
	for _, name := range unsched {
		obj, why, _ := strings.Cut(d.Unschedulable[name], ": ")
		if _, owned := owners[name]; owned && d.OutOfService {
			// An out-of-service node runs nothing, even a VM no other
			// node takes: it is fenced, and another node may be told to
			// run its VMs.
			wanted[name] = true
			if byName[name].State.Active() {
				p.Actions = append(p.Actions, plan.Step{Stage: plan.StageVM, Action: Stop, Object: obj, Target: name, Disruptive: true,
					Reason: "this node has the taint " + placement.TaintOutOfService + ": its VMs stop (no node can run it now: " + why + ")"})
			}
			continue
		}
		if _, running := owners[name]; running {
			// Placement rules apply at scheduling only (seed 8.14.2): a VM
			// already here is not evicted because no node would take it now.
			wanted[name] = true
			p.Actions = append(p.Actions, plan.Step{Stage: plan.StageVM, Action: Keep, Object: obj, Target: name,
				Reason: "no node can run it now (" + why + "); it stays here: placement rules apply at scheduling only"})
			continue
		}
		p.Actions = append(p.Actions, plan.Step{Stage: plan.StageVM, Action: Wait, Object: obj, Target: name, Reason: "unschedulable: " + why})
	}
	for _, vm := range want {
		wanted[vm.DomainName] = true
		dom, exists := byName[vm.DomainName]
		owner, owned := owners[vm.DomainName]
		acts := vmActions(vm, dom, exists, owner, owned, opt)
		if len(acts) == 0 {
			p.InSync = append(p.InSync, vm.DomainName)
		}
		p.Actions = append(p.Actions, acts...)
	}

	// A VM placed on another node stops here, gracefully, so that node
	// may start it once this node reports it stopped; its domain and
	// disks stay, for the VM may come back. A domain that is not this
	// agent's is left to the orphan report below.
	var away []string
	for name := range d.OtherNode {
		if _, owned := owners[name]; owned && (opt.Inventory == nil || opt.Inventory[name]) && !wanted[name] {
			away = append(away, name)
		}
	}
	sort.Strings(away)
	for _, name := range away {
		wanted[name] = true
		if !byName[name].State.Active() {
			continue
		}
		obj, why, _ := strings.Cut(d.OtherNode[name], ": ")
		p.Actions = append(p.Actions, plan.Step{Stage: plan.StageVM, Action: Stop, Object: obj, Target: name, Disruptive: true,
			Reason: why + ": it stops here so that node can start it"})
	}

	// Prune: owned domains nothing asks for any more.
	var owned, deletes []hv.Domain
	var orphans []hv.Domain
	for _, dom := range observed {
		if _, ok := owners[dom.Name]; !ok {
			continue
		}
		if opt.Inventory != nil && !opt.Inventory[dom.Name] {
			if !wanted[dom.Name] && d.Invalid[dom.Name] == "" {
				orphans = append(orphans, dom)
			}
			continue
		}
		owned = append(owned, dom)
		if !wanted[dom.Name] && d.Invalid[dom.Name] == "" {
			deletes = append(deletes, dom)
		}
	}
	sort.Slice(orphans, func(i, j int) bool { return orphans[i].Name < orphans[j].Name })
	for _, dom := range orphans {
		o := owners[dom.Name]
		p.Actions = append(p.Actions, plan.Step{Stage: plan.StageVM, Action: Orphan, Object: o.Kind + " " + o.Namespace + "/" + o.Name, Target: dom.Name,
			Reason: "marked as nodevirt's but not in this agent's inventory (another agent's, or a lost state directory); left untouched"})
	}
	sort.Slice(deletes, func(i, j int) bool { return deletes[i].Name < deletes[j].Name })
	held := ""
	switch {
	case len(deletes) > 0 && d.PruneSuspended:
		held = "a file of this revision failed to parse, so the objects it held are unknown; pruning is suspended"
	case len(deletes) > 0 && !opt.AllowPruneAll && float64(len(deletes)) >= guardShare(opt)*float64(len(owned)):
		held = fmt.Sprintf("this revision would delete %d of the %d VMs nodevirt owns on this node (guard: %.0f%%); confirm with --allow-prune-all or the %s annotation",
			len(deletes), len(owned), 100*guardShare(opt), desired.AnnotationAllowPruneAll)
	}
	for _, dom := range deletes {
		o := owners[dom.Name]
		obj := o.Kind + " " + o.Namespace + "/" + o.Name
		if held != "" {
			p.Actions = append(p.Actions, plan.Step{Stage: plan.StageVM, Action: Hold, Object: obj, Target: dom.Name, Reason: held})
			continue
		}
		p.Actions = append(p.Actions, plan.Step{Stage: plan.StageVM, Action: Delete, Object: obj, Target: dom.Name,
			Reason: "manifest removed from the source; the domain and its disks are deleted", Disruptive: dom.State.Active()})
	}
	return p
}

// startOrWait turns a start into a wait when the host lacks what the VM
// needs to run: QEMU would fail to allocate its memory otherwise.
func startOrWait(vm *desired.VM, start plan.Step, opt Options) plan.Step {
	if vm.Fenced != "" {
		start.Action, start.Reason = Wait, vm.Fenced
		return start
	}
	if why := opt.Unschedulable[vm.DomainName]; why != "" {
		start.Action, start.Reason = Wait, "unschedulable on this node: "+why
		return start
	}
	h := vm.Hugepages
	if h == nil || opt.FreeHugepages == nil {
		return start
	}
	free, ok := opt.FreeHugepages[h.PageSizeKiB]
	switch {
	case !ok:
		start.Action, start.Reason = Wait, fmt.Sprintf("needs %d huge pages of %d KiB; the node has no pool of that size", h.Pages, h.PageSizeKiB)
	case free < h.Pages:
		start.Action, start.Reason = Wait, fmt.Sprintf("needs %d huge pages of %d KiB; the node has %d free", h.Pages, h.PageSizeKiB, free)
	}
	return start
}

func guardShare(opt Options) float64 {
	if opt.PruneGuardShare <= 0 || opt.PruneGuardShare > 1 {
		return 1
	}
	return opt.PruneGuardShare
}

func vmActions(vm *desired.VM, dom hv.Domain, exists bool, owner desired.Owner, owned bool, opt Options) []plan.Step {
	act := func(k plan.Action, reason string) plan.Step {
		return plan.Step{Stage: plan.StageVM, Action: k, Object: vm.Object, Target: vm.DomainName, Reason: reason}
	}
	for _, a := range vm.Artifacts {
		if !exists && opt.Missing[a.Path] {
			switch a.Kind {
			case domain.Claim:
				return []plan.Step{act(Wait, fmt.Sprintf("volume %q: claim disk %s does not exist yet", a.Volume, a.Path))}
			case domain.SharedDir:
				return []plan.Step{act(Wait, fmt.Sprintf("volume %q: shared directory %s of claim %s does not exist yet", a.Volume, a.Path, a.Claim))}
			}
		}
	}
	if !exists {
		acts := []plan.Step{act(Create, "new in the source")}
		if startsOnCreate(vm, opt) {
			acts = append(acts, startOrWait(vm, act(Start, runReason(vm, opt)), opt))
		}
		return acts
	}
	if !owned {
		return []plan.Step{act(Conflict, "a domain with this name exists and is not owned by nodevirt; it is left untouched")}
	}

	var acts []plan.Step
	attach, detach := liveVolumes(vm, dom, owner.SpecHash == vm.SpecHash)
	desiredXML, observedXML := vm.XML, dom.XML
	if strip := hotAliases(vm, detach); len(strip) > 0 {
		desiredXML, observedXML = withoutDisks(desiredXML, strip), withoutDisks(observedXML, strip)
	}
	changes, err := opt.Fields(desiredXML, observedXML)
	if err != nil {
		changes = []plan.Change{{Path: "(document)", From: err.Error(), To: "valid domain XML"}}
	}
	// Any definition change reaches a running guest only at its next boot
	// (libvirt replaces the persistent config; the live one stays).
	redefined := false
	switch {
	case owner.SpecHash != vm.SpecHash:
		a := act(Update, "changed in the source")
		a.Changes = changes
		acts = append(acts, a)
		redefined = true
	case len(changes) > 0 && controllersOnly(changes):
		// A domain defined before the hotplug controllers existed: its hash
		// is unchanged (they are not hashed), so it is not restarted; the
		// redefine adds them, and a running guest gets them at its next boot.
		a := act(Update, "adds the controllers hot-plugged devices need; a running VM gets them at its next boot (restart required to add hotplug controllers)")
		a.Changes = changes
		acts = append(acts, a)
	case len(changes) > 0:
		a := act(Update, "persistent definition changed out of band")
		a.Changes = changes
		a.Drift = true
		acts = append(acts, a)
	}

	active := dom.State.Active()
	switch want := runWanted(vm, dom, opt); {
	case want && !active:
		a := act(Start, fmt.Sprintf("%s; domain is %s (%s)", runReason(vm, opt), dom.State, dom.Reason))
		a.Drift = dom.Reason == "destroyed" && opt.Started[vm.DomainName]
		acts = append(acts, startOrWait(vm, a, opt))
	case !want && active && (vm.RunStrategy == kubevirtv1.RunStrategyHalted || requested(vm, opt) == kubevirtv1.StopRequest):
		a := act(Stop, runReason(vm, opt)+"; domain is running")
		a.Disruptive = true
		acts = append(acts, a)
	case active && redefined:
		if vm.RestartOnChange {
			a := act(Restart, "the new definition takes effect at the next boot")
			a.Disruptive = true
			acts = append(acts, a)
		} else {
			acts = append(acts, act(RestartRequired, "the new definition takes effect at the next boot; "+desired.AnnotationRestartOnChange+" is false"))
		}
	}
	if len(attach)+len(detach) > 0 {
		switch {
		case active:
			acts = append(acts, liveVolumeSteps(vm, attach, detach, opt, act)...)
		case !slices.ContainsFunc(acts, func(s plan.Step) bool { return s.Action == Update }):
			acts = append(acts, act(Update, "hotpluggable volumes changed in the source"))
		}
	}
	return acts
}

// requested returns the run request recorded for vm's domain, if any.
func requested(vm *desired.VM, opt Options) kubevirtv1.StateChangeRequestAction {
	return opt.Requests[vm.DomainName].Action
}

// runReason says what decides vm's run state: a request by hand, or its
// runStrategy.
func runReason(vm *desired.VM, opt Options) string {
	r, ok := opt.Requests[vm.DomainName]
	switch {
	case ok && r.Action == kubevirtv1.StopRequest:
		return fmt.Sprintf("a stop was requested at %s (runStrategy %s); it stays off until a start", r.Time.UTC().Format(time.RFC3339), vm.RunStrategy)
	case ok && r.Action == kubevirtv1.StartRequest:
		return fmt.Sprintf("a start was requested at %s (runStrategy %s); it runs until a stop", r.Time.UTC().Format(time.RFC3339), vm.RunStrategy)
	}
	return fmt.Sprintf("runStrategy %s", vm.RunStrategy)
}

func startsOnCreate(vm *desired.VM, opt Options) bool {
	switch requested(vm, opt) {
	case kubevirtv1.StopRequest:
		return false
	case kubevirtv1.StartRequest:
		return true
	}
	switch vm.RunStrategy {
	case kubevirtv1.RunStrategyAlways, kubevirtv1.RunStrategyRerunOnFailure, kubevirtv1.RunStrategyOnce:
		return true
	}
	return false
}

// runWanted applies KubeVirt's runStrategy semantics to an existing domain.
// A guest that shut itself down counts as Succeeded; crashed or destroyed
// counts as plan.Failed (KubeVirt treats destroy of an ACPI guest as failure).
// A request by hand overrides the strategy: a stop keeps it off, a start
// keeps it running. A paused domain is active: it is never "started" back.
func runWanted(vm *desired.VM, dom hv.Domain, opt Options) bool {
	switch requested(vm, opt) {
	case kubevirtv1.StopRequest:
		return false
	case kubevirtv1.StartRequest:
		return true
	}
	switch vm.RunStrategy {
	case kubevirtv1.RunStrategyAlways:
		return true
	case kubevirtv1.RunStrategyRerunOnFailure:
		if dom.State.Active() || !opt.Started[vm.DomainName] {
			return true
		}
		return dom.Reason != "shutdown" && dom.Reason != "saved"
	case kubevirtv1.RunStrategyOnce:
		return dom.State.Active() || !opt.Started[vm.DomainName]
	case kubevirtv1.RunStrategyManual:
		return dom.State.Active()
	}
	return false
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool {
	for _, a := range p.Actions {
		switch a.Action {
		case Keep, Conflict, Hold, Wait, RestartRequired, Orphan, HotPlugged:
			continue
		}
		return false
	}
	return true
}

// Drift returns the actions that undo out-of-band changes.
func (p Plan) Drift() []plan.Step {
	var out []plan.Step
	for _, a := range p.Actions {
		if a.Drift {
			out = append(out, a)
		}
	}
	return out
}

// controllersOnly reports changes that touch controllers only: libvirt adds
// controllers on its own, so a difference there is never someone's edit.
func controllersOnly(changes []plan.Change) bool {
	for _, c := range changes {
		if !strings.HasPrefix(c.Path, "devices.controller[") {
			return false
		}
	}
	return true
}
