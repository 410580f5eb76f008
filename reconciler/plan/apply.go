package plan

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Reasons the apply loop records on steps it does not run.
const (
	SkipAfterFailure = "an earlier action for this object failed"
	SkipSelfHealOff  = "self-heal is off; drift reported only"
	SkipStopping     = "not started: nodevirt is stopping (it runs on the next apply or run)"
	SkipSuspended    = "reconciliation suspended"
)

// Runner is what a stage gives Apply: how to do one of its steps, and the
// stage's own rules. Everything else (order, skips, timing, results, logs)
// is the loop's, so every stage reports the same way.
type Runner[S Stepper] struct {
	// Order lists the stage's actions in dependency order: steps run action
	// by action, those of one action in plan order, and steps whose action
	// is not listed are neither run nor recorded. Nil runs every step in
	// plan order (the stage's planner sorted them).
	Order []Action
	// Object names what a step belongs to: once a step failed, the later
	// steps of its object are skipped (no start of a VM whose define
	// failed). Nil means the step's Object; "" exempts a step.
	Object func(S) string
	// SelfHeal reports whether a drift step may run; nil: never.
	SelfHeal func(S) bool
	// Informational reports whether a step changes nothing by itself: it
	// is recorded as Note says and never run. Nil: every step runs.
	Informational func(S) bool
	// Note records an informational step and returns its result; ""
	// leaves it out of the report. Nil: Reported.
	Note func(S) Result
	// Wait returns why a step may not run yet (say, a start backoff); ""
	// runs it.
	Wait func(S) string
	// Do does one step. A result other than "" or Done (at-boot,
	// not-applicable) is recorded instead of Done, and so is the detail.
	Do func(ctx context.Context, s S) (Result, string, error)
	// Halt is asked after a step failed: a non-empty answer stops the apply
	// there (a transaction failed and was undone; it may add outcomes to
	// rep) and is recorded on every later step, as skipped (informational
	// ones as reported). Nil: an apply never halts.
	Halt func(ctx context.Context, s S, err error, rep *Report) string
	// Log receives one line per step run; nil discards them.
	Log *slog.Logger
	// Parallel is how many objects may have a step running at once; 0 or
	// 1 runs one step at a time, action by action. Above 1, each object's
	// steps run one after the other in Order on one worker (a VM starts
	// right after its own define, not after every define), objects run
	// side by side, and only Do runs outside the loop's lock: the other
	// callbacks are never called concurrently. Outcomes stay in the order
	// a sequential apply records them.
	Parallel int
	// Fences are actions of Order whose steps start only once every step
	// of the actions before them ended, when steps run in parallel (deletes
	// after every define and start, so a rename never leaves the node
	// without the service).
	Fences []Action
}

// Apply walks steps in the runner's order and records a typed outcome for
// each: failures of one object do not stop the others (VMs that do not
// depend on a failed step still converge).
//
// When ctx ends (SIGTERM, Ctrl-C) the step that runs is finished, not cut
// off: a define, a file write or a guest's graceful shutdown is never left
// half done. No later step starts; each is recorded as skipped, and the
// next apply plans them again.
//
// With r.Parallel above 1, objects apply side by side (see Runner); the
// report is the same a sequential apply would record.
func Apply[S Stepper](ctx context.Context, steps []S, r Runner[S]) Report {
	a := &applier[S]{r: r, log: r.Log, object: r.Object, failed: map[string]bool{}}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.object == nil {
		a.object = func(s S) string { return s.PlanStep().Object }
	}
	seq := sequence(steps, r.Order)
	if r.Parallel > 1 {
		return a.parallel(ctx, steps, seq)
	}
	var rep Report
	for _, i := range seq {
		a.step(ctx, steps[i], &rep)
	}
	return rep
}

// applier holds what one Apply learns as it goes.
type applier[S Stepper] struct {
	r      Runner[S]
	log    *slog.Logger
	object func(S) string
	// mu guards failed and halted, and serializes every callback but Do,
	// when steps run in parallel.
	mu     sync.Mutex
	failed map[string]bool
	halted string
}

// step decides, runs and records one step into rep. In parallel it is
// called without a.mu held: it takes the lock itself, releasing it only
// around Do.
func (a *applier[S]) step(ctx context.Context, s S, rep *Report) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.r
	st := s.PlanStep()
	out := Outcome{Step: st}
	info := r.Informational != nil && r.Informational(s)
	switch {
	case a.halted != "" && info:
		out.Result, out.Error = Reported, a.halted
	case a.halted != "":
		out.Result, out.Error = Skipped, a.halted
	case info:
		out.Result = Reported
		if r.Note != nil {
			out.Result = r.Note(s)
		}
		if out.Result == "" {
			return
		}
	case st.Suspended:
		out.Result, out.Error = Skipped, SkipSuspended
	case a.failed[a.object(s)]:
		out.Result, out.Error = Skipped, SkipAfterFailure
	case st.Drift && (r.SelfHeal == nil || !r.SelfHeal(s)):
		out.Result, out.Error = Skipped, SkipSelfHealOff
	case ctx.Err() != nil:
		out.Result, out.Error = Skipped, SkipStopping
	default:
		if why := wait(r, s); why != "" {
			out.Result, out.Error = Skipped, why
			break
		}
		start := time.Now()
		a.mu.Unlock()
		res, detail, err := r.Do(context.WithoutCancel(ctx), s)
		a.mu.Lock()
		out.Took, out.Detail = Duration(time.Since(start)), detail
		if err != nil {
			out.Result, out.Error = Failed, err.Error()
			a.log.Error("action failed", "stage", st.Stage, "action", st.Action, "object", st.Object, "target", st.Target, "err", err)
			rep.Add(out)
			if key := a.object(s); key != "" {
				a.failed[key] = true
			}
			if r.Halt != nil && a.halted == "" {
				a.halted = r.Halt(context.WithoutCancel(ctx), s, err, rep)
			}
			return
		}
		out.Result = Done
		if res != "" {
			out.Result = res
		}
		a.log.Info("applied", "stage", st.Stage, "action", st.Action, "object", st.Object, "target", st.Target, "result", out.Result, "took", out.Took)
	}
	rep.Add(out)
}

// parallel runs seq phase by phase (Fences split it), each phase's objects
// on at most r.Parallel workers, and assembles the outcomes in seq's order.
func (a *applier[S]) parallel(ctx context.Context, steps []S, seq []int) Report {
	// outs[k] holds what seq[k] recorded: none (a note left out), its own
	// outcome, or more when Halt added some after it.
	outs := make([]Report, len(seq))
	slots := make(chan struct{}, a.r.Parallel)
	for _, phase := range a.phases(steps, seq) {
		var wg sync.WaitGroup
		for _, group := range a.groups(steps, seq, phase) {
			run := func() {
				for _, k := range group {
					a.step(ctx, steps[seq[k]], &outs[k])
				}
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				// Nothing new starts: the steps are recorded as skipped
				// without a worker.
				run()
				continue
			}
			wg.Add(1)
			go func() {
				defer func() { <-slots; wg.Done() }()
				run()
			}()
		}
		wg.Wait()
	}
	var rep Report
	for _, o := range outs {
		rep.Append(o)
	}
	return rep
}

// phases splits the positions of seq where a fenced action begins.
func (a *applier[S]) phases(steps []S, seq []int) [][]int {
	var out [][]int
	var cur []int
	var last Action
	for k, i := range seq {
		act := steps[i].PlanStep().Action
		if k > 0 && act != last && slices.Contains(a.r.Fences, act) && len(cur) > 0 {
			out = append(out, cur)
			cur = nil
		}
		last = act
		cur = append(cur, k)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// groups returns phase's positions by object, each object's in seq order,
// objects in the order of their first step; a step exempt from its object
// ("" key) is a group of its own.
func (a *applier[S]) groups(steps []S, seq, phase []int) [][]int {
	var out [][]int
	at := map[string]int{}
	for _, k := range phase {
		key := a.object(steps[seq[k]])
		if key == "" {
			out = append(out, []int{k})
			continue
		}
		g, ok := at[key]
		if !ok {
			g = len(out)
			at[key] = g
			out = append(out, nil)
		}
		out[g] = append(out[g], k)
	}
	return out
}

func wait[S Stepper](r Runner[S], s S) string {
	if r.Wait == nil {
		return ""
	}
	return r.Wait(s)
}

// sequence returns the indices of steps in the order they run.
func sequence[S Stepper](steps []S, order []Action) []int {
	seq := make([]int, 0, len(steps))
	if order == nil {
		for i := range steps {
			seq = append(seq, i)
		}
		return seq
	}
	for _, a := range order {
		for i, s := range steps {
			if s.PlanStep().Action == a {
				seq = append(seq, i)
			}
		}
	}
	return seq
}
