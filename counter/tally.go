package counter

import (
	"cmp"
	"hash/maphash"
	"slices"
	"sync"
)

// tally holds counts that need no dedupe until they are flushed to the
// store. It is sharded by campaign and creator, so that clicks on
// different links never wait for one mutex (BenchmarkNote, -cpu 1,2,4).
type tally struct {
	shards [tallyShards]tallyShard
	seed   maphash.Seed
}

const tallyShards = 64

type tallyShard struct {
	mu sync.Mutex
	m  map[tallyKey]int64
	// taken is what take moved out of m, by reason, less what restore
	// put back: m plus taken is every count ever added to the shard, for
	// total, kept without a word of work per add.
	taken Counts
	_     [128 - (16+8*NumReasons)%128]byte // shards on their own cache lines: no false sharing
}

// tallyKey is one counter of a creator's, of one of their links (link
// "" for a click counted without one).
type tallyKey struct {
	campaign, creator, link string
	day                     Day
	reason                  Reason
}

func newTally() *tally {
	t := &tally{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[tallyKey]int64)
	}
	return t
}

// shard picks by creator alone: campaigns of one creator share a shard,
// which costs nothing, and one string hash is cheaper than two.
func (t *tally) shard(creator string) *tallyShard {
	return &t.shards[maphash.String(t.seed, creator)%tallyShards]
}

// add adds n to k. It does not allocate once k has been seen in the
// current flush interval.
func (t *tally) add(k tallyKey, n int64) {
	s := t.shard(k.creator)
	s.mu.Lock()
	s.m[k] += n
	s.mu.Unlock()
}

// take returns every count tallied since the last take and zeroes it; a
// key idle for a whole interval is dropped.
func (t *tally) take() []Count {
	var counts []Count
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for k, n := range s.m {
			if n == 0 {
				delete(s.m, k)
				continue
			}
			counts = append(counts, Count{Campaign: k.campaign, Creator: k.creator, Link: k.link, Day: k.day, Reason: k.reason, N: n})
			s.m[k] = 0
			s.taken[k.reason] += n
		}
		s.mu.Unlock()
	}
	return counts
}

// restore adds counts back, after the store refused them.
func (t *tally) restore(counts []Count) {
	for _, c := range counts {
		s := t.shard(c.Creator)
		s.mu.Lock()
		s.m[tallyKey{c.Campaign, c.Creator, c.Link, c.Day, c.Reason}] += c.N
		s.taken[c.Reason] -= c.N
		s.mu.Unlock()
	}
}

// total returns every count ever added, by reason, taken or not: each
// shard's under its lock, so a take or a restore under way never shows
// as a count that goes down.
func (t *tally) total() Counts {
	var c Counts
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		c.Add(&s.taken)
		for k, n := range s.m {
			c[k.reason] += n
		}
		s.mu.Unlock()
	}
	return c
}

// pending returns the counts of creator of campaign not taken yet, by
// day, oldest first.
func (t *tally) pending(campaign, creator string) []DayCounts {
	var days []DayCounts
	s := t.shard(creator)
	s.mu.Lock()
	for k, n := range s.m {
		if n == 0 || k.campaign != campaign || k.creator != creator {
			continue
		}
		i, found := slices.BinarySearchFunc(days, k.day, func(d DayCounts, day Day) int { return cmp.Compare(d.Day, day) })
		if !found {
			days = slices.Insert(days, i, DayCounts{Day: k.day})
		}
		days[i].Counts[k.reason] += n
	}
	s.mu.Unlock()
	return days
}
