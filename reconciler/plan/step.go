package plan

import (
	"fmt"
	"time"
)

// Stage names the part of the node a step belongs to. Stages apply in the
// order of Stages: host configuration and devices before the storage that
// lives on them, storage before the VMs that use it.
type Stage string

const (
	StageHost    Stage = "host"
	StageStorage Stage = "storage"
	StageVM      Stage = "vm"
)

// Stages lists every stage in apply order.
var Stages = [...]Stage{StageHost, StageStorage, StageVM}

// Action is what a step does. Each stage declares its own actions as
// constants of this type (the VM stage's are in this package).
type Action string

// Actions every stage shares: steps that change nothing by themselves and
// say why (drift reports and exit codes read them the same for each stage).
const (
	// Keep: the source object is invalid; what was applied from it stays.
	Keep Action = "keep"
	// Hold: a removal stopped by the prune guard or a file that failed to
	// parse; it needs confirmation or a fixed revision.
	Hold Action = "hold"
	// Wait: nothing can be done until something else happens.
	Wait Action = "wait"
	// Conflict: something nodevirt does not own is in the way.
	Conflict Action = "conflict"
)

// Step is one typed step of a plan, whatever its stage.
type Step struct {
	Stage  Stage  `json:"stage"`
	Action Action `json:"action"`
	// Object is the manifest the step comes from, e.g. "VirtualMachine
	// default/web", "DataVolume default/disk" or "MachineConfig 50-vfio".
	Object string `json:"object"`
	// Target is what the step works on: a domain, a path, a unit, a device.
	Target  string   `json:"target"`
	Changes []Change `json:"changes,omitempty"`
	Reason  string   `json:"reason"`
	// Disruptive steps interrupt something running: a guest, a service, a
	// device taken from its driver.
	Disruptive bool `json:"disruptive,omitempty"`
	// Drift marks steps that undo an out-of-band change; they run only with
	// self-heal on.
	Drift bool `json:"drift,omitempty"`
	// Suspended: reconciliation of the step's object, or of the whole node,
	// is suspended (Flux's suspend): the step is planned and reported, drift
	// included, and never applied.
	Suspended bool `json:"suspended,omitempty"`
}

// PlanStep returns the step itself; a stage's richer step embeds Step and
// so satisfies Stepper.
func (s Step) PlanStep() Step { return s }

// Stepper is a stage's step: the shared Step plus what that stage's apply
// needs to do it.
type Stepper interface {
	PlanStep() Step
}

// Result is what became of one step.
type Result string

const (
	Done    Result = "done"
	Skipped Result = "skipped"
	Failed  Result = "failed"
	// RolledBack: the step was done, then undone with the rest of its
	// transaction (the host's files, units and kernel arguments).
	RolledBack Result = "rolled-back"
	// AtBoot: systemd is not running; the unit takes effect at boot.
	AtBoot Result = "at-boot"
	// NotApplicable: the step ran and did not apply to this host (a
	// SELinux-guarded unit on a host without SELinux).
	NotApplicable Result = "not-applicable"
	// Reported: an informational step, recorded and not run.
	Reported Result = "reported"
	// Held: a removal the prune guard or a failed parse stopped.
	Held Result = "held"
)

// Duration is how long a step took; it reads and writes as Go's duration
// text rounded to the millisecond ("12ms"), as the reports always showed,
// and as "" for a step that did not run (tables leave the column blank).
type Duration time.Duration

func (d Duration) String() string {
	if d == 0 {
		return ""
	}
	return time.Duration(d).Round(time.Millisecond).String()
}

// MarshalText writes the rounded duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a duration as MarshalText writes it.
func (d *Duration) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("took: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Outcome is what happened to one step.
type Outcome struct {
	Step
	Result Result `json:"result"`
	Error  string `json:"error,omitempty"`
	// Detail is what the step found, e.g. a unit's end state.
	Detail string   `json:"detail,omitempty"`
	Took   Duration `json:"took,omitempty"`
}

// Report is what one apply of a stage did.
type Report struct {
	Outcomes []Outcome `json:"outcomes"`
	Failed   int       `json:"failed"`
}

// Add records an outcome, counting it when it failed.
func (r *Report) Add(o Outcome) {
	if o.Result == Failed {
		r.Failed++
	}
	r.Outcomes = append(r.Outcomes, o)
}

// Append adds the outcomes of another apply of the same stage (the storage
// teardown after its setup).
func (r *Report) Append(o Report) {
	r.Outcomes = append(r.Outcomes, o.Outcomes...)
	r.Failed += o.Failed
}

// Count returns how many outcomes have result res.
func (r Report) Count(res Result) int {
	n := 0
	for _, o := range r.Outcomes {
		if o.Result == res {
			n++
		}
	}
	return n
}
