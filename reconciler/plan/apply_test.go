package plan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// rows renders outcomes as "action object result[: error]" lines.

// Actions of an imaginary stage (besides the shared keep, hold and wait):
// the loop knows no stage's own.
const (
	Create Action = "create"
	Update Action = "update"
	Start  Action = "start"
	Delete Action = "delete"
)

func outcomeRows(rep Report) []string {
	var out []string
	for _, o := range rep.Outcomes {
		s := string(o.Action) + " " + o.Object + " " + string(o.Result)
		if o.Error != "" {
			s += ": " + o.Error
		}
		out = append(out, s)
	}
	return out
}

func step(a Action, object string, drift bool) Step {
	return Step{Stage: StageVM, Action: a, Object: object, Target: object, Drift: drift}
}

// Steps run action by action in the stage's order; an object's later steps
// are skipped after its failure while other objects go on; drift waits for
// self-heal; unlisted actions are neither run nor recorded.
func TestApply_orderFailureAndDrift(t *testing.T) {
	steps := []Step{
		step(Start, "a", false), step(Start, "b", false), step(Create, "a", false), step(Create, "b", false),
		step(Update, "c", true), step(Keep, "d", false),
	}
	var ran []string
	rep := Apply(context.Background(), steps, Runner[Step]{
		Order: []Action{Create, Update, Start},
		Do: func(_ context.Context, s Step) (Result, string, error) {
			ran = append(ran, string(s.Action)+" "+s.Object)
			if s.Action == Create && s.Object == "a" {
				return "", "", errors.New("define failed")
			}
			return "", "", nil
		},
	})
	want := []string{
		"create a failed: define failed",
		"create b done",
		"update c skipped: " + SkipSelfHealOff,
		"start a skipped: " + SkipAfterFailure,
		"start b done",
	}
	if d := cmp.Diff(want, outcomeRows(rep)); d != "" {
		t.Fatalf("outcomes (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"create a", "create b", "start b"}, ran); d != "" {
		t.Fatalf("ran (-want +got):\n%s", d)
	}
	if rep.Failed != 1 || rep.Count(Done) != 2 {
		t.Fatalf("failed %d, done %d", rep.Failed, rep.Count(Done))
	}
	for _, o := range rep.Outcomes {
		if o.Stage != StageVM || o.Target != o.Object {
			t.Fatalf("the outcome must carry its step: %+v", o)
		}
	}
}

// A halt stops the apply at the failed step: the stage may add outcomes
// (a rollback), later steps are skipped, informational ones reported; a
// stage's wait rule and result override are recorded as they say.
func TestApply_haltWaitAndNotes(t *testing.T) {
	steps := []Step{
		step(Create, "a", false), step(Start, "b", false), step(Update, "c", false),
		step(Delete, "d", false), step(Hold, "e", false), step(Wait, "f", false),
	}
	rep := Apply(context.Background(), steps, Runner[Step]{
		Object:        func(Step) string { return "" },
		Informational: func(s Step) bool { return s.Action == Hold || s.Action == Wait },
		Note: func(s Step) Result {
			if s.Action == Wait {
				return "" // left out
			}
			return Held
		},
		Wait: func(s Step) string {
			if s.Object == "b" {
				return "backing off"
			}
			return ""
		},
		Do: func(_ context.Context, s Step) (Result, string, error) {
			if s.Object == "c" {
				return "", "", errors.New("boom")
			}
			return AtBoot, "offline", nil
		},
		Halt: func(_ context.Context, s Step, err error, rep *Report) string {
			rep.Add(Outcome{Step: Step{Action: "rollback"}, Result: Failed, Error: "undo: " + err.Error()})
			return "rolled back"
		},
	})
	want := []string{
		"create a at-boot",
		"start b skipped: backing off",
		"update c failed: boom",
		"rollback  failed: undo: boom",
		"delete d skipped: rolled back",
		"hold e reported: rolled back",
		"wait f reported: rolled back",
	}
	if d := cmp.Diff(want, outcomeRows(rep)); d != "" {
		t.Fatalf("outcomes (-want +got):\n%s", d)
	}
	if rep.Outcomes[0].Detail != "offline" || rep.Failed != 2 {
		t.Fatalf("detail %q, failed %d", rep.Outcomes[0].Detail, rep.Failed)
	}
}

// Took reads and writes as the reports always showed it.
func TestDuration_text(t *testing.T) {
	o := Outcome{Step: step(Start, "a", false), Result: Done, Took: Duration(1234567890)}
	b, err := jsonRoundTrip(o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.raw, `"took":"1.235s"`) || b.back.Took.String() != "1.235s" || b.back.Result != Done || b.back.Stage != StageVM {
		t.Fatalf("json %s, read back %+v", b.raw, b.back)
	}
	if s := Duration(0).String(); s != "" {
		t.Fatalf("a step that did not run took %q", s)
	}
}

type roundTrip struct {
	raw  string
	back Outcome
}

func jsonRoundTrip(o Outcome) (roundTrip, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return roundTrip{}, err
	}
	var back Outcome
	err = json.Unmarshal(b, &back)
	return roundTrip{string(b), back}, err
}

// A stop (the context ends) during a step lets that step finish with a
// live context, starts no later step and records each as skipped.
func TestApply_stopFinishesTheRunningStep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	steps := []Step{step(Create, "a", false), step(Create, "b", false), step(Start, "a", false)}
	var ran []string
	rep := Apply(ctx, steps, Runner[Step]{
		Do: func(ctx context.Context, s Step) (Result, string, error) {
			ran = append(ran, string(s.Action)+" "+s.Object)
			if s.Object == "a" && s.Action == Create {
				cancel() // SIGTERM arrives while a is being defined
				if err := ctx.Err(); err != nil {
					return "", "", fmt.Errorf("the running step was cut off: %w", err)
				}
			}
			return Done, "", nil
		},
	})
	want := []string{
		"create a done",
		"create b skipped: " + SkipStopping,
		"start a skipped: " + SkipStopping,
	}
	if d := cmp.Diff(want, outcomeRows(rep)); d != "" {
		t.Fatalf("outcomes (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"create a"}, ran); d != "" {
		t.Fatalf("ran (-want +got):\n%s", d)
	}
}

// A suspended step is recorded as skipped for the suspension and never
// run; the object's other steps are not held back by it, nor are other
// objects'.
func TestApply_suspendedStepsAreNotRun(t *testing.T) {
	steps := []Step{step(Create, "a", false), step(Create, "b", false), step(Update, "c", true), step(Start, "a", false)}
	steps[0].Suspended, steps[2].Suspended = true, true
	var ran []string
	rep := Apply(context.Background(), steps, Runner[Step]{
		SelfHeal: func(Step) bool { return true },
		Do: func(_ context.Context, s Step) (Result, string, error) {
			ran = append(ran, string(s.Action)+" "+s.Object)
			return "", "", nil
		},
	})
	want := []string{
		"create a skipped: " + SkipSuspended,
		"create b done",
		"update c skipped: " + SkipSuspended,
		"start a done",
	}
	if d := cmp.Diff(want, outcomeRows(rep)); d != "" {
		t.Fatalf("outcomes (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"create b", "start a"}, ran); d != "" {
		t.Fatalf("ran (-want +got):\n%s", d)
	}
	if !rep.Outcomes[2].Drift {
		t.Fatal("a suspended drift step is still reported as drift")
	}
}
