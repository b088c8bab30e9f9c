package judge

import (
	"time"

	"github.com/clickgate/clickgate/counter"
)

// FromDedupe returns the parameters of a judge of a store whose dedupe
// parameters are p (and its policy: the budgets and the velocity rule, a
// VelocityWindow of 0 taken as a second with no rule), with partitions per
// campaign. Every judge of a store gets its parameters from here, so that
// two stores given the same flags decide alike.
func FromDedupe(p counter.DedupeParams, partitions uint32) Params {
	velocityMax, window := p.VelocityMax, p.VelocityWindow
	if window == 0 {
		velocityMax, window = 0, time.Second
	}
	return Params{Expected: p.Expected, FP: p.FP, Partitions: partitions, Keying: p.Keying,
		VelocityMax: velocityMax, VelocityWindow: window,
		BudgetNetwork: p.BudgetNetwork, BudgetBlock: p.BudgetBlock}
}
