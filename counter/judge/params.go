package judge

import (
	"time"

	"github.com/clickgate/clickgate/counter"
)

// FromDedupe returns the parameters of a judge of a store whose dedupe
// parameters are p (and its budgets, --budget-network and --budget-block),
// with partitions per campaign and the velocity rule of --velocity-max and
// --velocity-window (velocityMax 0: none). Every judge
// of a store gets its parameters from here, so that two stores given the
// same flags decide alike.
func FromDedupe(p counter.DedupeParams, partitions uint32, velocityMax int, velocityWindow time.Duration) Params {
	return Params{Expected: p.Expected, FP: p.FP, Partitions: partitions, Keying: p.Keying,
		VelocityMax: velocityMax, VelocityWindow: velocityWindow,
		BudgetNetwork: p.BudgetNetwork, BudgetBlock: p.BudgetBlock}
}
