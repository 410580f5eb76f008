// Package plan is nodevirt's one plan vocabulary. A Step (stage, action,
// object, target, field changes, reason, disruptive, drift) is what every
// stage plans — host configuration, storage and VMs — and an Outcome is what
// became of it; Apply is the one loop that walks a stage's steps in its
// dependency order, skips an object's later steps after its failure and
// drift steps when self-heal is off, and records typed, timed results. A
// stage gives the loop only how to do one step and its own skip rules.
//
// Each stage's plan is plain data built from these steps: apply executes
// it, and the plan, drift and JSON outputs all render the same value.
//
// It knows no stage and does no host I/O.
package plan
