package agent

import "github.com/nodevirt/nodevirt/reconciler/plan"

// LogPlanForTest is logPlan for the external tests.
var LogPlanForTest = logPlan[plan.Step]
