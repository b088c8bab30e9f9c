package main

import (
	"flag"
	"math"

	"github.com/clickgate/clickgate/counter"
)

// budgetFlags are the judge's daily budgets of qualified visits per
// campaign (counter.DefaultBudgetNetwork and DefaultBudgetBlock say why
// these defaults). They are the judge's policy, which its checkpoint
// records: a start with other budgets adopts them at the checkpoint and
// logs the change, and they apply to the visits judged after it. So serve
// and flush take the same, or a flush with others changes them, until
// the next serve changes them back.
type budgetFlags struct {
	network, block *int
}

func addBudgetFlags(fs *flag.FlagSet) *budgetFlags {
	return &budgetFlags{
		network: fs.Int("budget-network", counter.DefaultBudgetNetwork, "qualified visits per client network (IPv4 address, IPv6 /64) per campaign per UTC day; more are redirected and counted as budget, not paid (20: $2.00 a day at 10 cents a visit); 0: none; a change applies from the next start on, to the visits judged after it"),
		block:   fs.Int("budget-block", counter.DefaultBudgetBlock, "qualified visits per block of networks (IPv4 /24, IPv6 /48) per campaign per UTC day, all its networks together (300: $30.00 a day); 0: none; a change applies from the next start on, to the visits judged after it"),
	}
}

// set puts the budgets in p.
func (b *budgetFlags) set(p *counter.DedupeParams) error {
	if *b.network < 0 || *b.network > math.MaxInt32 || *b.block < 0 || *b.block > math.MaxInt32 {
		return usageError("--budget-network and --budget-block must be 0 (none) to %d", math.MaxInt32)
	}
	p.BudgetNetwork, p.BudgetBlock = *b.network, *b.block
	return nil
}
