package judge

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// Params are what a judge decides by. No field has a default: each is set
// explicitly, from the same flags on every node, and checkpoints record
// them all.
//
// They are of two kinds. The sizing (Expected, FP, Partitions, Keying)
// decides the layout of the judge's state, its filters' bits above all:
// it is fixed for the life of a store, and UnmarshalBinary refuses a
// checkpoint of another sizing (ErrParams). The policy (VelocityMax,
// VelocityWindow, BudgetNetwork, BudgetBlock; see Policy) only decides
// what a visit is: it may change at a checkpoint, and applies to the
// visits judged after the checkpoint it was adopted at (SetPolicy).
type Params struct {
	// Expected is how many distinct visitors one campaign is expected to
	// have per dedupe window, all partitions together
	// (--dedupe-expected). Each partition's filter of a window is sized
	// for 2 × Expected keys, since a new visitor inserts two (Visit.Key
	// and Visit.Also), and partitions split a campaign by creator: one
	// creator may bring most of its visitors, so no partition can be
	// sized for a share of them. More keys than that add layers to the
	// filter, up to MaxLayers (see WindowFill). Required.
	Expected uint64
	// FP bounds the false-positive rate of a window's filter: the chance
	// that a new visitor is judged a duplicate (--dedupe-fp), however many
	// visitors came, until the window is Full (see WindowFill). Required,
	// between 0 and 1.
	FP float64
	// Partitions is the number of partitions per campaign (see
	// Partition). It cannot change while a campaign runs. Required, 1 to
	// 65536.
	Partitions uint32
	// VelocityMax is how many person visits one network (Visit.Network)
	// may make within VelocityWindow in this partition; the visits past it
	// are counter.Velocity (--velocity-max). 1 to 65534, or 0: no
	// velocity rule.
	VelocityMax int
	// VelocityWindow is the window of VelocityMax (--velocity-window).
	// Required, 1s to 7 days, whole milliseconds.
	VelocityWindow time.Duration
	// BudgetNetwork is how many qualified visits one network
	// (Visit.Network: an IPv4 address, an IPv6 /64) may have per UTC day
	// of the judge's clock in one campaign of this partition; the visits
	// past it that would have qualified are counter.Budget
	// (--budget-network). 0 to 2^31-1; 0: no network budget.
	BudgetNetwork int
	// BudgetBlock is the same for a block of networks (Visit.Block: an
	// IPv4 /24, an IPv6 /48), usually larger (--budget-block). 0 to
	// 2^31-1; 0: no block budget.
	BudgetBlock int
	// Keying identifies the secret that keys visitor and network keys (a
	// fingerprint, never the secret), like counter.DedupeParams.Keying:
	// filters built from keys of another secret would count every
	// visitor again. Optional, at most 256 bytes.
	Keying string
}

// Validate returns an error naming the first invalid field.
func (p Params) Validate() error {
	_, err := p.size()
	return err
}

// size returns the layers of a window's filter.
func (p Params) size() ([]layerSize, error) {
	switch {
	case p.Expected == 0:
		return nil, errors.New("expected visitors must be positive")
	case !(p.FP > 0 && p.FP < 1):
		return nil, fmt.Errorf("false-positive rate %v must be between 0 and 1", p.FP)
	case p.Partitions == 0 || p.Partitions > 1<<16:
		return nil, fmt.Errorf("partitions %d must be 1 to 65536", p.Partitions)
	case p.VelocityMax < 0 || p.VelocityMax > math.MaxUint16-1:
		return nil, fmt.Errorf("velocity max %d must be 0 (none) to %d", p.VelocityMax, math.MaxUint16-1)
	case p.VelocityWindow < time.Second || p.VelocityWindow > 7*24*time.Hour || p.VelocityWindow%time.Millisecond != 0:
		return nil, fmt.Errorf("velocity window %s must be 1s to 168h in whole milliseconds", p.VelocityWindow)
	case p.BudgetNetwork < 0 || p.BudgetNetwork > math.MaxInt32:
		return nil, fmt.Errorf("network budget %d must be 0 (none) to %d", p.BudgetNetwork, math.MaxInt32)
	case p.BudgetBlock < 0 || p.BudgetBlock > math.MaxInt32:
		return nil, fmt.Errorf("block budget %d must be 0 (none) to %d", p.BudgetBlock, math.MaxInt32)
	case len(p.Keying) > maxStringLen:
		return nil, fmt.Errorf("keying of %d bytes; the limit is %d", len(p.Keying), maxStringLen)
	}
	sizes, err := layerSizes(2*float64(p.Expected), p.FP)
	if err != nil {
		return nil, fmt.Errorf("expected visitors %d at rate %v need filters of %w; the limit is 2^32", p.Expected, p.FP, err)
	}
	return sizes, nil
}

// SameSizing reports whether p and q have the same sizing: Expected, FP,
// Partitions and Keying, which decide the layout of a judge's state, so
// that a checkpoint of one can be resumed by a judge of the other.
func (p Params) SameSizing(q Params) bool {
	return p.Expected == q.Expected && math.Float64bits(p.FP) == math.Float64bits(q.FP) &&
		p.Partitions == q.Partitions && p.Keying == q.Keying
}

// SizingString is String of the sizing alone: what stores that share
// judges record and compare, since the policy may change.
func (p Params) SizingString() string {
	return fmt.Sprintf("expected=%d fp=%v partitions=%d keying=%q", p.Expected, p.FP, p.Partitions, p.Keying)
}

// Policy returns p's policy.
func (p Params) Policy() Policy {
	return Policy{VelocityMax: p.VelocityMax, VelocityWindow: p.VelocityWindow, BudgetNetwork: p.BudgetNetwork, BudgetBlock: p.BudgetBlock}
}

// WithPolicy returns p with the policy q.
func (p Params) WithPolicy(q Policy) Params {
	p.VelocityMax, p.VelocityWindow, p.BudgetNetwork, p.BudgetBlock = q.VelocityMax, q.VelocityWindow, q.BudgetNetwork, q.BudgetBlock
	return p
}

func (p Params) String() string {
	return fmt.Sprintf("expected=%d fp=%v partitions=%d velocity_max=%d velocity_window=%s budget_network=%d budget_block=%d keying=%q",
		p.Expected, p.FP, p.Partitions, p.VelocityMax, p.VelocityWindow, p.BudgetNetwork, p.BudgetBlock, p.Keying)
}

// Policy is the part of Params that decides what a visit is, apart from
// the layout of the state that remembers visits: the fields of the same
// names in Params, which document them. A judge adopts another policy at
// a checkpoint (SetPolicy, UnmarshalBinary), keeping its state.
type Policy struct {
	VelocityMax    int
	VelocityWindow time.Duration
	BudgetNetwork  int
	BudgetBlock    int
}

func (q Policy) String() string {
	return fmt.Sprintf("velocity_max=%d velocity_window=%s budget_network=%d budget_block=%d",
		q.VelocityMax, q.VelocityWindow, q.BudgetNetwork, q.BudgetBlock)
}

// Judge decides the visits of one partition's log, in log order, from its
// own state alone. It is not safe for concurrent use: one goroutine owns
// it, as one process owns the partition.
type Judge struct {
	p      Params
	clock  int64 // largest Visit.At seen, Unix ms; math.MinInt64 before any
	offset []byte
	win    windows
	vel    velocity
	bud    budgets
	cnt    counters // by creator
	links  counters // by link, of the visits with one
	// batches are the ids of the last batches applied (NewBatch).
	batches batches
}

// New returns an empty judge, or an error when p is invalid.
func New(p Params) (*Judge, error) {
	sizes, err := p.size()
	if err != nil {
		return nil, fmt.Errorf("invalid judge parameters: %w", err)
	}
	return newJudge(p, sizes), nil
}

func newJudge(p Params, sizes []layerSize) *Judge {
	return &Judge{
		p:     p,
		clock: math.MinInt64,
		win:   newWindows(sizes),
		vel:   newVelocity(p.VelocityMax, p.VelocityWindow.Milliseconds()),
		bud:   newBudgets(p.BudgetNetwork, p.BudgetBlock),
		cnt:   newCounters(false),
		links: newCounters(true),
	}
}

// Params returns the judge's parameters.
func (j *Judge) Params() Params { return j.p }

// Apply decides visits in order, writes each one's reason into out[i] and
// counts it by (campaign, creator, day, reason), and by (campaign,
// creator, link, day, reason) when Visit.Link is set:
//
//   - counter.Velocity: the visit's network made more than VelocityMax
//     visits within VelocityWindow, this one included. It does not enter
//     the dedupe filter.
//   - counter.Duplicate: the visit's Key is in its window's filter.
//   - counter.Budget: it is not, and the visit's network already had
//     BudgetNetwork qualified visits in the campaign on the clock's UTC
//     day, or its block BudgetBlock. It does not enter the filter (see
//     below).
//   - counter.Qualified: it is not, within budget; it counts against
//     its network's and block's budgets. Key, and Also when HasAlso, are
//     added to the filter for a duplicate and a qualified visit.
//   - counter.OutOfWindow: the visit's window was dropped (the clock has
//     passed Visit.Expires) before the visit reached the judge, so it
//     cannot be told from an earlier visit of the same visitor; it is not
//     paid rather than maybe paid twice.
//
// A visit refused for its budget stays out of the filter (Key and Also),
// as one refused for velocity does. The refusal is about its network's
// day, not about the visitor, so a later visit of that person by a key
// the filter does not hold (on another day of a longer window, say) may
// still qualify, once. That pays nobody twice: only a visit that enters
// the filter can qualify, and the visitor's next visit by that key finds
// it there. And a flood of rotated User-Agents past the budget adds none
// of its own keys to the window's filter: it fills the filter at most
// half as fast as visits that qualify (the edge still marks the cookie
// it set with a MarkOnly visit, which no budget refuses), so it raises
// the false duplicates of honest visitors less. Like every decision
// here, it depends on the judge's state alone.
//
// A MarkOnly visit adds its keys and is counted nowhere, not even by
// velocity or budgets: out[i] says whether Key was new (Qualified) or
// known (Duplicate), as Store.Commit does, or OutOfWindow.
//
// out must be at least as long as visits.
func (j *Judge) Apply(visits []counter.Visit, out []counter.Reason) {
	if len(out) < len(visits) {
		panic(fmt.Sprintf("BUG: judge.Apply of %d visits into %d reasons", len(visits), len(out)))
	}
	var n counter.Counts
	for i := range visits {
		out[i] = j.apply(&visits[i])
		if !visits[i].MarkOnly && out[i] < counter.NumReasons {
			n[out[i]]++
		}
	}
	for r, c := range n {
		if c > 0 {
			decided[r].Add(c)
		}
	}
}

// decided counts the visits decided by every judge of the process, by
// reason, for clickgate_clicks_total: once per batch, off the hot path.
var decided [counter.NumReasons]atomic.Int64

// Decided returns the visits (not MarkOnly) that the judges of this
// process decided since it started, by reason. A visit decided again, by a
// judge replaying its log after a restart or a handover, is counted again.
func Decided() counter.Counts {
	var c counter.Counts
	for r := range decided {
		c[r] = decided[r].Load()
	}
	return c
}

func (j *Judge) apply(v *counter.Visit) counter.Reason {
	if v.At > j.clock {
		j.advance(v.At)
	}
	if !v.MarkOnly && j.p.VelocityMax > 0 && !j.vel.hit(v.Network) {
		j.count(v, counter.Velocity)
		return counter.Velocity
	}
	r := j.decide(v)
	if !v.MarkOnly {
		j.count(v, r)
	}
	return r
}

// count counts v for reason r: for its creator, and for its link when it
// has one.
func (j *Judge) count(v *counter.Visit, r counter.Reason) {
	j.cnt.add(v, r)
	if v.Link != "" {
		j.links.add(v, r)
	}
}

// decide returns what v is, past velocity, and adds its keys to the
// filter unless it is refused.
func (j *Judge) decide(v *counter.Visit) counter.Reason {
	now := floorDiv(j.clock, 1000)
	budgeted := !v.MarkOnly && j.bud.on()
	if budgeted && !j.bud.allows(v) {
		// Over budget: refused, unless a duplicate, without entering the
		// filter (see Apply). A window not made yet holds no key.
		w := j.win.peek(v)
		if w == nil && v.Expires > now || w != nil && !j.win.has(w, &v.Key) {
			return counter.Budget
		}
	}
	w := j.win.get(v, now)
	if w == nil {
		return counter.OutOfWindow
	}
	r := counter.Qualified
	if j.win.add(w, &v.Key) {
		r = counter.Duplicate
	}
	if v.HasAlso {
		j.win.add(w, &v.Also)
	}
	if r == counter.Qualified && budgeted {
		j.bud.charge(v)
	}
	return r
}

// advance moves the clock to at, later than it, and drops the windows,
// networks and budget days that it leaves behind.
func (j *Judge) advance(at int64) {
	j.clock = at
	if sec := floorDiv(at, 1000); sec >= j.win.next {
		j.win.expire(sec)
	}
	if g := j.vel.granule(at); g > j.vel.cur {
		j.vel.advance(g)
	}
	j.bud.advance(at)
}

// Clock returns the largest Visit.At applied (Unix milliseconds), the
// judge's only notion of time, or math.MinInt64 before the first visit.
func (j *Judge) Clock() int64 { return j.clock }

// SetOffset records the log position that the visits applied so far reach.
// The judge does not read it; it is saved in the checkpoint, so that a
// judge restored from it resumes the log where the checkpoint stops. It is
// copied, and at most 256 bytes.
func (j *Judge) SetOffset(o []byte) {
	if len(o) > maxStringLen {
		panic(fmt.Sprintf("BUG: judge offset of %d bytes; the limit is %d", len(o), maxStringLen))
	}
	j.offset = append(j.offset[:0], o...)
}

// Offset returns a copy of the offset last set, or nil.
func (j *Judge) Offset() []byte { return slices.Clone(j.offset) }

// Counts returns the counters, one entry per (campaign, creator, day) with
// any count, ordered by campaign, creator and day.
func (j *Judge) Counts() []CreatorDay { return j.cnt.sorted() }

// LinkCounts returns the counters of links, one entry per (campaign,
// creator, link, day) with any count, ordered by campaign, creator, link
// and day. A visit without a link (logged before links were) is in Counts
// alone, so a creator's link rows sum to at most their Counts.
func (j *Judge) LinkCounts() []CreatorDay { return j.links.sorted() }

// Creator returns one creator's counts in one campaign by day, oldest
// first: what the store's Stats adds to its own counters.
func (j *Judge) Creator(campaign, creator string) []counter.DayCounts {
	return j.cnt.days(campaign, creator, "")
}

// Link returns the counts of link code of creator in campaign by day,
// oldest first.
func (j *Judge) Link(campaign, creator, code string) []counter.DayCounts {
	if code == "" {
		return []counter.DayCounts{}
	}
	return j.links.days(campaign, creator, code)
}
