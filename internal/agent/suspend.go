package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/host"
	"github.com/nodevirt/nodevirt/reconciler/plan"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/reconciler/vm"
)

const (
	// bucketSuspended holds the suspensions asked for by command or API:
	// object (as plan steps name it) → suspensionRecord; keyNode is the
	// whole node's (no object name is a lone "*").
	bucketSuspended = "suspended"
	keyNode         = "*"
)

// Where a suspension comes from.
const (
	SuspendedByState      = "state"
	SuspendedByAnnotation = "annotation"
)

// Suspension is one suspended reconciliation.
type Suspension struct {
	// Object is as plan steps name it ("VirtualMachine default/web"); ""
	// is the whole node.
	Object string `json:"object"`
	// Source is SuspendedByState (Suspend) or SuspendedByAnnotation (the
	// object's nodevirt.io/reconcile: disabled in the source).
	Source string `json:"source"`
	// Since is when Suspend was asked; zero for an annotation.
	Since time.Time `json:"since,omitzero"`
}

type suspensionRecord struct {
	Since time.Time `json:"since"`
}

// WithState gives the agent the state database it keeps its own records
// in (suspensions). Open does this; an agent without one can be suspended
// only by annotation.
func (a *Agent) WithState(kv vm.KV) *Agent { a.state = kv; return a }

// objectKinds maps the accepted kind names, lower-cased, to the kind.
var objectKinds = map[string]string{
	"vm": "VirtualMachine", "vmi": "VirtualMachineInstance", "dv": "DataVolume",
	"pvc": "PersistentVolumeClaim", "pv": "PersistentVolume",
}

func init() {
	for _, k := range []string{"VirtualMachine", "VirtualMachineInstance", "DataVolume", "PersistentVolumeClaim", "PersistentVolume"} {
		objectKinds[strings.ToLower(k)] = k
	}
}

// clusterScoped kinds have no namespace.
var clusterScoped = map[string]bool{"PersistentVolume": true}

// ParseObject reads an object as commands name it, KIND/NAME or
// KIND/NAMESPACE/NAME (kinds vm, vmi, dv, pvc, pv or their full names, in
// any case; the namespace defaults to defaultNamespace, then "default"),
// and returns it as plan steps name it: "VirtualMachine default/web". The
// steps' own form is accepted as well.
func ParseObject(s, defaultNamespace string) (string, error) {
	if defaultNamespace == "" {
		defaultNamespace = "default"
	}
	kind, rest, spaced := strings.Cut(strings.TrimSpace(s), " ")
	if !spaced {
		kind, rest, _ = strings.Cut(s, "/")
	}
	full, ok := objectKinds[strings.ToLower(kind)]
	if !ok {
		return "", fmt.Errorf("object %q: unknown kind %q (want vm, vmi, dv, pvc, pv, or VirtualMachine, VirtualMachineInstance, DataVolume, PersistentVolumeClaim, PersistentVolume)", s, kind)
	}
	parts := strings.Split(rest, "/")
	for _, p := range parts {
		if p == "" {
			return "", fmt.Errorf("object %q: want KIND/NAME or KIND/NAMESPACE/NAME", s)
		}
	}
	switch {
	case len(parts) == 1 && clusterScoped[full]:
		return full + " " + parts[0], nil
	case len(parts) == 1:
		return full + " " + defaultNamespace + "/" + parts[0], nil
	case len(parts) == 2 && clusterScoped[full]:
		return "", fmt.Errorf("object %q: %s is cluster-scoped; want %s/NAME", s, full, kind)
	case len(parts) == 2:
		return full + " " + parts[0] + "/" + parts[1], nil
	}
	return "", fmt.Errorf("object %q: want KIND/NAME or KIND/NAMESPACE/NAME", s)
}

// defaultNamespace is the namespace objects that name none are given.
func (a *Agent) defaultNamespace() string {
	if ns := a.cfg.Manifests.DefaultNamespace; ns != "" {
		return ns
	}
	return "default"
}

// Suspend suspends reconciliation, as Flux's suspend does: of the whole
// node when object is "", else of one object (see ParseObject). A
// suspended node still fetches, renders and plans, so drift and status stay
// current, and applies nothing; a suspended object's steps are planned and
// reported as skipped. It is kept in the state database until Resume.
func (a *Agent) Suspend(ctx context.Context, object string) (ActionResult, error) {
	return a.setSuspended(ctx, object, true)
}

// Resume undoes Suspend. An object suspended by its annotation in the
// source stays suspended until the annotation goes.
func (a *Agent) Resume(ctx context.Context, object string) (ActionResult, error) {
	return a.setSuspended(ctx, object, false)
}

func (a *Agent) setSuspended(ctx context.Context, object string, suspend bool) (ActionResult, error) {
	res := ActionResult{Action: "resume", Object: object}
	if suspend {
		res.Action = "suspend"
	}
	key := keyNode
	if object != "" {
		obj, err := ParseObject(object, a.defaultNamespace())
		if err != nil {
			return res, err
		}
		res.Object, key = obj, obj
	}
	if a.state == nil {
		return res, errors.New("suspensions are kept in the state database, which this run did not open")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old, err := a.state.Get(bucketSuspended, key)
	if err != nil {
		return res, fmt.Errorf("read suspension of %s: %w", describeObject(res.Object), err)
	}
	switch {
	case suspend && old == nil:
		b, err := json.Marshal(suspensionRecord{Since: time.Now().UTC()})
		if err != nil {
			return res, err
		}
		if err := a.state.Put(bucketSuspended, key, b); err != nil {
			return res, fmt.Errorf("suspend %s: %w", describeObject(res.Object), err)
		}
		res.Changed = true
	case !suspend && old != nil:
		if err := a.state.Delete(bucketSuspended, key); err != nil {
			return res, fmt.Errorf("resume %s: %w", describeObject(res.Object), err)
		}
		res.Changed = true
	}
	res.Message = a.suspendMessage(ctx, res.Object, suspend, res.Changed)
	a.log.Info("reconciliation "+res.Action+"d", "object", describeObject(res.Object), "changed", res.Changed)
	if !suspend && res.Changed {
		a.Kick() // a running loop catches up now, as Flux's resume reconciles
	}
	return res, nil
}

// suspendMessage says what a suspend or resume means for object, with what
// the last rendering of the source knows of it.
func (a *Agent) suspendMessage(ctx context.Context, object string, suspend, changed bool) string {
	var msg string
	switch {
	case suspend && !changed:
		msg = "already suspended"
	case suspend:
		msg = "reconciliation suspended: it is planned and reported, nothing of it is applied"
	case !changed:
		msg = "was not suspended"
	default:
		msg = "reconciliation resumed"
	}
	n := a.node.Load()
	if object == "" || n == nil || n.Set == nil {
		return msg
	}
	for _, o := range n.Set.Objects {
		if o.Ref.String() != object {
			continue
		}
		if !suspend && o.Annotations[desired.AnnotationReconcile] == desired.ReconcileDisabled {
			msg += "; it stays suspended by its " + desired.AnnotationReconcile + " annotation in the source"
		}
		return msg
	}
	return msg + fmt.Sprintf("; note: %s is not in the source at revision %s", object, n.Revision)
}

func describeObject(object string) string {
	if object == "" {
		return "the node"
	}
	return object
}

// Suspensions reports whether the whole node is suspended and which
// objects are, by Suspend or by annotation in the last rendering of the
// source, sorted. SuspensionList says which comes from where.
func (a *Agent) Suspensions() (global bool, objects []string, err error) {
	list, err := a.SuspensionList()
	if err != nil {
		return false, nil, err
	}
	seen := map[string]bool{}
	for _, s := range list {
		switch {
		case s.Object == "":
			global = true
		case !seen[s.Object]:
			seen[s.Object] = true
			objects = append(objects, s.Object)
		}
	}
	sort.Strings(objects)
	return global, objects, nil
}

// SuspensionList lists every suspension: the node's first, then objects
// by name, an object suspended both ways once per source.
func (a *Agent) SuspensionList() ([]Suspension, error) {
	var out []Suspension
	if a.state != nil {
		err := a.state.ForEach(bucketSuspended, func(k string, v []byte) error {
			var r suspensionRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("suspension of %s: %w", k, err)
			}
			obj := k
			if k == keyNode {
				obj = ""
			}
			out = append(out, Suspension{Object: obj, Source: SuspendedByState, Since: r.Since})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read suspensions: %w", err)
		}
	}
	if n := a.node.Load(); n != nil {
		out = append(out, annotated(n)...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Object != out[j].Object {
			return out[i].Object < out[j].Object
		}
		return out[i].Source > out[j].Source // state before annotation
	})
	return out, nil
}

// annotated lists the objects of n suspended by annotation.
func annotated(n *Node) []Suspension {
	if n == nil || n.Set == nil {
		return nil
	}
	var out []Suspension
	for _, o := range n.Set.Objects {
		if o.Annotations[desired.AnnotationReconcile] == desired.ReconcileDisabled {
			out = append(out, Suspension{Object: o.Ref.String(), Source: SuspendedByAnnotation})
		}
	}
	return out
}

// suspension is what one apply may not touch.
type suspension struct {
	global bool
	// objects maps a suspended object to where its suspension comes from.
	objects map[string]string
}

// suspension reads what is suspended for n: the state's suspensions and
// n's annotations.
func (a *Agent) suspension(n *Node) (suspension, error) {
	s := suspension{objects: map[string]string{}}
	if a.state != nil {
		err := a.state.ForEach(bucketSuspended, func(k string, _ []byte) error {
			if k == keyNode {
				s.global = true
			} else {
				s.objects[k] = SuspendedByState
			}
			return nil
		})
		if err != nil {
			return s, fmt.Errorf("read suspensions: %w", err)
		}
	}
	for _, o := range annotated(n) {
		if s.objects[o.Object] == "" {
			s.objects[o.Object] = o.Source
		}
	}
	return s, nil
}

func (s suspension) of(object string) bool { return s.global || s.objects[object] != "" }

// log says, once per apply, that reconciliation is suspended.
func (s suspension) log(ctx context.Context, log *slog.Logger) {
	if s.global {
		log.InfoContext(ctx, "reconciliation is suspended: planning only, nothing is applied until resumed")
	}
	if len(s.objects) > 0 {
		objs := make([]string, 0, len(s.objects))
		for o, src := range s.objects {
			objs = append(objs, o+" ("+src+")")
		}
		sort.Strings(objs)
		log.InfoContext(ctx, "reconciliation of objects is suspended", "objects", objs)
	}
}

func (s suspension) markHost(p *host.Plan) {
	for i := range p.Actions {
		p.Actions[i].Suspended = s.of(p.Actions[i].Object)
	}
}

func (s suspension) markStorage(p *storage.Plan) {
	for i := range p.Actions {
		p.Actions[i].Suspended = s.of(p.Actions[i].Object)
	}
}

func (s suspension) markVMs(p *vm.Planned) {
	for i := range p.Actions {
		p.Actions[i].Suspended = s.of(p.Actions[i].Object)
	}
}

// skipAll records every step of a suspended node as skipped, without
// running the stage (a stage's apply also does work of its own around its
// steps, which a suspended node must not do either).
func skipAll[S plan.Stepper](steps []S) plan.Report {
	var rep plan.Report
	for _, s := range steps {
		rep.Add(plan.Outcome{Step: s.PlanStep(), Result: plan.Skipped, Error: plan.SkipSuspended})
	}
	return rep
}
