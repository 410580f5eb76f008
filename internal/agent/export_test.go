package agent

import (
	"context"

	"github.com/nodevirt/nodevirt/reconciler/plan"
)

// LogPlanForTest is logPlan for the external tests.
var LogPlanForTest = logPlan[plan.Step]

// IterateForTest is one reconcile of the loop (fetch, apply, record).
func (a *Agent) IterateForTest(ctx context.Context, fetch bool) { _ = a.iterate(ctx, fetch) }
