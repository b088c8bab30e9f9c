package judge

import (
	"cmp"
	"math"
	"slices"
)

// lanes is how many granules a network's count is kept in: the current
// one and the lanes-1 before it, which span at least VelocityWindow.
const lanes = 8

// velocity counts person visits per network (Visit.Network) in sliding
// windows of time, by the judge's clock.
//
// Each network seen within the last lanes granules (granule =
// ceil(VelocityWindow / 7)) has one saturating 16-bit count per granule,
// in a ring. A visit is counted in the granule of the judge's clock (the
// largest Visit.At seen so far, the visit's own included) and its
// network's count is the sum of its lanes: the current granule and the 7
// before it. So a visit is counted for at least VelocityWindow and at most
// VelocityWindow + VelocityWindow/7 (+1 ms of rounding) of judge time:
// never under-counted, and a network is allowed again after a quiet
// window and a granule. A visit that arrives out of order (its At before
// the clock) is counted in the clock's granule, so it is kept longer,
// never shorter. The count is exact, not a sketch: two networks never
// share a count.
//
// Memory: a network is dropped as soon as all its granules are past, so
// the table holds the networks that made a visit within the last 8
// granules, about 50 bytes each (checkpoint: 10-13 bytes). That is bounded
// by the visits the log carries in a window; nothing an attacker sends
// costs more than one entry per visit, and no entry is evicted early,
// which would let a farm that also spreads over throw-away networks reset
// its own count.
//
// The networks are kept in a slice, in the order they were first counted
// (since they were last dropped), which the log decides, as the budgets'
// counts are: a checkpoint writes them in that order, and a copy copies
// the slice. Kept in a map, they had to be sorted for the checkpoint and
// the map cloned for the copy: with 1M networks and the day's budgets, a
// checkpoint took 166-177 ms to marshal instead of 33-35, and 25-28 ms to
// copy instead of 7-8 (BenchmarkMarshalBinary/1M, BenchmarkClone/1M, one
// core). Looking a network up costs a map probe and a slice index, one
// step more than the map's value: BenchmarkApply/new went from 276-277 to
// 293-309 ns a visit.
type velocity struct {
	max  uint32
	gran int64 // milliseconds per granule
	// cur is the granule of the judge's clock; math.MinInt64 before the
	// first visit.
	cur int64
	// nets are the networks kept and, marked dropped until the next
	// compact, those dropped since.
	nets    []netEntry
	dropped int
	// index is the position in nets of each network kept; nil until a
	// network is looked up (a Clone leaves it out).
	index map[uint64]int32
	// latest[g%lanes] lists the networks whose latest granule became g,
	// for the live granules g, so that dropping the networks of a granule
	// that passes visits only them (a sweep of the whole table at every
	// granule cost 120-160 ns per visit in BenchmarkApply/new). A network
	// whose latest granule moved on since is in two lists and is dropped
	// from the later one.
	latest [lanes][]uint64
}

type netEntry struct {
	key uint64
	n   netCount
}

// droppedGranule marks an entry of velocity.nets dropped: no granule
// counted is math.MinInt64.
const droppedGranule = math.MinInt64

type netCount struct {
	g     int64 // the latest granule counted; lane g%lanes holds it
	lanes [lanes]uint16
}

func newVelocity(max int, window int64) velocity {
	return velocity{
		max:  uint32(max),
		gran: (window + lanes - 2) / (lanes - 1),
		cur:  math.MinInt64,
	}
}

// granule returns the granule of at (Unix milliseconds).
func (vc *velocity) granule(at int64) int64 {
	return floorDiv(at, vc.gran)
}

// len is the number of networks kept.
func (vc *velocity) len() int { return len(vc.nets) - vc.dropped }

func (vc *velocity) indexed() map[uint64]int32 {
	if vc.index == nil {
		vc.index = make(map[uint64]int32, vc.len())
		for i, e := range vc.nets {
			if e.n.g != droppedGranule {
				vc.index[e.key] = int32(i)
			}
		}
	}
	return vc.index
}

// advance moves the current granule to g, later than cur, and drops the
// networks whose granules are all past: those whose latest granule is at
// or before g-lanes.
func (vc *velocity) advance(g int64) {
	if vc.cur == math.MinInt64 || g-vc.cur >= lanes {
		vc.forget()
	} else {
		index := vc.indexed()
		for x := vc.cur - lanes + 1; x <= g-lanes; x++ {
			l := &vc.latest[floorMod(x, lanes)]
			for _, key := range *l {
				if i, ok := index[key]; ok && vc.nets[i].n.g == x {
					delete(index, key)
					vc.nets[i].n.g = droppedGranule
					vc.dropped++
				}
			}
			*l = (*l)[:0]
		}
		if vc.dropped > len(vc.nets)/2 {
			vc.compact()
		}
	}
	vc.cur = g
}

// compact removes the dropped entries, keeping the others in order: once
// half the entries are dropped, so that each costs O(1).
func (vc *velocity) compact() {
	index := vc.indexed()
	w := 0
	for _, e := range vc.nets {
		if e.n.g != droppedGranule {
			index[e.key] = int32(w)
			vc.nets[w] = e
			w++
		}
	}
	vc.nets, vc.dropped = vc.nets[:w], 0
}

// forget drops every network's counts.
func (vc *velocity) forget() {
	vc.nets, vc.dropped = vc.nets[:0], 0
	clear(vc.index)
	for i := range vc.latest {
		vc.latest[i] = vc.latest[i][:0]
	}
}

// add records the network key, not kept, with its counts n.
func (vc *velocity) add(key uint64, n netCount) {
	vc.indexed()[key] = int32(len(vc.nets))
	vc.nets = append(vc.nets, netEntry{key, n})
	vc.listLatest(key, n.g)
}

func (vc *velocity) listLatest(key uint64, g int64) {
	l := &vc.latest[floorMod(g, lanes)]
	*l = append(*l, key)
}

// hit counts one visit of the network key in the current granule and
// reports whether the network is within VelocityMax, this visit included.
func (vc *velocity) hit(key uint64) bool {
	i, ok := vc.indexed()[key]
	if !ok {
		n := netCount{g: vc.cur}
		n.lanes[floorMod(vc.cur, lanes)] = 1
		vc.add(key, n)
		return 1 <= vc.max
	}
	n := &vc.nets[i].n
	if n.g != vc.cur {
		n.roll(vc.cur)
		vc.listLatest(key, vc.cur)
	}
	if l := &n.lanes[floorMod(vc.cur, lanes)]; *l < math.MaxUint16 {
		*l++
	}
	return n.sum() <= vc.max
}

// roll moves n to granule g, at or after n.g, clearing the lanes of the
// granules in between, which had no visit.
func (n *netCount) roll(g int64) {
	if g-n.g >= lanes {
		n.lanes = [lanes]uint16{}
	} else {
		for x := n.g + 1; x <= g; x++ {
			n.lanes[floorMod(x, lanes)] = 0
		}
	}
	n.g = g
}

func (n *netCount) sum() uint32 {
	var s uint32
	for _, c := range n.lanes {
		s += uint32(c)
	}
	return s
}

// floorDiv is a/b rounded down, b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// floorMod is a mod b in [0, b), b > 0.
func floorMod(a, b int64) int64 {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}

// sorted returns the networks kept in key order, for a checkpoint of
// format version 5 or before.
func (vc *velocity) sorted() []netEntry {
	out := make([]netEntry, 0, vc.len())
	for _, e := range vc.nets {
		if e.n.g != droppedGranule {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b netEntry) int { return cmp.Compare(a.key, b.key) })
	return out
}
