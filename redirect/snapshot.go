package redirect

// The table's snapshots: the links served, spread over shards, and the
// catalog state that a refresh applies changes with.

import (
	"fmt"
	"maps"
	"runtime"
	"slices"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/clickid"
)

// The links are spread over maps, the shards: a change copies the one it
// touches, so applying it costs the links of a shard, not the table's
// (BenchmarkCreateLink in redirect/admin). Their number, a power of two,
// grows with the table to keep at most about linksPerShard links in each.
// With a fixed 1,024, a bulk import of 10,000 links, which a node's polls
// apply a few hundred links at a time as its chunks commit (the benchmark
// applies 40 steps of 256), copied a quarter of the table at each step:
// 1.1-1.2 s and 510 MB on a node with 1M links served, against 114-143 ms
// and 36 MB with 32,768 shards (BenchmarkApplyImport, both in one run). A
// lookup in those 1M links then took 220 ns against 182-190
// (BenchmarkLookup, random codes back to back: every one a cache miss).
const (
	minShards     = 1024
	maxShards     = 1 << 16
	linksPerShard = 32
)

// shardsFor is the number of shards for n links.
func shardsFor(n int) int {
	s := minShards
	for s < maxShards && s*linksPerShard < n {
		s *= 2
	}
	return s
}

// yieldEvery is how many links a refresh applies between two yields to
// the redirects.
const yieldEvery = 128

type snapshot struct {
	version uint64
	epoch   string
	last    string // the change that made version, if known
	n       int    // links served
	// shards hold the links served, by hashCode modulo their number: a
	// power of two, at least minShards.
	shards []map[string]*Entry
}

// lookup returns the entry of code, or nil.
func (s *snapshot) lookup(code string) *Entry { return s.shards[s.shardOf(code)][code] }

// shardOf returns the shard of code.
func (s *snapshot) shardOf(code string) int {
	return int(hashCode(code) & uint32(len(s.shards)-1))
}

// hashCode is FNV-1a of code.
func hashCode[T string | []byte](code T) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(code); i++ {
		h ^= uint32(code[i])
		h *= 16777619
	}
	return h
}

// older refuses next when it lacks a link that cur serves: links are
// never deleted, so such a catalog is an older one, whatever its version
// says. A link disabled since is not lacking: st, next's state, holds it.
// A catalog restored into a reset store holds every link again and is
// taken, even under a lower version.
func older(cur, next *snapshot, st *catalogState, version uint64) error {
	for _, m := range cur.shards {
		for code := range m {
			if next.lookup(code) == nil && (st.orphans[code] == nil || !st.orphans[code].Disabled) {
				return fmt.Errorf("%w: link %q and maybe others are missing from version %d (served: %d); the store was reset or failed over to a stale replica: serving the last catalog until it is restored",
					ErrCatalogReset, code, version, cur.version)
			}
		}
	}
	return nil
}

type creatorID struct{ campaign, id string }

// catalogState is what the table knows of the catalog beyond the served
// entries, to apply changes: the campaigns and creators, and the codes of
// each creator's links.
type catalogState struct {
	campaigns map[string]*counter.Campaign
	creators  map[creatorID]*counter.Creator
	codes     map[creatorID][]string
	// orphans are links that cannot be served (an unknown campaign or
	// creator, a malformed code or id); a later change may make them so.
	orphans map[string]*counter.Link
}

func newCatalogState() *catalogState {
	return &catalogState{campaigns: map[string]*counter.Campaign{}, creators: map[creatorID]*counter.Creator{},
		codes: map[creatorID][]string{}, orphans: map[string]*counter.Link{}}
}

// apply returns a snapshot of cur with the changes, copying only the
// shards they touch, and updates st. Links the admin API could not have
// made (over-long ids, bad codes, missing campaign or creator) are not
// served; those newly so are returned: serving them could break the hot
// path's invariants.
func (st *catalogState) apply(cur *snapshot, campaigns []counter.Campaign, creators []counter.Creator, links []counter.Link) (next *snapshot, dropped []string) {
	next = &snapshot{version: cur.version, epoch: cur.epoch, n: cur.n}
	want := max(len(cur.shards), shardsFor(cur.n+len(links)))
	// copied[i] is true once next.shards[i] is next's own, to change.
	copied := make([]bool, want)
	if want == len(cur.shards) {
		next.shards = slices.Clone(cur.shards)
	} else {
		next.shards = reshard(cur, want, copied)
	}
	hint := 0 // links of each shard new to the table: a whole catalog sizes the maps once
	if cur.n == 0 {
		hint = len(links)/want + len(links)/want/4
	}
	shard := func(code string) map[string]*Entry {
		i := next.shardOf(code)
		if !copied[i] {
			copied[i] = true
			if m := next.shards[i]; m != nil {
				next.shards[i] = maps.Clone(m)
			} else {
				next.shards[i] = make(map[string]*Entry, hint)
			}
		}
		return next.shards[i]
	}
	// place serves l if it can be, or keeps it as an orphan.
	place := func(l *counter.Link) {
		c := st.campaigns[l.Campaign]
		cr := st.creators[creatorID{l.Campaign, l.Creator}]
		m := shard(l.Code)
		if l.Disabled || c == nil || cr == nil || !ValidCode([]byte(l.Code)) ||
			len(l.Campaign) > clickid.MaxFieldLen || len(l.Creator) > clickid.MaxFieldLen {
			if m[l.Code] != nil {
				delete(m, l.Code)
				next.n--
			}
			if st.orphans[l.Code] == nil && !l.Disabled {
				dropped = append(dropped, l.Code)
			}
			st.orphans[l.Code] = l
			return
		}
		delete(st.orphans, l.Code)
		// One copy of the ids for every link of a creator.
		l.Campaign, l.Creator = c.ID, cr.ID
		if m[l.Code] == nil {
			next.n++
		}
		m[l.Code] = &Entry{Link: *l, Campaign: c, Creator: cr}
	}
	// replace serves again the links of a creator whose campaign or
	// creator changed.
	replace := func(id creatorID) {
		for _, code := range st.codes[id] {
			if l := st.orphans[code]; l != nil {
				place(l)
			} else if e := shard(code)[code]; e != nil {
				l := e.Link
				place(&l)
			}
		}
	}
	changed := map[creatorID]bool{}
	for i := range campaigns {
		c := &campaigns[i]
		st.campaigns[c.ID] = c
		for id := range st.codes {
			if id.campaign == c.ID {
				changed[id] = true
			}
		}
	}
	for i := range creators {
		c := &creators[i]
		id := creatorID{c.Campaign, c.ID}
		st.creators[id] = c
		changed[id] = true
	}
	for id := range changed {
		replace(id)
	}
	for i := range links {
		if i%yieldEvery == yieldEvery-1 {
			// A bulk import's thousands of links take milliseconds
			// to apply: the redirects, which read the snapshot served,
			// need not wait for them (a runtime trace of a node on one
			// core showed them queued behind applies of 13-18 ms).
			runtime.Gosched()
		}
		// A link's code, campaign and creator never change; its
		// destinations, preview and disabled do. A link joins its
		// creator's codes once, though one refresh may bring it twice
		// (created, then changed): next has it after the first.
		l := &links[i]
		if st.orphans[l.Code] == nil && next.lookup(l.Code) == nil {
			id := creatorID{l.Campaign, l.Creator}
			st.codes[id] = append(st.codes[id], l.Code)
		}
		place(l)
	}
	return next, dropped
}

// reshard returns cur's entries spread over n shards, more than cur has,
// and marks the shards it made in copied.
func reshard(cur *snapshot, n int, copied []bool) []map[string]*Entry {
	shards := make([]map[string]*Entry, n)
	size := cur.n/n + cur.n/n/4
	moved := 0
	for _, m := range cur.shards {
		for code, e := range m {
			i := int(hashCode(code) & uint32(n-1))
			if shards[i] == nil {
				shards[i] = make(map[string]*Entry, size)
				copied[i] = true
			}
			shards[i][code] = e
			if moved++; moved%(64*yieldEvery) == 0 {
				runtime.Gosched() // as apply does; a move is cheaper
			}
		}
	}
	return shards
}
