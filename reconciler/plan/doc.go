// Package plan compares desired state with what the hypervisor reports and
// returns a Plan: an ordered list of typed actions with field-level changes.
// The plan is data; apply executes it and the plan, drift and JSON outputs all
// render the same value.
//
// It is pure (no host I/O) and must not import runtime drivers.
package plan
