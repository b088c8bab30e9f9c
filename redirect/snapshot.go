package redirect

// The table's snapshots: the links served, spread over shards, and the
// catalog state that a refresh applies changes with.

import (
	"fmt"
	"iter"
	"runtime"
	"slices"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/clickid"
)

// The links are spread over shards: a change copies the one it touches,
// so applying it costs the links of a shard, not the table's
// (BenchmarkCreateLink in redirect/admin). Their number, a power of two,
// grows with the table to keep at most about linksPerShard links in each.
// With a fixed 1,024, a bulk import of 10,000 links, which a node's polls
// apply a few hundred links at a time as its chunks commit (the benchmark
// applies 40 steps of 256), copied a quarter of the table at each step:
// 1.1-1.2 s and 510 MB on a node with 1M links served, against 114-143 ms
// and 36 MB with 32,768 shards (BenchmarkApplyImport, both in one run).
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
	// shards hold the links served, by their code's hash modulo their
	// number: a power of two, at least minShards.
	shards []shard
	// text holds the strings of the links in shards; campaigns and
	// creators are what their indices name.
	text      chunks
	campaigns []*counter.Campaign
	creators  []*counter.Creator
}

// find returns the rec of code, or nil.
func find[T string | []byte](s *snapshot, code T) *rec {
	h := hashCode(code)
	sh := &s.shards[shardOf(h, len(s.shards))]
	if i, ok := slot(sh, s.text, h, code); ok {
		return &sh.recs[i]
	}
	return nil
}

// entry sets e to the entry of r. Its strings are the text's: it does not
// allocate.
func (s *snapshot) entry(r *rec, e *Entry) {
	f := s.text.strings(r)
	cp, cr := s.campaigns[r.campaign], s.creators[r.creator]
	*e = Entry{Link: counter.Link{Code: f[0], Campaign: cp.ID, Creator: cr.ID,
		Destinations: counter.Destinations{Default: f[1], IOS: f[2], Android: f[3]},
		Preview:      counter.Card{Title: f[4], Description: f[5], Image: f[6]},
		CreatedAt:    time.Unix(r.sec, int64(r.nsec)).UTC()}, Campaign: cp, Creator: cr}
}

// each calls f with the rec of every link served until f returns false.
func (s *snapshot) each(f func(r *rec) bool) {
	for i := range s.shards {
		for j := range s.shards[i].recs {
			if r := &s.shards[i].recs[j]; r.tag != 0 && !f(r) {
				return
			}
		}
	}
}

// older refuses next when it lacks a link that cur serves: links are
// never deleted, so such a catalog is an older one, whatever its version
// says. A link disabled since is not lacking: st, next's state, holds it.
// A catalog restored into a reset store holds every link again and is
// taken, even under a lower version.
func older(cur, next *snapshot, st *catalogState, version uint64) (err error) {
	cur.each(func(r *rec) bool {
		code := cur.text.code(r)
		if find(next, code) == nil && (st.orphans[code] == nil || !st.orphans[code].Disabled) {
			err = fmt.Errorf("%w: link %q and maybe others are missing from version %d (served: %d); the store was reset or failed over to a stale replica: serving the last catalog until it is restored",
				ErrCatalogReset, code, version, cur.version)
		}
		return err == nil
	})
	return err
}

type creatorID struct{ campaign, id string }

// codes are the codes of a creator's links, one after the other, without
// pointers. Appended to only, so that a copy is a stable view.
type codes struct {
	text []byte
	ends []uint32
}

func (c codes) add(code string) codes {
	c.text = append(c.text, code...)
	c.ends = append(c.ends, uint32(len(c.text)))
	return c
}

// all yields the codes, views of c's text.
func (c codes) all() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		start := uint32(0)
		for _, end := range c.ends {
			if !yield(c.text[start:end]) {
				return
			}
			start = end
		}
	}
}

// catalogState is what the table knows of the catalog beyond the served
// links, to apply changes: the campaigns' and creators' indices in the
// snapshot, the codes of each creator's links, and the text the links'
// strings are written to.
type catalogState struct {
	campaigns map[string]uint32
	creators  map[creatorID]uint32
	codes     map[creatorID]codes
	// orphans are links that cannot be served (an unknown campaign or
	// creator, a malformed code or id); a later change may make them so.
	orphans map[string]*counter.Link
	text    text
}

func newCatalogState() *catalogState {
	return &catalogState{campaigns: map[string]uint32{}, creators: map[creatorID]uint32{},
		codes: map[creatorID]codes{}, orphans: map[string]*counter.Link{}}
}

// apply returns a snapshot of cur with the changes, copying only the
// shards they touch, and updates st. Links the admin API could not have
// made (over-long ids or strings, bad codes, missing campaign or creator)
// are not served; those newly so are returned: serving them could break
// the hot path's invariants.
func (st *catalogState) apply(cur *snapshot, campaigns []counter.Campaign, creators []counter.Creator, links []counter.Link) (next *snapshot, dropped []string) {
	next = &snapshot{version: cur.version, epoch: cur.epoch, n: cur.n, campaigns: cur.campaigns, creators: cur.creators}
	want := max(len(cur.shards), shardsFor(cur.n+len(links)))
	// copied[i] is true once next.shards[i] is next's own, to change.
	copied := make([]bool, want)
	if want == len(cur.shards) && !st.text.wasteful() {
		next.shards = slices.Clone(cur.shards)
	} else {
		next.shards = st.rebuild(cur, want, copied)
	}
	hint := 0 // links of each shard new to the table: a whole catalog sizes the shards once
	if cur.n == 0 {
		hint = len(links)/want + len(links)/want/4
	}
	shard := func(h uint64) *shard {
		i := shardOf(h, want)
		if !copied[i] {
			copied[i] = true
			next.shards[i] = next.shards[i].clone(max(hint, 2)) // room for a link or two without growing again
		}
		return &next.shards[i]
	}
	// place serves l if it can be, or keeps it as an orphan, and says
	// whether the table knew its code before.
	place := func(l *counter.Link) (known bool) {
		ci, okc := st.campaigns[l.Campaign]
		cri, okr := st.creators[creatorID{l.Campaign, l.Creator}]
		h := hashCode(l.Code)
		sh := shard(h)
		f := fields(l)
		if l.Disabled || !okc || !okr || !ValidCode([]byte(l.Code)) || !fits(&f) ||
			len(l.Campaign) > clickid.MaxFieldLen || len(l.Creator) > clickid.MaxFieldLen {
			r, served := sh.remove(st.text.chunks, h, l.Code)
			if served {
				st.text.drop(&r)
				next.n--
			}
			orphan := st.orphans[l.Code] != nil
			if !orphan && !l.Disabled {
				dropped = append(dropped, l.Code)
			}
			o := *l
			st.orphans[l.Code] = &o
			return served || orphan
		}
		orphan := st.orphans[l.Code] != nil
		delete(st.orphans, l.Code)
		r := rec{campaign: ci, creator: cri, sec: l.CreatedAt.Unix(), nsec: int32(l.CreatedAt.Nanosecond())}
		r.chunk, r.off, r.lens = st.text.add(&f)
		old, served := sh.set(st.text.chunks, h, l.Code, r)
		if served {
			st.text.drop(&old)
		} else {
			next.n++
		}
		return served || orphan
	}
	// Campaigns and creators changed are copied once, and what their
	// links see changes with them; a link waiting for one is served.
	changed := map[creatorID]bool{}
	if len(campaigns) > 0 {
		next.campaigns = slices.Clone(cur.campaigns)
	}
	for i := range campaigns {
		c := &campaigns[i]
		if j, ok := st.campaigns[c.ID]; ok {
			next.campaigns[j] = c
		} else {
			st.campaigns[c.ID] = uint32(len(next.campaigns))
			next.campaigns = append(next.campaigns, c)
		}
		for id := range st.codes {
			if id.campaign == c.ID {
				changed[id] = true
			}
		}
	}
	if len(creators) > 0 {
		next.creators = slices.Clone(cur.creators)
	}
	for i := range creators {
		c := &creators[i]
		id := creatorID{c.Campaign, c.ID}
		if j, ok := st.creators[id]; ok {
			next.creators[j] = c
		} else {
			st.creators[id] = uint32(len(next.creators))
			next.creators = append(next.creators, c)
		}
		changed[id] = true
	}
	for id := range changed {
		for code := range st.codes[id].all() {
			if l := st.orphans[string(code)]; l != nil && !l.Disabled {
				place(l)
			}
		}
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
		// (created, then changed): it is then served or an orphan.
		if l := &links[i]; !place(l) {
			id := creatorID{l.Campaign, l.Creator}
			st.codes[id] = st.codes[id].add(l.Code)
		}
	}
	next.text = st.text.chunks
	return next, dropped
}

// rebuild returns cur's links spread over n shards, their strings copied
// to a new text that st writes to from now on, and marks the shards it
// made in copied. It makes room for more shards, and drops the strings
// of links replaced or no longer served.
func (st *catalogState) rebuild(cur *snapshot, n int, copied []bool) []shard {
	var t text
	shards := make([]shard, n)
	size := cur.n/n + cur.n/n/4
	moved := 0
	cur.each(func(r *rec) bool {
		f := cur.text.strings(r)
		h := hashCode(f[0])
		i := shardOf(h, n)
		if !copied[i] {
			shards[i] = shards[i].clone(size)
			copied[i] = true
		}
		nr := *r
		nr.chunk, nr.off, nr.lens = t.add(&f)
		shards[i].set(t.chunks, h, f[0], nr)
		if moved++; moved%(64*yieldEvery) == 0 {
			runtime.Gosched() // as apply does; a move is cheaper
		}
		return true
	})
	st.text = t
	return shards
}
