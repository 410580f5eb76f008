package plan

import (
	"context"
	"log/slog"
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
}

// Apply walks steps in the runner's order and records a typed outcome for
// each: failures of one object do not stop the others (VMs that do not
// depend on a failed step still converge).
//
// When ctx ends (SIGTERM, Ctrl-C) the step that runs is finished, not cut
// off: a define, a file write or a guest's graceful shutdown is never left
// half done. No later step starts; each is recorded as skipped, and the
// next apply plans them again.
func Apply[S Stepper](ctx context.Context, steps []S, r Runner[S]) Report {
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	object := r.Object
	if object == nil {
		object = func(s S) string { return s.PlanStep().Object }
	}
	var rep Report
	failed := map[string]bool{}
	halted := ""
	for _, i := range sequence(steps, r.Order) {
		s := steps[i]
		st := s.PlanStep()
		out := Outcome{Step: st}
		info := r.Informational != nil && r.Informational(s)
		switch {
		case halted != "" && info:
			out.Result, out.Error = Reported, halted
		case halted != "":
			out.Result, out.Error = Skipped, halted
		case info:
			out.Result = Reported
			if r.Note != nil {
				out.Result = r.Note(s)
			}
			if out.Result == "" {
				continue
			}
		case st.Suspended:
			out.Result, out.Error = Skipped, SkipSuspended
		case failed[object(s)]:
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
			res, detail, err := r.Do(context.WithoutCancel(ctx), s)
			out.Took, out.Detail = Duration(time.Since(start)), detail
			if err != nil {
				out.Result, out.Error = Failed, err.Error()
				log.Error("action failed", "stage", st.Stage, "action", st.Action, "object", st.Object, "target", st.Target, "err", err)
				rep.Add(out)
				if key := object(s); key != "" {
					failed[key] = true
				}
				if r.Halt != nil {
					halted = r.Halt(context.WithoutCancel(ctx), s, err, &rep)
				}
				continue
			}
			out.Result = Done
			if res != "" {
				out.Result = res
			}
			log.Info("applied", "stage", st.Stage, "action", st.Action, "object", st.Object, "target", st.Target, "result", out.Result, "took", out.Took)
		}
		rep.Add(out)
	}
	return rep
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
