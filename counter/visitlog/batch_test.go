package visitlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
)

// visits returns n visits of batch b as the hot path makes them: a few
// campaigns, creators and links, ids of several lengths and bytes, every
// flag, a time a few milliseconds apart, and every field set (the link of
// every fifth is unknown).
func visits(b, n int) []counter.Visit {
	vs := make([]counter.Visit, n)
	at := time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC).Add(time.Duration(b) * time.Second)
	for i := range vs {
		v := &vs[i]
		v.Campaign = []string{"spring26", "c", "été-🎉"}[i%3]
		v.Creator = []string{"alice", "bob_the.creator-1"}[(i/2)%2]
		v.Link = []string{"AB3KX9QZ", "TT12345X", "alice", "YT98765Q", ""}[i%5]
		for j := range v.Key {
			v.Key[j] = byte(b*31 + i*7 + j)
		}
		t := at.Add(time.Duration(i) * 3 * time.Millisecond)
		v.SetWindow(t, 24*time.Hour)
		v.At = t.UnixMilli()
		v.Network = uint64(b)<<32 | uint64(i)*0x9e3779b9
		v.Block = v.Network>>8 ^ 0x5bd1e995
		binary.LittleEndian.PutUint64(v.Nonce[:], uint64(i)*0x1f3d5b79+uint64(b))
		v.MarkOnly = i%4 == 3
		if i%3 == 1 {
			v.HasAlso = true
			v.Also[0], v.Also[15] = byte(b), byte(i)
		}
	}
	if n > 1 {
		vs[1].Window, vs[1].Day, vs[1].At = -5, -1, -7 // before the epoch: deltas are signed
	}
	return vs
}

func mustDecode(t testing.TB, p []byte) Batch {
	t.Helper()
	var b Batch
	if err := DecodeBatch(p, &b); err != nil {
		t.Fatalf("cannot decode a batch of %d bytes: %s", len(p), err)
	}
	return b
}

func TestBatchRoundTrip(t *testing.T) {
	f := func(name string, b Batch) {
		t.Helper()
		prefix := []byte("prefix")
		p := AppendBatch(bytes.Clone(prefix), &b)
		if !bytes.HasPrefix(p, prefix) {
			t.Fatalf("unexpected bytes before the batch for %q; got %q", name, p[:len(prefix)])
		}
		p = p[len(prefix):]
		got := mustDecode(t, p)
		if !reflect.DeepEqual(got, b) {
			t.Fatalf("unexpected batch for %q; got %+v; want %+v", name, got, b)
		}
		if q := AppendBatch(nil, &got); !bytes.Equal(q, p) {
			t.Fatalf("unexpected encoding of a decoded batch for %q; got %x; want %x", name, q, p)
		}
		// Into a batch with room, and more visits than this one.
		into := Batch{ID: 99, Visits: visits(9, len(b.Visits)+3)}
		if err := DecodeBatch(p, &into); err != nil || !reflect.DeepEqual(into, b) {
			t.Fatalf("unexpected batch decoded into a used one for %q; got %+v, %v; want %+v", name, into, err, b)
		}
	}
	f("one visit", Batch{ID: 1, Visits: visits(1, 1)})
	f("300 visits", Batch{ID: 1<<63 | 12345, Visits: visits(2, 300)})

	many := visits(3, 200)
	for i := range many {
		many[i].Campaign = "campaign-" + strconv.Itoa(i%23)
		many[i].Creator = "creator-" + strconv.Itoa(i%37)
	}
	f("more strings than the small table", Batch{ID: 3, Visits: many})

	ext := visits(4, 4)
	ext[0].Window, ext[0].Expires, ext[0].At, ext[0].Day = math.MaxInt64, math.MinInt64, math.MinInt64, math.MaxInt32
	ext[1].Window, ext[1].Expires, ext[1].At, ext[1].Day = math.MinInt64, math.MaxInt64, math.MaxInt64, math.MinInt32
	ext[2].Network, ext[2].Block, ext[2].Nonce = math.MaxUint64, math.MaxUint64-1, [8]byte{0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0}
	ext[3] = counter.Visit{Campaign: ext[3].Campaign, Creator: ext[3].Creator} // all zero, no link
	f("extreme values", Batch{ID: math.MaxUint64, Visits: ext})

	long := visits(5, 2)
	long[0].Campaign, long[1].Creator, long[1].Link = strings.Repeat("x", MaxIDLen), strings.Repeat("\xff", MaxIDLen), strings.Repeat("L", MaxIDLen)
	f("ids of MaxIDLen bytes", Batch{ID: 5, Visits: long})

	same := visits(6, 3)
	for i := range same {
		same[i].Campaign, same[i].Creator, same[i].Link = "same", "same", "same"
	}
	f("a campaign id that is also a creator id and a link", Batch{ID: 6, Visits: same})
}

// TestBatchBytes pins the size of a typical visit, which the report and
// the Redis memory budget quote: a link code repeated costs one byte.
func TestBatchBytes(t *testing.T) {
	f := func(link string, also bool, want float64) {
		t.Helper()
		vs := visits(1, 1001)
		for i := range vs {
			vs[i].Campaign, vs[i].Creator, vs[i].Link, vs[i].HasAlso, vs[i].MarkOnly = "spring26", "alice", link, also, false
		}
		vs[1] = vs[2]
		// Both counts take two bytes.
		some := len(AppendBatch(nil, &Batch{ID: 1, Visits: vs[:201]}))
		per := float64(len(AppendBatch(nil, &Batch{ID: 1, Visits: vs}))-some) / 800
		if per != want {
			t.Fatalf("unexpected bytes per typical visit of link %q, also %v; got %v; want %v", link, also, per, want)
		}
	}
	f("AB3KX9QZ", true, 64)
	f("AB3KX9QZ", false, 48)
	f("", true, 63)
}

// raw builds batch bytes by hand, for the forms DecodeBatch must refuse.
type raw []byte

func head(n uint64) raw       { return raw{batchVersion, 7, 0, 0, 0, 0, 0, 0, 0}.u(n) }
func (r raw) u(x uint64) raw  { return binary.AppendUvarint(r, x) }
func (r raw) b(p ...byte) raw { return append(r, p...) }
func (r raw) s(x string) raw  { return append(r.u(0).u(uint64(len(x))), x...) }

// rest is the key, the deltas, and a network, block and nonce of zeros.
func (r raw) rest(deltas ...byte) raw {
	return r.b(make([]byte, 16)...).b(deltas...).b(make([]byte, 24)...)
}
func (r raw) visit(flags byte, a, b string) raw { return r.b(flags).s(a).s(b).rest(0, 0, 0, 0) }

func TestDecodeBatchRefuses(t *testing.T) {
	good := head(1).visit(0, "c", "a")
	if b := mustDecode(t, good); len(b.Visits) != 1 || b.ID != 7 {
		t.Fatalf("unexpected decoding of the hand-built batch: %+v", b)
	}
	f := func(what string, p []byte) {
		t.Helper()
		into := Batch{Visits: visits(1, 2)}
		err := DecodeBatch(p, &into)
		if !errors.Is(err, ErrFormat) {
			t.Fatalf("unexpected error for %s; got %v; want ErrFormat", what, err)
		}
		if into.ID != 0 || len(into.Visits) != 0 {
			t.Fatalf("unexpected batch left by a failed decode of %s: %+v", what, into)
		}
	}
	for i := range good {
		f("a batch cut at byte "+strconv.Itoa(i), good[:i])
	}
	f("a byte after the last visit", append(good, 0))
	f("version 4", append(raw{4}, good[1:]...))
	f("version 0", append(raw{0}, good[1:]...))
	f("version 1 with a block", append(raw{batchVersion1}, good[1:]...))
	f("batch id 0", append(raw{batchVersion, 0, 0, 0, 0, 0, 0, 0, 0, 1}, good[10:]...))
	f("no visits", head(0))
	f("more visits than bytes", append(head(2), good[10:]...))
	f("more than MaxVisits", append(head(MaxVisits+1), good[10:]...))
	f("a count that is not minimal", append(head(1)[:9].b(0x81, 0x00), good[10:]...))
	f("a varint over 64 bits", head(1)[:9].b(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f).b(good[10:]...))
	f("unknown flags", head(1).visit(8, "c", "a"))
	f("a link in version 2", append(raw{batchVersion2}, head(1).b(flagHasLink).s("c").s("a").s("L").rest(0, 0, 0, 0)[1:]...))
	f("a link flag without a link", head(1).visit(flagHasLink, "c", "a"))
	f("an empty link", head(1).b(flagHasLink).s("c").s("a").s("").rest(0, 0, 0, 0))
	f("a link ref past the table", head(1).b(flagHasLink).s("c").s("a").u(3).rest(0, 0, 0, 0))
	f("a link new twice", head(1).b(flagHasLink).s("c").s("a").s("a").rest(0, 0, 0, 0))
	f("an Also cut short", head(1).b(flagHasAlso).s("c").s("a").rest(0, 0, 0, 0))
	f("a ref past the table", head(1).b(0).s("c").u(2).rest(0, 0, 0, 0))
	f("an empty id", head(1).b(0).s("c").s("").rest(0, 0, 0, 0))
	f("an id over MaxIDLen", head(1).visit(0, "c", strings.Repeat("a", MaxIDLen+1)))
	f("an id length that is not minimal", head(1).b(0).s("c").u(0).b(0x81, 0x00, 'a').rest(0, 0, 0, 0))
	f("a new string twice", head(1).visit(0, "c", "c"))
	f("a ref 0 that is not minimal", head(1).b(0).s("c").b(0x80, 0x00).u(1).b('a').rest(0, 0, 0, 0))
	f("a delta that is not minimal", head(1).b(0).s("c").s("a").rest(0, 0x80, 0x00, 0, 0))
	day := binary.AppendVarint([]byte{0, 0}, math.MaxInt32+1)
	f("a day past int32", head(1).b(0).s("c").s("a").rest(append(day, 0)...))

	big := head(12)
	for i := range 12 {
		big = big.visit(0, "campaign-"+strconv.Itoa(i), "creator-"+strconv.Itoa(i))
	}
	mustDecode(t, big)
	big[9] = 13
	mustDecode(t, big.visit(0, "x", "y"))
	f("a new string twice in a large table", big.visit(0, "x", "creator-3"))
}

func TestAppendBatchRefuses(t *testing.T) {
	f := func(what string, b Batch) {
		t.Helper()
		defer func() {
			if r := recover(); r == nil || !strings.HasPrefix(r.(string), "BUG: ") {
				t.Fatalf("unexpected panic for %s; got %v; want a BUG", what, r)
			}
		}()
		AppendBatch(nil, &b)
	}
	f("batch id 0", Batch{Visits: visits(1, 1)})
	f("no visits", Batch{ID: 1})
	empty := visits(1, 2)
	empty[1].Creator = ""
	f("an empty id", Batch{ID: 1, Visits: empty})
	long := visits(1, 30)
	for i := range long {
		long[i].Creator = strconv.Itoa(i)
	}
	long[29].Campaign = strings.Repeat("a", MaxIDLen+1)
	f("a long id in a large table", Batch{ID: 1, Visits: long})
	// The pool's encoder is clean after a panic.
	mustDecode(t, AppendBatch(nil, &Batch{ID: 1, Visits: visits(1, 3)}))
}
