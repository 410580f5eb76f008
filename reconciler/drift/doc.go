// Package drift reads plans as reports of how the host differs from the
// source: per object a status (drifted, pending, missing, extra, ...) for
// `nodevirt drift`, and the one rule that decides whether a step of a plan
// is a difference at all, which `plan --exit-code` and `drift --exit-code`
// both use.
package drift
