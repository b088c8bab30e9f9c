package judge

import (
	"fmt"
	"math"
)

// SetPolicy makes the judge decide the visits applied from now on by
// policy q, keeping its state: dedupe filters, counters, the velocity
// counts of its networks and the budgets spent today. Only a policy can
// change: the sizing stays (see Params). It returns an error when q is
// invalid, and leaves the judge as it was.
//
// Call it at a checkpoint: right after restoring one (UnmarshalBinary
// adopts the receiver's policy by itself) and before applying more
// visits, then take a checkpoint, which records q. So every visit is
// judged under one policy, the one of the last checkpoint before it, and
// a judge that replays the log from a checkpoint decides as the one that
// wrote it did: the same checkpoint, the same params and the same log
// still give the same decisions.
//
// The state carries over as follows:
//
//   - Budgets: a network's or block's qualified visits of the day count
//     against the new budget. A count over a lowered budget is kept at
//     the budget (it is spent either way); a budget set to 0 forgets its
//     counts; a budget that was 0 counts the qualified visits from the
//     change on.
//   - Velocity: a VelocityMax of 0 forgets every network's counts; a
//     limit that was 0 counts the visits from the change on. When
//     VelocityWindow changes, each network's counts move to the granule
//     of the new length that holds the latest moment they can stand for,
//     so no visit is forgotten sooner than the new window says (at most
//     a granule of the old length later).
func (j *Judge) SetPolicy(q Policy) error {
	if _, err := j.p.WithPolicy(q).size(); err != nil {
		return fmt.Errorf("invalid judge policy: %w", err)
	}
	j.setPolicy(q)
	return nil
}

// setPolicy adopts q, which is valid.
func (j *Judge) setPolicy(q Policy) {
	old := j.p.Policy()
	if q == old {
		return
	}
	j.p = j.p.WithPolicy(q)
	if q.VelocityWindow != old.VelocityWindow {
		j.vel.retime(newVelocity(q.VelocityMax, q.VelocityWindow.Milliseconds()).gran, j.clock)
	}
	j.vel.max = uint32(q.VelocityMax)
	if q.VelocityMax == 0 {
		j.vel.forget()
	}
	j.bud.set(q.BudgetNetwork, q.BudgetBlock)
}

// retime moves the counts to granules of gran milliseconds, the judge's
// clock at clock: the visits counted in a granule of the old length are
// counted in the granule of the new length that holds the last
// millisecond of the old one (or the clock, if sooner), and dropped when
// that granule is past already.
func (vc *velocity) retime(gran, clock int64) {
	old, oldGran, oldCur := vc.nets, vc.gran, vc.cur
	vc.gran = gran
	vc.nets = make([]netEntry, 0, vc.len())
	vc.forget()
	if oldCur == math.MinInt64 {
		return // no visit yet
	}
	vc.cur = vc.granule(clock)
	for _, e := range old {
		if e.n.g == droppedGranule {
			continue
		}
		n := e.n
		n.roll(oldCur)
		moved := netCount{g: math.MinInt64}
		for x := oldCur - lanes + 1; x <= oldCur; x++ {
			c := n.lanes[floorMod(x, lanes)]
			if c == 0 {
				continue
			}
			last := clock
			if x < oldCur {
				// Below the clock's granule, so no overflow upwards; one
				// downwards (a clock near math.MinInt64) wraps above the
				// clock, which min catches.
				last = min((x+1)*oldGran-1, clock)
			}
			g := floorDiv(last, gran)
			if g <= vc.cur-lanes {
				continue
			}
			l := &moved.lanes[floorMod(g, lanes)]
			*l = uint16(min(uint32(*l)+uint32(c), math.MaxUint16))
			moved.g = max(moved.g, g)
		}
		if moved.g != math.MinInt64 {
			vc.add(e.key, moved)
		}
	}
}

// set changes the budgets to network and block, keeping each count of
// the day within its budget.
func (b *budgets) set(network, block int) {
	b.network, b.block = uint32(network), uint32(block)
	for name, c := range b.campaigns {
		c.networks.clamp(b.network)
		c.blocks.clamp(b.block)
		if c.networks.len() == 0 && c.blocks.len() == 0 {
			delete(b.campaigns, name)
		}
	}
	b.last = nil
}
