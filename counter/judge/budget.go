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
// and per block with a qualified visit today, in each campaign, about 50
// bytes each (checkpoint: 9-13 bytes). Only qualified visits make
// entries, and those are paid, so the table is bounded by what the
// campaign pays in a day, not by what an attacker sends. No entry is
// evicted early: a network that spread its visits over many others could
// otherwise reset its own count. The counts are kept in the order their
// keys were first counted (keyCounts), which a checkpoint keeps.
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
	networks keyCounts
	blocks   keyCounts
}

// keyCounts are counts by key (a network or a block), the keys in the
// order they were first counted. The log decides that order, so a
// checkpoint writes the counts in it: a walk of a slice, where writing
// them in key order sorted every key of the day (400,000 networks took it
// 70-90 ms of CPU, on the cores the redirects share).
type keyCounts struct {
	counts []keyCount
	// index is the position of each key in counts; nil until a key is
	// looked up (Clone leaves it out).
	index map[uint64]int32
}

type keyCount struct {
	key uint64
	n   uint32
}

func (k *keyCounts) len() int { return len(k.counts) }

func (k *keyCounts) indexed() map[uint64]int32 {
	if k.index == nil {
		k.index = make(map[uint64]int32, len(k.counts))
		for i, c := range k.counts {
			k.index[c.key] = int32(i)
		}
	}
	return k.index
}

// get returns the count of key, 0 when it has none.
func (k *keyCounts) get(key uint64) uint32 {
	if i, ok := k.indexed()[key]; ok {
		return k.counts[i].n
	}
	return 0
}

// add adds n to the count of key, a new key coming last.
func (k *keyCounts) add(key uint64, n uint32) {
	index := k.indexed()
	if i, ok := index[key]; ok {
		k.counts[i].n += n
		return
	}
	index[key] = int32(len(k.counts))
	k.counts = append(k.counts, keyCount{key, n})
}

// clamp keeps every count at most budget, and drops them all when budget
// is 0 (none).
func (k *keyCounts) clamp(budget uint32) {
	if budget == 0 {
		*k = keyCounts{}
		return
	}
	for i := range k.counts {
		k.counts[i].n = min(k.counts[i].n, budget)
	}
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
	if b.network > 0 && v.Network != 0 && c.networks.get(v.Network) >= b.network {
		return false
	}
	return b.block == 0 || v.Block == 0 || c.blocks.get(v.Block) < b.block
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
		c = &campaignBudget{campaign: strings.Clone(v.Campaign)}
		b.campaigns[c.campaign] = c
		b.last = c
	}
	if net {
		c.networks.add(v.Network, 1)
	}
	if block {
		c.blocks.add(v.Block, 1)
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
		n += c.networks.len() + c.blocks.len()
	}
	return n
}
