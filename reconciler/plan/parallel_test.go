package plan

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// objectSteps returns create, start for each of n objects "o00".. and a
// delete of each of the objects in deletes, in plan order.
func objectSteps(n int, deletes ...string) []Step {
	var steps []Step
	for i := range n {
		steps = append(steps, step(Create, fmt.Sprintf("o%02d", i), false))
	}
	for i := range n {
		steps = append(steps, step(Start, fmt.Sprintf("o%02d", i), false))
	}
	for _, d := range deletes {
		steps = append(steps, step(Delete, d, false))
	}
	return steps
}

// journal records what each object's Do calls saw, safe for concurrent use.
type journal struct {
	mu  sync.Mutex
	ran map[string][]Action
}

func (j *journal) add(s Step) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.ran == nil {
		j.ran = map[string][]Action{}
	}
	j.ran[s.Object] = append(j.ran[s.Object], s.Action)
}

// At most Parallel objects run at once, and more than one does; each
// object's steps run in their order, one after the other.
func TestApply_parallelHonoursTheLimit(t *testing.T) {
	const n, limit = 12, 3
	var inFlight, peak atomic.Int32
	var j journal
	rep := Apply(context.Background(), objectSteps(n), Runner[Step]{
		Order:    []Action{Create, Start},
		Parallel: limit,
		Do: func(_ context.Context, s Step) (Result, string, error) {
			now := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				p := peak.Load()
				if now <= p || peak.CompareAndSwap(p, now) {
					break
				}
			}
			j.add(s)
			time.Sleep(10 * time.Millisecond)
			return "", "", nil
		},
	})
	if p := peak.Load(); p > limit || p < 2 {
		t.Fatalf("%d steps ran at once; want 2..%d", p, limit)
	}
	if rep.Count(Done) != 2*n || rep.Failed != 0 {
		t.Fatalf("done %d, failed %d; want %d done", rep.Count(Done), rep.Failed, 2*n)
	}
	for i := range n {
		o := fmt.Sprintf("o%02d", i)
		if d := cmp.Diff([]Action{Create, Start}, j.ran[o]); d != "" {
			t.Fatalf("steps of %s (-want +got):\n%s", o, d)
		}
	}
}

// However the workers finish, the report lists the outcomes as a
// sequential apply of the same steps does; a failed object skips only its
// own later steps.
func TestApply_parallelReportsInPlanOrder(t *testing.T) {
	const n = 8
	steps := objectSteps(n, "gone")
	steps = append(steps, step(Hold, "held", false))
	run := func(parallel int) (Report, *journal) {
		var j journal
		rep := Apply(context.Background(), steps, Runner[Step]{
			Order:         []Action{Create, Start, Delete, Hold},
			Fences:        []Action{Delete},
			Parallel:      parallel,
			Informational: func(s Step) bool { return s.Action == Hold },
			Note:          func(Step) Result { return Held },
			Do: func(_ context.Context, s Step) (Result, string, error) {
				j.add(s)
				// Later objects finish first.
				var i int
				fmt.Sscanf(s.Object, "o%d", &i)
				time.Sleep(time.Duration(n-i) * 2 * time.Millisecond)
				if s.Object == "o03" && s.Action == Create {
					return "", "", errors.New("define refused")
				}
				return "", "", nil
			},
		})
		return rep, &j
	}
	seqRep, _ := run(0)
	parRep, j := run(4)
	if d := cmp.Diff(outcomeRows(seqRep), outcomeRows(parRep)); d != "" {
		t.Fatalf("parallel outcomes differ from sequential ones (-seq +par):\n%s", d)
	}
	if parRep.Failed != 1 || parRep.Count(Skipped) != 1 || parRep.Count(Held) != 1 {
		t.Fatalf("failed %d, skipped %d, held %d; want 1 each:\n%v", parRep.Failed, parRep.Count(Skipped), parRep.Count(Held), outcomeRows(parRep))
	}
	if got := outcomeRows(parRep)[n+3]; got != "start o03 skipped: "+SkipAfterFailure {
		t.Fatalf("the failed object's start: %q", got)
	}
	if d := cmp.Diff([]Action{Create}, j.ran["o03"]); d != "" {
		t.Fatalf("the failed object ran (-want +got):\n%s", d)
	}
	for _, o := range []string{"o02", "o04"} {
		if d := cmp.Diff([]Action{Create, Start}, j.ran[o]); d != "" {
			t.Fatalf("%s was held back by another object's failure (-want +got):\n%s", o, d)
		}
	}
}

// A fenced action (deletes) starts only once every earlier step ended:
// a rename's new VM is up before the old one goes.
func TestApply_parallelDeletesAfterEverythingElse(t *testing.T) {
	const n = 10
	var others, ended atomic.Int32
	var early []string
	var mu sync.Mutex
	rep := Apply(context.Background(), objectSteps(n, "old1", "old2"), Runner[Step]{
		Order:    []Action{Create, Start, Delete},
		Fences:   []Action{Delete},
		Parallel: 4,
		Do: func(_ context.Context, s Step) (Result, string, error) {
			if s.Action == Delete {
				if e, r := ended.Load(), others.Load(); e != 2*n || r != 0 {
					mu.Lock()
					early = append(early, fmt.Sprintf("%s with %d of %d other steps ended, %d running", s.Object, e, 2*n, r))
					mu.Unlock()
				}
				return "", "", nil
			}
			others.Add(1)
			time.Sleep(5 * time.Millisecond)
			others.Add(-1)
			ended.Add(1)
			return "", "", nil
		},
	})
	if len(early) > 0 {
		t.Fatalf("deletes started early: %v", early)
	}
	if rep.Count(Done) != 2*n+2 {
		t.Fatalf("done %d, want %d", rep.Count(Done), 2*n+2)
	}
}

// A stop during a parallel apply lets the running steps finish and starts
// no new one: every step not begun is recorded as skipped.
func TestApply_parallelStopStartsNothingNew(t *testing.T) {
	const n, limit = 10, 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	var j journal
	rep := Apply(ctx, objectSteps(n), Runner[Step]{
		Order:    []Action{Create, Start},
		Parallel: limit,
		Do: func(live context.Context, s Step) (Result, string, error) {
			calls.Add(1)
			j.add(s)
			if s.Object != "o00" {
				// The steps begun beside o00's last until the stop.
				<-ctx.Done()
				return "", "", nil
			}
			cancel()
			time.Sleep(20 * time.Millisecond)
			if err := live.Err(); err != nil {
				return "", "", fmt.Errorf("the running step was cut off: %w", err)
			}
			return "", "", nil
		},
	})
	if c := calls.Load(); c > limit {
		t.Fatalf("%d steps ran; at most the %d running when the stop came may", c, limit)
	}
	rows := outcomeRows(rep)
	if rows[0] != "create o00 done" {
		t.Fatalf("the running step: %q", rows[0])
	}
	if len(rows) != 2*n || rep.Count(Done)+rep.Count(Skipped) != 2*n {
		t.Fatalf("every step must be recorded, done or skipped: %v", rows)
	}
	for _, o := range rep.Outcomes {
		if o.Result == Skipped && o.Error != SkipStopping {
			t.Fatalf("skipped for %q, want %q", o.Error, SkipStopping)
		}
	}
	if got := j.ran["o00"]; len(got) != 1 {
		t.Fatalf("o00 ran %v after the stop", got)
	}
}
