package counter

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
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
	// Link is the code of the link clicked, which the judge counts the
	// visit under besides its creator; "" is unknown (a visit logged
	// before links were recorded): it counts for its creator alone.
	Link string
	Key  VisitorKey
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
	// VelocityMax and VelocityWindow are the judge's velocity rule
	// (--velocity-max, --velocity-window; judge.Params): person visits per
	// network per window, counted by the judge over every visit of its
	// partition, so it holds across nodes and restarts. VelocityMax 0:
	// none. VelocityWindow 0: the rule of the embedded judge's checkpoint
	// (none for a new store), for commands that judge nothing. Not part of
	// String, like the budgets.
	VelocityMax    int
	VelocityWindow time.Duration
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
// the keys at which it reaches its rate), the older is dropped and a new
// empty one takes keys. A hit is in either, so false duplicates stay within
// twice the rate however many visitors come (a flood included); a visitor
// forgotten asks the store, which still knows it.
//
// Test, on every person's click, takes no lock: the windows are a map
// copied when one is added or dropped, a slot's generations are swapped
// whole, and bits are read and set with atomic operations. Positions come
// from the key itself, as in the judge's filters (VisitorKey.Probes).
type LocalFilter struct {
	params   DedupeParams
	capacity uint64     // keys a generation takes
	mu       sync.Mutex // serializes changes to windows
	windows  atomic.Pointer[map[windowID]*windowFilter]
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
	gens atomic.Pointer[generations] // nil until the first Add
	n    atomic.Uint64               // keys added to gens.cur
	mu   sync.Mutex                  // serializes new generations
}

// generations are the filters of a slot: cur takes keys, old (nil until
// cur first fills) is only tested.
type generations struct {
	cur, old []uint64
}

// NewLocalFilter returns an empty filter with parameters p.
func NewLocalFilter(p DedupeParams) *LocalFilter {
	l := &LocalFilter{params: p, capacity: max(uint64(float64(p.M)*math.Ln2/float64(p.K)), 1)}
	l.windows.Store(&map[windowID]*windowFilter{})
	return l
}

// Test reports whether v's visitor is known in v's window. It does not
// allocate, and takes no lock.
func (l *LocalFilter) Test(v *Visit) bool {
	w := (*l.windows.Load())[windowID{v.Campaign, v.Window}]
	if w == nil {
		return false
	}
	g := w.slots[l.params.Slot(&v.Key)].gens.Load()
	if g == nil {
		return false
	}
	h1, h2 := v.Key.Probes()
	return l.has(g.cur, h1, h2) || g.old != nil && l.has(g.old, h1, h2)
}

// has reports whether the K bits of the probe sequence (h1, h2) are set
// in the M-bit filter f.
func (l *LocalFilter) has(f []uint64, h1, h2 uint64) bool {
	for range l.params.K {
		p, _ := bits.Mul64(h1, l.params.M)
		h1 += h2
		if atomic.LoadUint64(&f[p>>6])&(1<<(p&63)) == 0 {
			return false
		}
	}
	return true
}

// Add records v's visitor, which the store has confirmed: its Key, and
// its Also when HasAlso.
func (l *LocalFilter) Add(v *Visit) {
	w := l.window(v)
	l.add(w, &v.Key)
	if v.HasAlso {
		l.add(w, &v.Also)
	}
}

// window returns v's window, adding it.
func (l *LocalFilter) window(v *Visit) *windowFilter {
	id := windowID{v.Campaign, v.Window}
	if w := (*l.windows.Load())[id]; w != nil {
		return w
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := *l.windows.Load()
	if w := old[id]; w != nil {
		return w
	}
	w := &windowFilter{expires: v.Expires, slots: make([]slotFilter, l.params.Slots)}
	m := make(map[windowID]*windowFilter, len(old)+1)
	maps.Copy(m, old)
	m[id] = w
	l.windows.Store(&m)
	return w
}

func (l *LocalFilter) add(w *windowFilter, k *VisitorKey) {
	s := &w.slots[l.params.Slot(k)]
	g := s.gens.Load()
	if g == nil || s.n.Load() >= l.capacity {
		g = l.next(s, g)
	}
	h1, h2 := k.Probes()
	for range l.params.K {
		p, _ := bits.Mul64(h1, l.params.M)
		h1 += h2
		atomic.OrUint64(&g.cur[p>>6], 1<<(p&63))
	}
	s.n.Add(1)
}

// next gives s a new empty generation, after seen, unless another Add
// has given it one meanwhile, and returns s's generations.
func (l *LocalFilter) next(s *slotFilter, seen *generations) *generations {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.gens.Load(); g != seen {
		return g
	}
	g := &generations{cur: make([]uint64, (l.params.M+63)/64)}
	if seen != nil {
		g.old = seen.cur
	}
	s.n.Store(0)
	s.gens.Store(g)
	return g
}

// Expire drops the windows that expired before now (Unix seconds).
func (l *LocalFilter) Expire(now int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := *l.windows.Load()
	m := make(map[windowID]*windowFilter, len(old))
	for id, w := range old {
		if w.expires > now {
			m[id] = w
		}
	}
	if len(m) < len(old) {
		l.windows.Store(&m)
	}
}

// Probes returns the start and the step of k's probe sequence in a Bloom
// filter: bit i of k's K in an M-bit filter is the high word of
// (h1 + i*h2) * M (Kirsch-Mitzenmacher double hashing, and a
// multiply-shift into M). Both depend on every byte of k: keys are keyed
// hashes, but a key whose halves are not independent (a test's, or a
// future key format) must not make the probe sequences of many keys
// shifted copies. The judge's filters, which checkpoints hold, are laid
// out by it too: it must not change.
func (k *VisitorKey) Probes() (h1, h2 uint64) {
	lo, hi := binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:])
	h1 = fmix64(lo ^ fmix64(hi))
	return h1, fmix64(h1^hi) | 1
}

// fmix64 is murmur3's 64-bit finalizer.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
