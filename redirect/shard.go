package redirect

// A shard of the table's snapshots, and the text of its links.

import (
	"unsafe"

	"github.com/clickgate/clickgate/counter"
)

// A served link holds no pointer: its strings are spans of the table's
// text, its campaign and creator indices, and a shard is an open-addressed
// table of them by their code's hash. The collector then has next to
// nothing to trace in a table of a million links: a full collection took
// 12-16 ms, against 162-222 ms when the shards were maps of entries, each
// with its strings (BenchmarkTableGC); and a link takes 156 heap bytes,
// not 335 (BenchmarkTableBuild). A lookup that reads what the handler
// reads costs more: 44-57 ns against 30-33 with 1,000 links, 586-625
// against 372-392 with 1M (BenchmarkLookup), a few tenths of a
// microsecond on a request of tens.

// shard is a part of the links served, an open-addressed table by the
// code's hash (linear probing). It never changes once a snapshot serves
// it.
type shard struct {
	recs []rec // sized to its links, or none; a rec of tag 0 is a free slot
	n    int   // recs in use: at most 3/4 of them
}

// rec is a served link. Its strings (nStrings of them, in fields' order)
// are in one chunk of the text, one after the other from off.
type rec struct {
	tag               uint32 // tagOf the code's hash; 0 in a free slot
	chunk, off        uint32
	lens              [nStrings]uint16
	campaign, creator uint32 // indices in the snapshot's campaigns and creators
	nsec              int32
	sec               int64 // CreatedAt
}

const nStrings = 7

// fields are the strings of l that a rec keeps.
func fields(l *counter.Link) [nStrings]string {
	return [nStrings]string{l.Code, l.Destinations.Default, l.Destinations.IOS, l.Destinations.Android,
		l.Preview.Title, l.Preview.Description, l.Preview.Image}
}

// chunks are the text of a table's links. A chunk's bytes, once a link's,
// are never written again: the snapshots that serve the link read them.
type chunks [][]byte

// strings returns the strings of r.
func (c chunks) strings(r *rec) (f [nStrings]string) {
	b, off := c[r.chunk], r.off
	for k, n := range r.lens {
		if n > 0 {
			f[k] = unsafe.String(&b[off], int(n))
			off += uint32(n)
		}
	}
	return f
}

// code returns the code of r.
func (c chunks) code(r *rec) string {
	return unsafe.String(&c[r.chunk][r.off], int(r.lens[0]))
}

// text is where a catalog state writes its links' strings.
type text struct {
	chunks chunks
	used   int // bytes written in the last chunk
	// live and dead are the bytes of the links served and of those
	// replaced or no longer served: too many dead and the next apply
	// copies the live ones to a new text.
	live, dead int
}

// Chunks start small, for the tables of a few links, and grow to
// textChunk. A link's strings fit one: each is at most 65,535 bytes.
const (
	firstChunk = 4 << 10
	textChunk  = 1 << 20
)

// add writes f and returns where.
func (t *text) add(f *[nStrings]string) (chunk, off uint32, lens [nStrings]uint16) {
	n := 0
	for k, s := range f {
		lens[k] = uint16(len(s))
		n += len(s)
	}
	if len(t.chunks) == 0 || t.used+n > len(t.chunks[len(t.chunks)-1]) {
		size := firstChunk
		if len(t.chunks) > 0 {
			size = min(2*len(t.chunks[len(t.chunks)-1]), textChunk)
		}
		t.chunks = append(t.chunks, make([]byte, max(size, n)))
		t.used = 0
	}
	b := t.chunks[len(t.chunks)-1]
	chunk, off = uint32(len(t.chunks)-1), uint32(t.used)
	for _, s := range f {
		t.used += copy(b[t.used:], s)
	}
	t.live += n
	return chunk, off, lens
}

// drop counts r's strings as dead.
func (t *text) drop(r *rec) {
	for _, n := range r.lens {
		t.live -= int(n)
		t.dead += int(n)
	}
}

// wasteful says whether the dead strings outweigh the live ones enough
// to copy the live ones.
func (t *text) wasteful() bool { return t.dead > textChunk && t.dead > t.live }

// hashCode is FNV-1a (64 bits) of code, its bits mixed (the finalizer of
// MurmurHash3). Its top bits pick a shard, its low bits a slot there.
func hashCode[T string | []byte](code T) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(code); i++ {
		h ^= uint64(code[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}

// shardOf returns the shard of a code's hash h among n, a power of two.
func shardOf(h uint64, n int) int { return int(h>>40) & (n - 1) }

// tagOf is what a rec keeps of its code's hash h: never 0.
func tagOf(h uint64) uint32 { return uint32(h) | 1 }

// home is the slot where the probe for tag starts in a table of n, any
// number (Lemire's multiply-shift, for a table sized to its links).
func home(tag uint32, n int) int { return int(uint64(tag) * uint64(n) >> 32) }

// slot returns the slot of code, whose hash is h, in sh and true, or the
// free slot where it would go and false; text holds the recs' strings.
func slot[T string | []byte](sh *shard, text chunks, h uint64, code T) (int, bool) {
	n := len(sh.recs)
	if n == 0 {
		return 0, false
	}
	tag := tagOf(h)
	for i := home(tag, n); ; i = next(i, n) {
		r := &sh.recs[i]
		if r.tag == 0 {
			return i, false
		}
		if r.tag == tag && text.code(r) == string(code) {
			return i, true
		}
	}
}

// next is the slot after i in a table of n.
func next(i, n int) int {
	if i++; i == n {
		return 0
	}
	return i
}

// clone returns a copy of sh to change, with room for hint more links:
// at most 3/4 of its slots used.
func (sh *shard) clone(hint int) shard {
	size := (sh.n+hint)*4/3 + 1
	c := shard{recs: make([]rec, size)}
	for i := range sh.recs {
		if r := &sh.recs[i]; r.tag != 0 {
			j := home(r.tag, size)
			for c.recs[j].tag != 0 {
				j = next(j, size)
			}
			c.recs[j] = *r
			c.n++
		}
	}
	return c
}

// set serves r as code's link, and returns the rec it replaces, if any;
// h is code's hash, text holds the recs' strings.
func (sh *shard) set(text chunks, h uint64, code string, r rec) (old rec, replaced bool) {
	r.tag = tagOf(h)
	i, ok := slot(sh, text, h, code)
	if ok {
		old, sh.recs[i] = sh.recs[i], r
		return old, true
	}
	if (sh.n+1)*4 > len(sh.recs)*3 {
		*sh = sh.clone(sh.n + 1)
		i, _ = slot(sh, text, h, code)
	}
	sh.recs[i] = r
	sh.n++
	return rec{}, false
}

// remove stops serving code, whose hash is h, and returns its rec, if sh
// served it. The recs after it in its probe sequence move back into the
// gap (Knuth's Algorithm R), so that every probe still finds its rec.
func (sh *shard) remove(text chunks, h uint64, code string) (rec, bool) {
	i, ok := slot(sh, text, h, code)
	if !ok {
		return rec{}, false
	}
	old := sh.recs[i]
	n := len(sh.recs)
	for j := next(i, n); sh.recs[j].tag != 0; j = next(j, n) {
		// The rec at j stays unless the gap at i is between its home
		// and j, cyclically.
		k := home(sh.recs[j].tag, n)
		if i <= j && (k <= i || k > j) || i > j && k <= i && k > j {
			sh.recs[i] = sh.recs[j]
			i = j
		}
	}
	sh.recs[i] = rec{}
	sh.n--
	return old, true
}

// fits says whether a rec can hold the strings f.
func fits(f *[nStrings]string) bool {
	for _, s := range f {
		if len(s) > 1<<16-1 {
			return false
		}
	}
	return true
}
