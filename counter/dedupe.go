package counter

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
)

// VisitorKey is a keyed hash that identifies one visitor of one creator; it
// never contains a raw address.
type VisitorKey [16]byte

// Visit is one click that dedupe decides: qualified or duplicate.
type Visit struct {
	Campaign string
	Creator  string
	Key      VisitorKey
	// Window is the start of the visit's dedupe window, Unix seconds.
	Window int64
	// Expires is when the window's dedupe state may be dropped, Unix seconds.
	Expires int64
	Day     Day
	// MarkOnly visits are set in the dedupe state and counted nowhere.
	MarkOnly bool
	// Also, when HasAlso, is a second key of the same visitor that the
	// store marks seen (as a MarkOnly visit of it would be) without letting
	// it decide: the visitor cookie, so that its next click, keyed by the
	// cookie, is a duplicate. A visit refused before dedupe (velocity,
	// budget) marks neither key.
	Also    VisitorKey
	HasAlso bool

	// At, Network, Block and Nonce are what the log-structured counting
	// core (counter/judge, counter/visitlog) records of a visit besides
	// its keys: the click's time in Unix milliseconds, a keyed hash of
	// the client network (an IPv4 address, an IPv6 /64) and one of its
	// block (an IPv4 /24, an IPv6 /48), never the raw address, and the
	// click id's nonce. A Network or Block of 0 is unknown (a visit
	// logged before they were recorded): no budget applies to it.
	At      int64
	Network uint64
	Block   uint64
	Nonce   [8]byte
}

// windowGrace keeps a window's dedupe state a little past its end, so that a
// visit committed late or on a node with a slow clock still finds it.
const windowGrace = time.Hour

// SetWindow sets Window, Expires and Day for a click at t in UTC-aligned
// windows of length w.
func (v *Visit) SetWindow(t time.Time, w time.Duration) {
	sec := t.Unix()
	ws := int64(w / time.Second)
	if ws <= 0 {
		ws = 86400
	}
	start := sec - ((sec%ws)+ws)%ws
	v.Window = start
	v.Expires = start + ws + int64(windowGrace/time.Second)
	v.Day = DayOf(t)
}

// DefaultSlots is how many filters a campaign window is split into. Keys of
// one slot share a Redis hash tag, so a busy campaign spreads over a cluster.
const DefaultSlots = 16

// DedupeParams are the Bloom filter parameters of every slot filter. All
// nodes and the store must agree on them, or a visitor would be counted
// twice; stores record them on first use and refuse others.
type DedupeParams struct {
	Slots uint32 // filters per campaign window
	M     uint64 // bits per slot filter
	K     uint32 // hash functions
	// Keying identifies the secret that keys visitor keys (a fingerprint,
	// not the secret): a node with another secret would compute other
	// keys and count every visitor again.
	Keying string
	// Expected and FP are the sizing the parameters came from; the judge
	// sizes its own filters from them (for both keys of every visitor).
	// Not part of String: a store records M and K.
	Expected uint64
	FP       float64
	// BudgetNetwork and BudgetBlock are the daily budgets of qualified
	// visits per network and per block of networks in one campaign
	// (--budget-network, --budget-block; 0: none), which the judge
	// enforces (judge.Params). Not part of String: the judge's checkpoint
	// records them, and a judge adopts others at a checkpoint.
	BudgetNetwork int
	BudgetBlock   int
}

// Default daily budgets of qualified visits in one campaign: per network
// (an IPv4 address, an IPv6 /64) and per block of networks (an IPv4 /24,
// an IPv6 /48), DedupeParams.BudgetNetwork and BudgetBlock, the flags
// --budget-network and --budget-block. A qualified visit pays 10 cents
// ($100 per 1,000), so at these one address earns at most $2.00 a day per
// campaign, and one /24 or /48 with all its networks (an IPv6 /56 is 256
// /64 networks of one /48) at most $30.00; velocity alone let one address
// earn $300-380 a day. Honest traffic seldom comes near them: 20 people
// behind one address (a household, or one address of a carrier NAT) who
// are new visitors of one campaign's creators on the same day, or 300 in
// one /24. Those past them are redirected and counted as Budget, not paid.
const (
	DefaultBudgetNetwork = 20
	DefaultBudgetBlock   = 300
)

// NewDedupeParams sizes the filters for expected visitors per campaign window
// at false-positive rate fp.
func NewDedupeParams(expected uint64, fp float64) (DedupeParams, error) {
	if expected == 0 {
		return DedupeParams{}, fmt.Errorf("expected visitors must be positive")
	}
	if !(fp > 0 && fp < 1) {
		return DedupeParams{}, fmt.Errorf("false-positive rate %v must be between 0 and 1", fp)
	}
	perSlot := (expected + DefaultSlots - 1) / DefaultSlots
	m, k := bloom.EstimateParameters(uint(perSlot), fp)
	if m >= math.MaxUint32 {
		// Redis bitmaps stop at 2^32 bits.
		return DedupeParams{}, fmt.Errorf("expected visitors %d at rate %v need %d bits per slot; the limit is 2^32", expected, fp, m)
	}
	return DedupeParams{Slots: DefaultSlots, M: uint64(m), K: uint32(k), Expected: expected, FP: fp}, nil
}

func (p DedupeParams) String() string {
	s := fmt.Sprintf("slots=%d m=%d k=%d", p.Slots, p.M, p.K)
	if p.Keying != "" {
		s += " keying=" + p.Keying
	}
	return s
}

// Slot is the slot filter that holds k.
func (p DedupeParams) Slot(k *VisitorKey) uint32 {
	return binary.LittleEndian.Uint32(k[12:]) % p.Slots
}

// LocalFilter is the in-process Bloom filter in front of the store. It only
// ever holds keys the store has confirmed, so a hit is a duplicate without a
// round trip and a miss must ask the store. Safe for concurrent use.
//
// It is a cache of what the store knows, so it forgets rather than fills
// up: each slot is two generations of a filter of M bits and K functions,
// and once the newer has taken its design capacity of keys (M ln 2 / K,
// the keys at which it reaches its rate), the older is cleared and becomes
// the newer. A hit is in either, so false duplicates stay within twice the
// rate however many visitors come (a flood included); a visitor forgotten
// asks the store, which still knows it.
type LocalFilter struct {
	params  DedupeParams
	mu      sync.RWMutex
	windows map[windowID]*windowFilter
}

type windowID struct {
	campaign string
	start    int64
}

type windowFilter struct {
	expires int64
	slots   []slotFilter
}

type slotFilter struct {
	mu       sync.RWMutex
	cur, old *bloom.BloomFilter // allocated on first Add, and first rotation
	n        uint64             // keys added to cur
}

// NewLocalFilter returns an empty filter with parameters p.
func NewLocalFilter(p DedupeParams) *LocalFilter {
	return &LocalFilter{params: p, windows: make(map[windowID]*windowFilter)}
}

// Test reports whether v's visitor is known in v's window. It does not
// allocate.
func (l *LocalFilter) Test(v *Visit) bool {
	l.mu.RLock()
	w := l.windows[windowID{v.Campaign, v.Window}]
	l.mu.RUnlock()
	if w == nil {
		return false
	}
	s := &w.slots[l.params.Slot(&v.Key)]
	s.mu.RLock()
	hit := s.cur != nil && s.cur.Test(v.Key[:]) || s.old != nil && s.old.Test(v.Key[:])
	s.mu.RUnlock()
	return hit
}

// capacity is how many keys a generation takes: M ln 2 / K, the keys at
// which a filter of M bits and K functions is at its design rate.
func (l *LocalFilter) capacity() uint64 {
	return max(uint64(float64(l.params.M)*math.Ln2/float64(l.params.K)), 1)
}

// Add records v's visitor, which the store has confirmed: its Key, and
// its Also when HasAlso.
func (l *LocalFilter) Add(v *Visit) {
	l.add(v, &v.Key)
	if v.HasAlso {
		l.add(v, &v.Also)
	}
}

func (l *LocalFilter) add(v *Visit, k *VisitorKey) {
	id := windowID{v.Campaign, v.Window}
	l.mu.RLock()
	w := l.windows[id]
	l.mu.RUnlock()
	if w == nil {
		l.mu.Lock()
		if w = l.windows[id]; w == nil {
			w = &windowFilter{expires: v.Expires, slots: make([]slotFilter, l.params.Slots)}
			l.windows[id] = w
		}
		l.mu.Unlock()
	}
	s := &w.slots[l.params.Slot(k)]
	s.mu.Lock()
	switch {
	case s.cur == nil:
		s.cur = bloom.New(uint(l.params.M), uint(l.params.K))
	case s.n >= l.capacity():
		if s.old == nil {
			s.old = bloom.New(uint(l.params.M), uint(l.params.K))
		} else {
			s.old.ClearAll()
		}
		s.cur, s.old, s.n = s.old, s.cur, 0
	}
	s.cur.Add(k[:])
	s.n++
	s.mu.Unlock()
}

// Expire drops the windows that expired before now (Unix seconds).
func (l *LocalFilter) Expire(now int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, w := range l.windows {
		if w.expires <= now {
			delete(l.windows, id)
		}
	}
}
