package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	snapshotv1beta1 "kubevirt.io/api/snapshot/v1beta1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/drift"
	"github.com/nodevirt/nodevirt/reconciler/host"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/snapshot"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/reconciler/vm"
	"github.com/nodevirt/nodevirt/runtime/hv"
	"github.com/nodevirt/nodevirt/source"
)

// maxEvents is how many recent events the agent keeps for its API.
const maxEvents = 200

// Iteration is what one reconcile of the loop did, handed to
// Config.OnIteration (metrics) after the status was updated.
type Iteration struct {
	Start time.Time
	Took  time.Duration
	// Fetched: the source was asked; FetchErr is why that failed.
	Fetched  bool
	FetchErr error
	// Refused is set when this iteration's fetch refused a revision.
	Refused *status.Refusal
	// Stages is how long each stage took (host, storage, vm).
	Stages map[string]time.Duration
	Err    error
	Status status.Node
}

// tracker holds what the API serves between reconciles: the last status,
// the recent events and the fetch record. Its own lock keeps readers off
// the reconcile's lock, so a status request never waits for an apply.
type tracker struct {
	mu     sync.Mutex
	st     status.Node
	events []status.Event // ring, oldest first
	count  int64
	// refusedNow: the last fetch refused its revision.
	refusedNow bool
	// version counts the changes of st, so the API encodes it once per
	// change, not once per request.
	version uint64
}

func (t *tracker) statusVersion() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.version
}

func (t *tracker) status() status.Node {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st
}

func (t *tracker) recent() []status.Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := slices.Clone(t.events)
	slices.Reverse(out)
	return out
}

func (t *tracker) event(typ, reason, object, msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now().UTC()
	// The same event again (a step failing at every reconcile) is counted
	// on the one entry, as Kubernetes aggregates events, so it cannot push
	// everything else out of the ring.
	for i := len(t.events) - 1; i >= 0; i-- {
		if e := t.events[i]; e.Type == typ && e.Reason == reason && e.Object == object && e.Message == msg {
			e.Count++
			e.Time = now
			t.events = append(slices.Delete(t.events, i, i+1), e)
			return
		}
	}
	t.events = append(t.events, status.Event{Time: now, Type: typ, Reason: reason, Object: object, Message: msg, Count: 1})
	if n := len(t.events) - maxEvents; n > 0 {
		t.events = slices.Delete(t.events, 0, n)
	}
}

// lastRefusal is the refusal of the last fetch, nil when it refused nothing.
func (t *tracker) lastRefusal() *status.Refusal {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.refusedNow || t.st.Source.Refused == nil {
		return nil
	}
	r := *t.st.Source.Refused
	return &r
}

func (t *tracker) fetched(url string, snap source.Snapshot, err error) {
	revision := snap.Revision
	now := time.Now().UTC()
	t.mu.Lock()
	prev := t.st.Source.Revision
	t.st.Source.URL, t.st.Source.LastFetch = url, &now
	var refused *source.RefusedError
	t.refusedNow = errors.As(err, &refused)
	if err != nil {
		t.st.Source.FetchError = err.Error()
	} else {
		t.st.Source.FetchError = ""
		t.st.Source.Refused = nil
	}
	if t.refusedNow {
		t.st.Source.Refused = &status.Refusal{Revision: refused.Revision, Author: refused.Author,
			Reason: refused.Reason, Message: refused.Error(), Time: now}
	}
	if revision != "" {
		t.st.Source.Revision = revision
		if snap.Verified {
			t.st.Source.VerifiedRevision = revision
		}
	}
	t.version++
	t.mu.Unlock()
	switch {
	case refused != nil:
		t.event(status.Warning, "RevisionRefused", "", refused.Error())
	case err != nil:
		t.event(status.Warning, "FetchFailed", "", err.Error())
	case revision != "" && revision != prev:
		t.event(status.Normal, "NewRevision", "", "fetched revision "+revision)
	}
}

// Status is the node's status as of the last reconcile (or the last
// StatusOf a one-shot command made).
func (a *Agent) Status() status.Node {
	st := a.track.status()
	if f := a.fleet.Load(); f != nil {
		st.StatusBranch = f.status()
	}
	return st
}

// StatusVersion changes whenever Status does.
func (a *Agent) StatusVersion() uint64 { return a.track.statusVersion() }

// Events are the agent's recent events, newest first.
func (a *Agent) Events() []status.Event { return a.track.recent() }

// Event records an event (an API action, a webhook) beside the loop's own.
func (a *Agent) Event(typ, reason, object, msg string) { a.track.event(typ, reason, object, msg) }

// record makes the status of n after the apply nr, keeps it for the API and
// records an event per step done or failed.
func (a *Agent) record(n *Node, nr NodeReport, start time.Time) status.Node {
	for _, o := range nr.Results() {
		switch o.Result {
		case plan.Done:
			a.track.event(status.Normal, eventReason(o.Action), o.Object, strings.TrimSpace(o.Reason))
		case plan.Failed:
			a.track.event(status.Warning, "Failed"+eventReason(o.Action), o.Object, o.Error)
		}
	}
	st := a.StatusOf(n, nr)
	now := time.Now().UTC()
	t := &a.track
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count++
	t.version++
	src := t.st.Source
	src.LastAppliedRevision, src.LastAttemptedRevision = st.Source.LastAppliedRevision, st.Source.LastAttemptedRevision
	st.Source = src
	st.Reconcile.Last, st.Reconcile.Duration, st.Reconcile.Count = &now, time.Since(start).Round(time.Millisecond).String(), t.count
	t.st = st
	return st
}

// eventReason turns an action ("write-file") into an event reason
// ("WriteFile").
func eventReason(a plan.Action) string {
	var b strings.Builder
	for _, w := range strings.FieldsFunc(string(a), func(r rune) bool { return r == '-' || r == ' ' }) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}

// StatusOf is the status of n after the apply nr (a plan alone, for a
// one-shot command, is an apply whose steps did not run): what is still not
// as the source asks, and every object with its KubeVirt, CDI or Kubernetes
// status.
func (a *Agent) StatusOf(n *Node, nr NodeReport) status.Node {
	st := status.Node{Holds: []status.Step{}, Differences: []status.Step{}}
	st.Reconcile.Revision = n.Revision
	st.Reconcile.Errors = append([]string{}, nr.Errors...)
	if err := nr.Err(); err != nil && len(nr.Errors) == 0 {
		st.Reconcile.Errors = append(st.Reconcile.Errors, err.Error())
	}
	done := map[string][]plan.Outcome{}
	for _, o := range nr.Results() {
		if o.Result == plan.Done {
			st.Reconcile.Actions++
		}
		done[o.Object] = append(done[o.Object], o)
	}
	if a.rec != nil {
		if applied, attempted, err := a.rec.Revisions(); err == nil {
			st.Source.LastAppliedRevision, st.Source.LastAttemptedRevision = applied, attempted
		}
	}
	drifted := map[string]bool{}
	for _, s := range nr.Plan.Steps() {
		if !drift.Differs(s) || ranDone(done[s.Object], s) {
			continue
		}
		ss := stepOf(s)
		st.Differences = append(st.Differences, ss)
		if s.Drift {
			drifted[s.Object] = true
		}
		switch s.Action {
		case plan.Hold:
			st.Holds = append(st.Holds, ss)
		}
		if s.Stage == plan.StageHost {
			st.Host.Pending++
			st.Host.Steps = append(st.Host.Steps, ss)
			if s.Action == host.RebootRequired {
				st.Host.RebootRequired, st.Host.Reason = true, s.Reason
			}
		}
	}
	if nr.Host.RebootRequired && !st.Host.RebootRequired {
		st.Host.RebootRequired, st.Host.Reason = true, "staged kernel arguments or boot-time module options take effect at the next boot"
	}
	st.Drifted = len(drifted)
	st.Suspension.Objects = []string{}
	if global, objects, err := a.Suspensions(); err == nil {
		st.Suspension.Global = global
		st.Suspension.Objects = append(st.Suspension.Objects, objects...)
	}
	if st.Host.Steps == nil {
		st.Host.Steps = []status.Step{}
	}
	a.vmStatus(&st, n, nr)
	a.storageStatus(&st, n, nr)
	a.snapshotStatus(&st, n)
	return st
}

// StatusNow is the status a one-shot command shows without a running
// agent: the source fetched and the node planned, nothing applied.
func (a *Agent) StatusNow(ctx context.Context) (status.Node, error) {
	n, np, err := a.PlanNow(ctx)
	if err != nil {
		return status.Node{}, err
	}
	st := a.StatusOf(n, NodeReport{Plan: np})
	src := a.track.status().Source
	src.LastAppliedRevision, src.LastAttemptedRevision = st.Source.LastAppliedRevision, st.Source.LastAttemptedRevision
	st.Source = src
	return st, nil
}

// ranDone: the step's object had a step of the same action done in this
// apply, so the difference it stood for is gone.
func ranDone(outs []plan.Outcome, s plan.Step) bool {
	for _, o := range outs {
		if o.Action == s.Action && o.Target == s.Target && o.Result == plan.Done {
			return true
		}
	}
	return false
}

func stepOf(s plan.Step) status.Step {
	return status.Step{Stage: string(s.Stage), Action: string(s.Action), Object: s.Object, Target: s.Target, Reason: s.Reason, Drift: s.Drift}
}

// vmStatus fills the VMs and VMIs: each desired VM with the state its
// domain was left in by the apply.
func (a *Agent) vmStatus(st *status.Node, n *Node, nr NodeReport) {
	st.VirtualMachines, st.VirtualMachineInstances = []kubevirtv1.VirtualMachine{}, []kubevirtv1.VirtualMachineInstance{}
	// The VMs as the apply bound them (it may have bound them anew).
	vms := n.VMs
	if nr.Plan.State != nil {
		vms = nr.Plan.State
	}
	if vms == nil {
		return
	}
	// Sized once: growing a slice of these large structs by appending
	// allocated twice the final status on every iteration.
	st.VirtualMachines = make([]kubevirtv1.VirtualMachine, 0, len(vms.VMs))
	// The same for the instances, at most one per VM here (those running
	// elsewhere are few, appended last).
	st.VirtualMachineInstances = make([]kubevirtv1.VirtualMachineInstance, 0, len(vms.VMs))
	var observed map[string]hv.Domain
	steps := map[string][]plan.Step{}
	if p := nr.Plan.VMs; p != nil {
		observed = p.Observed
		for _, s := range p.Actions {
			steps[s.Target] = append(steps[s.Target], s)
		}
	}
	outcomes := map[string][]plan.Outcome{}
	for _, o := range nr.VMs.Outcomes {
		outcomes[o.Target] = append(outcomes[o.Target], o)
	}
	requests, _ := a.RunRequests()
	objects := map[string]any{}
	if n.Set != nil {
		for _, o := range n.Set.Objects {
			if o.Ref.Kind == "VirtualMachine" || o.Ref.Kind == "VirtualMachineInstance" {
				objects[o.Ref.String()] = o.Value
			}
		}
	}
	for _, v := range vms.VMs {
		dom, exists := observed[v.DomainName]
		state := dom.State
		for _, o := range outcomes[v.DomainName] {
			if o.Result != plan.Done {
				continue
			}
			switch o.Action {
			case vm.Create:
				exists, state = true, hv.Shutoff
			case vm.Start, vm.Restart:
				exists, state = true, hv.Running
			case vm.Stop:
				state = hv.Shutoff
			case vm.Delete:
				exists = false
			}
		}
		phase := printable(v, exists, state, steps[v.DomainName], outcomes[v.DomainName])
		meta := metav1.ObjectMeta{Name: v.Name, Namespace: v.Namespace}
		if v.Kind == "VirtualMachineInstance" {
			vmi := vmiOf(v, meta, exists, state, a.cfg.Desired.Node)
			if o, ok := objects[v.Object].(*kubevirtv1.VirtualMachineInstance); ok && o != nil {
				vmi.Spec, vmi.Labels, vmi.Annotations = o.Spec, o.Labels, o.Annotations
			}
			st.VirtualMachineInstances = append(st.VirtualMachineInstances, vmi)
			continue
		}
		rs := v.RunStrategy
		out := kubevirtv1.VirtualMachine{
			TypeMeta:   metav1.TypeMeta{APIVersion: kubevirtv1.GroupVersion.String(), Kind: "VirtualMachine"},
			ObjectMeta: meta,
			Status: kubevirtv1.VirtualMachineStatus{
				PrintableStatus: phase,
				Created:         exists,
				Ready:           exists && state.Active() && state != hv.Paused,
				RunStrategy:     rs,
			},
		}
		if o, ok := objects[v.Object].(*kubevirtv1.VirtualMachine); ok && o != nil {
			out.Spec, out.Labels, out.Annotations = o.Spec, o.Labels, o.Annotations
		}
		if r, ok := requests[v.DomainName]; ok {
			out.Status.StateChangeRequests = []kubevirtv1.VirtualMachineStateChangeRequest{{Action: r.Action}}
		}
		cond := kubevirtv1.VirtualMachineCondition{Type: kubevirtv1.VirtualMachineReady, Status: corev1.ConditionFalse}
		if out.Status.Ready {
			cond.Status = corev1.ConditionTrue
		} else {
			cond.Reason, cond.Message = string(phase), waitReason(steps[v.DomainName])
			if v.Fenced != "" && !(exists && state.Active()) {
				cond.Reason = ReasonFenced
			}
		}
		out.Status.Conditions = []kubevirtv1.VirtualMachineCondition{cond}
		st.VirtualMachines = append(st.VirtualMachines, out)
		if exists && state.Active() {
			st.VirtualMachineInstances = append(st.VirtualMachineInstances, vmiOf(v, meta, exists, state, a.cfg.Desired.Node))
		}
	}
	st.VirtualMachineInstances = append(st.VirtualMachineInstances, runningElsewhere(vms, observed, outcomes, a.cfg.Desired.Node)...)
	a.hotplugStatus(st, vms)
}

// runningElsewhere are the instances of nodevirt's domains that run here
// although the revision does not render them here: placed on another node
// and not stopped yet (or failing to stop), or kept where no node takes
// them. They run, so the status, and the fleet's reports made from it,
// must say so: another node waits for that before starting them.
func runningElsewhere(vms *desired.State, observed map[string]hv.Domain, outcomes map[string][]plan.Outcome, node string) []kubevirtv1.VirtualMachineInstance {
	names := make([]string, 0, len(observed))
	for name := range observed {
		if vms.Lookup(name) == nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out []kubevirtv1.VirtualMachineInstance
	for _, name := range names {
		dom := observed[name]
		owner, ok := desired.OwnerOf(dom.XML)
		if !ok {
			continue
		}
		active := dom.State.Active()
		for _, o := range outcomes[name] {
			if o.Result == plan.Done && (o.Action == vm.Stop || o.Action == vm.Delete) {
				active = false
			}
		}
		if !active {
			continue
		}
		vmi := kubevirtv1.VirtualMachineInstance{
			TypeMeta:   metav1.TypeMeta{APIVersion: kubevirtv1.GroupVersion.String(), Kind: "VirtualMachineInstance"},
			ObjectMeta: metav1.ObjectMeta{Name: owner.Name, Namespace: owner.Namespace},
		}
		vmi.Status.Phase, vmi.Status.NodeName = kubevirtv1.Running, node
		out = append(out, vmi)
	}
	return out
}

// vmiOf is the instance of a VM whose domain is in state.
func vmiOf(v *desired.VM, meta metav1.ObjectMeta, exists bool, state hv.State, node string) kubevirtv1.VirtualMachineInstance {
	vmi := kubevirtv1.VirtualMachineInstance{
		TypeMeta:   metav1.TypeMeta{APIVersion: kubevirtv1.GroupVersion.String(), Kind: "VirtualMachineInstance"},
		ObjectMeta: meta,
	}
	vmi.Status.Phase = kubevirtv1.Pending
	switch {
	case !exists:
	case state.Active():
		vmi.Status.Phase = kubevirtv1.Running
	case state == hv.Crashed:
		vmi.Status.Phase = kubevirtv1.Failed
	default:
		vmi.Status.Phase = kubevirtv1.Succeeded
	}
	if exists {
		vmi.Status.NodeName = node
	}
	if state == hv.Paused {
		vmi.Status.Conditions = []kubevirtv1.VirtualMachineInstanceCondition{{Type: kubevirtv1.VirtualMachineInstancePaused, Status: corev1.ConditionTrue, Reason: "PausedByUser"}}
	}
	return vmi
}

// printable is KubeVirt's printableStatus for a VM whose domain is in
// state after the apply, from the steps the plan had for it and what the
// apply did with them: no reason text is read.
func printable(v *desired.VM, exists bool, state hv.State, steps []plan.Step, outs []plan.Outcome) kubevirtv1.VirtualMachinePrintableStatus {
	waits := waitReason(steps) != ""
	switch {
	case exists && state.Active():
		switch state {
		case hv.Paused, hv.PMSuspended:
			return kubevirtv1.VirtualMachineStatusPaused
		case hv.ShuttingOff:
			return kubevirtv1.VirtualMachineStatusStopping
		}
		return kubevirtv1.VirtualMachineStatusRunning
	case v.Unschedulable != "":
		return kubevirtv1.VirtualMachineStatusUnschedulable
	case v.Fenced != "" && waits:
		// Placed here, and another node still runs it (or this node is
		// out of service): its start is pending, not impossible.
		return kubevirtv1.VirtualMachineStatusStarting
	case !exists && waits:
		// The one wait before a domain is defined: a claim's disk.
		return kubevirtv1.VirtualMachineStatusWaitingForVolumeBinding
	case !exists:
		return kubevirtv1.VirtualMachineStatusStopped
	case waits:
		// Defined, and its start waits for what the node lacks (huge
		// pages): the scheduler's unschedulable.
		return kubevirtv1.VirtualMachineStatusUnschedulable
	case startFailing(outs):
		return kubevirtv1.VirtualMachineStatusCrashLoopBackOff
	}
	return kubevirtv1.VirtualMachineStatusStopped
}

// startFailing: the apply's start of the VM failed, or was held back by
// the start back-off after failures.
func startFailing(outs []plan.Outcome) bool {
	for _, o := range outs {
		if o.Action != vm.Start && o.Action != vm.Restart {
			continue
		}
		switch {
		case o.Result == plan.Failed:
			return true
		case o.Result == plan.Skipped:
			switch o.Error {
			case plan.SkipAfterFailure, plan.SkipSelfHealOff, plan.SkipStopping, plan.SkipSuspended:
			default:
				return true // the back-off's wait
			}
		}
	}
	return false
}

// waitReason is why a VM's steps wait, "" when none does.
func waitReason(steps []plan.Step) string {
	for _, s := range steps {
		if s.Action == plan.Wait {
			return s.Reason
		}
	}
	return ""
}

// snapshotStatus fills the snapshots, their contents and the restores.
func (a *Agent) snapshotStatus(st *status.Node, n *Node) {
	st.VirtualMachineSnapshots = []snapshotv1beta1.VirtualMachineSnapshot{}
	st.VirtualMachineSnapshotContents = []snapshotv1beta1.VirtualMachineSnapshotContent{}
	st.VirtualMachineRestores = []snapshotv1beta1.VirtualMachineRestore{}
	if a.snapshots == nil {
		return
	}
	st.VirtualMachineSnapshots, st.VirtualMachineSnapshotContents, st.VirtualMachineRestores =
		a.snapshots.Status(snapshot.Desired(n.Set, n.VMs, n.Storage))
}

// storageStatus fills DataVolumes, claims and volumes as the storage
// manager describes them after the apply.
func (a *Agent) storageStatus(st *status.Node, n *Node, nr NodeReport) {
	st.DataVolumes, st.PersistentVolumeClaims, st.PersistentVolumes = []cdiv1.DataVolume{}, []corev1.PersistentVolumeClaim{}, []corev1.PersistentVolume{}
	if a.storage == nil || n.Storage == nil {
		return
	}
	d := a.storage.Describe(n.Storage, nr.Plan.Storage)
	for _, c := range d.Claims {
		kind, ns, name := splitObject(c.Object)
		if name == "" {
			ns, name, _ = strings.Cut(c.Key, "/")
		}
		meta := metav1.ObjectMeta{Name: name, Namespace: ns}
		pvc := corev1.PersistentVolumeClaim{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
			ObjectMeta: meta,
		}
		pvc.Spec.VolumeName = c.Status.Volume
		if c.Class != "" {
			cls := c.Class
			pvc.Spec.StorageClassName = &cls
		}
		pvc.Status.Phase = corev1.ClaimPending
		if c.Source == storage.SourceUpload && (c.Status.Phase == storage.PhaseUploadReady || c.Status.Phase == storage.PhaseFailed) {
			// virtctl waits for CDI's upload server pod through this.
			pvc.Annotations = map[string]string{annUploadPodReady: "true"}
		}
		if c.Status.Volume != "" {
			pvc.Status.Phase = corev1.ClaimBound
			if c.Capacity > 0 {
				pvc.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: *resource.NewQuantity(c.Capacity, resource.BinarySI)}
			}
		}
		st.PersistentVolumeClaims = append(st.PersistentVolumeClaims, pvc)
		if kind != "DataVolume" {
			continue
		}
		dv := cdiv1.DataVolume{
			TypeMeta:   metav1.TypeMeta{APIVersion: cdiv1.SchemeGroupVersion.String(), Kind: "DataVolume"},
			ObjectMeta: meta,
		}
		dv.Status.Phase = cdiv1.DataVolumePhase(c.Status.Phase)
		dv.Status.ClaimName = name
		dv.Status.RestartCount = int32(c.Restarts)
		if c.Status.Progress > 0 || c.Status.Phase == storage.PhaseSucceeded {
			p := c.Status.Progress
			if c.Status.Phase == storage.PhaseSucceeded {
				p = 100
			}
			dv.Status.Progress = cdiv1.DataVolumeProgress(fmt.Sprintf("%.2f%%", p))
		}
		for _, cond := range c.Conditions {
			dv.Status.Conditions = append(dv.Status.Conditions, cdiv1.DataVolumeCondition{
				Type: cdiv1.DataVolumeConditionType(cond.Type), Status: corev1.ConditionStatus(cond.Status), Reason: cond.Reason, Message: cond.Message})
		}
		st.DataVolumes = append(st.DataVolumes, dv)
	}
	for _, v := range d.Volumes {
		pv := corev1.PersistentVolume{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolume"},
			ObjectMeta: metav1.ObjectMeta{Name: v.Name},
		}
		pv.Spec.Capacity = corev1.ResourceList{corev1.ResourceStorage: *resource.NewQuantity(v.Capacity, resource.BinarySI)}
		pv.Spec.StorageClassName = v.Class
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimPolicy(v.ReclaimPolicy)
		mode := corev1.PersistentVolumeMode(v.VolumeMode)
		pv.Spec.VolumeMode = &mode
		if v.Claim != "" {
			ns, name, _ := strings.Cut(v.Claim, "/")
			pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: ns, Name: name}
		}
		pv.Status.Phase = corev1.PersistentVolumePhase(v.Phase)
		st.PersistentVolumes = append(st.PersistentVolumes, pv)
	}
}

// annUploadPodReady is CDI's PVC annotation saying the upload server runs.
const annUploadPodReady = "cdi.kubevirt.io/storage.pod.ready"

// splitObject splits "Kind ns/name" (or "Kind name").
func splitObject(object string) (kind, namespace, name string) {
	kind, rest, ok := strings.Cut(object, " ")
	if !ok {
		return "", "", ""
	}
	if ns, n, ok := strings.Cut(rest, "/"); ok {
		return kind, ns, n
	}
	return kind, "", rest
}
