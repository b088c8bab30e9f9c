package judge

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/clickgate/clickgate/counter"
)

// msPerDay is one UTC day of the judge's clock, in milliseconds.
const msPerDay = 24 * 60 * 60 * 1000

// budgets count the qualified visits of each network (Visit.Network) and
// each block of networks (Visit.Block) per campaign, on the UTC day of the
// judge's clock, against Params.BudgetNetwork and Params.BudgetBlock.
//
// The day is the clock's, the largest Visit.At applied, like every time of
// the judge: a visit that arrives late (its At on a day the clock has
// left) counts against the clock's day, so it is counted, never let
// through because its own day's state is gone. When the clock enters a new
// day, the day before is dropped whole: memory is one entry per network
// and per block with a qualified visit today, in each campaign, about 40
// bytes each (checkpoint: 3-12 bytes). Only qualified visits make
// entries, and those are paid, so the table is bounded by what the
// campaign pays in a day, not by what an attacker sends. No entry is
// evicted early: a network that spread its visits over many others could
// otherwise reset its own count.
//
// A key of 0 is unknown (a visit logged before networks and blocks were
// recorded): it has no budget, rather than one budget that every such
// visit would share.
type budgets struct {
	network, block uint32 // the budgets; 0: none
	// day is the UTC day of the clock (days since the epoch);
	// math.MinInt64 before the first visit.
	day       int64
	campaigns map[string]*campaignBudget
	last      *campaignBudget // the campaign of the previous visit
}

// campaignBudget is one campaign's qualified visits of the day, by network
// and by block. Each count is 1 to its budget.
type campaignBudget struct {
	campaign string
	networks map[uint64]uint32
	blocks   map[uint64]uint32
}

func newBudgets(network, block int) budgets {
	return budgets{network: uint32(network), block: uint32(block), day: math.MinInt64, campaigns: make(map[string]*campaignBudget)}
}

// on reports whether any budget applies.
func (b *budgets) on() bool { return b.network > 0 || b.block > 0 }

// advance moves to the day of at (Unix milliseconds), which the clock has
// reached, dropping the day before when it is another.
func (b *budgets) advance(at int64) {
	if d := floorDiv(at, msPerDay); d != b.day {
		b.day = d
		if len(b.campaigns) > 0 {
			clear(b.campaigns)
			b.last = nil
		}
	}
}

func (b *budgets) find(campaign string) *campaignBudget {
	if b.last != nil && b.last.campaign == campaign {
		return b.last
	}
	c := b.campaigns[campaign]
	if c != nil {
		b.last = c
	}
	return c
}

// allows reports whether v's network and block are both within their
// budgets, v not counted yet.
func (b *budgets) allows(v *counter.Visit) bool {
	c := b.find(v.Campaign)
	if c == nil {
		return true
	}
	if b.network > 0 && v.Network != 0 && c.networks[v.Network] >= b.network {
		return false
	}
	return b.block == 0 || v.Block == 0 || c.blocks[v.Block] < b.block
}

// charge counts v, which qualified within budget, against its network and
// block.
func (b *budgets) charge(v *counter.Visit) {
	net, block := b.network > 0 && v.Network != 0, b.block > 0 && v.Block != 0
	if !net && !block {
		return
	}
	c := b.find(v.Campaign)
	if c == nil {
		c = &campaignBudget{campaign: strings.Clone(v.Campaign), networks: make(map[uint64]uint32), blocks: make(map[uint64]uint32)}
		b.campaigns[c.campaign] = c
		b.last = c
	}
	if net {
		c.networks[v.Network]++
	}
	if block {
		c.blocks[v.Block]++
	}
}

// sorted returns the campaigns in id order.
func (b *budgets) sorted() []*campaignBudget {
	cs := make([]*campaignBudget, 0, len(b.campaigns))
	for _, c := range b.campaigns {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(x, y *campaignBudget) int { return cmp.Compare(x.campaign, y.campaign) })
	return cs
}

// entries returns the number of networks and blocks counted.
func (b *budgets) entries() int {
	n := 0
	for _, c := range b.campaigns {
		n += len(c.networks) + len(c.blocks)
	}
	return n
}
