// Package plan is nodevirt's one plan vocabulary. A Step (stage, action,
// object, target, field changes, reason, disruptive, drift) is what every
// stage plans — host configuration, storage and VMs — and an Outcome is what
// became of it; Apply is the one loop that walks a stage's steps in its
// dependency order, skips an object's later steps after its failure and
// drift steps when self-heal is off, and records typed, timed results. A
// stage gives the loop only how to do one step and its own skip rules.
//
// The VM stage's comparison lives here too: Diff compares desired state with
// what the hypervisor reports and returns that stage's Plan. Plans are data:
// apply executes them and the plan, drift and JSON outputs all render the
// same value.
//
// It is pure (no host I/O) and must not import runtime drivers.
package plan
