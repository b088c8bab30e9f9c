package counter

import (
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
)

func TestLocalFilterMatchesPositions(t *testing.T) {
	p, err := NewDedupeParams(10_000, 0.001)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLocalFilter(p)
	for i := range 100 {
		v := Visit{Campaign: "c", Creator: "a", Window: 86400, Expires: 2 * 86400}
		v.Key[0], v.Key[12], v.Key[15] = byte(i), byte(i*7), byte(i>>3)
		if l.Test(&v) {
			continue // a false positive of an earlier key; possible, rare
		}
		l.Add(&v)
		if !l.Test(&v) {
			t.Fatalf("unexpected miss after Add of key %d", i)
		}
		// The positions a store sets are the ones the local filter sets.
		f := l.windows[windowID{"c", 86400}].slots[p.Slot(&v.Key)].f
		pos := p.AppendPositions(nil, &v.Key)
		if len(pos) != int(p.K) {
			t.Fatalf("unexpected number of positions; got %d; want %d", len(pos), p.K)
		}
		for _, b := range pos {
			if b >= p.M || !f.BitSet().Test(uint(b)) {
				t.Fatalf("position %d of key %d not set in the local filter (m=%d)", b, i, p.M)
			}
		}
		other := v
		other.Campaign = "d"
		if l.Test(&other) {
			t.Fatalf("unexpected hit in another campaign's filter")
		}
	}
	l.Expire(2*86400 - 1)
	if len(l.windows) != 1 {
		t.Fatalf("window expired early")
	}
	l.Expire(2 * 86400)
	if len(l.windows) != 0 {
		t.Fatalf("unexpected windows after expiry; got %d; want 0", len(l.windows))
	}
}

func TestDedupeParams(t *testing.T) {
	p, err := NewDedupeParams(1_000_000, 0.001)
	if err != nil {
		t.Fatal(err)
	}
	m, k := bloom.EstimateParameters(1_000_000/DefaultSlots, 0.001)
	if p.Slots != DefaultSlots || p.M != uint64(m) || p.K != uint32(k) {
		t.Fatalf("unexpected params %v; want slots=%d m=%d k=%d", p, DefaultSlots, m, k)
	}
	for _, bad := range []struct {
		n  uint64
		fp float64
	}{{0, 0.001}, {10, 0}, {10, 1}, {10, -1}, {1 << 40, 0.001}} {
		if _, err := NewDedupeParams(bad.n, bad.fp); err == nil {
			t.Fatalf("unexpected success for expected=%d fp=%v", bad.n, bad.fp)
		}
	}
}

func TestSetWindow(t *testing.T) {
	f := func(at string, w time.Duration, wantStart string) {
		t.Helper()
		tm, _ := time.Parse(time.RFC3339, at)
		var v Visit
		v.SetWindow(tm, w)
		start := time.Unix(v.Window, 0).UTC().Format(time.RFC3339)
		if start != wantStart {
			t.Fatalf("unexpected window start for %s in %s windows; got %s; want %s", at, w, start, wantStart)
		}
		if v.Expires != v.Window+int64(w/time.Second)+int64(windowGrace/time.Second) {
			t.Fatalf("unexpected expiry %d for window %d", v.Expires, v.Window)
		}
		if v.Day.String() != at[:10] {
			t.Fatalf("unexpected day for %s; got %s", at, v.Day)
		}
	}
	f("2026-05-11T13:45:00Z", 24*time.Hour, "2026-05-11T00:00:00Z")
	f("2026-05-11T00:00:00Z", 24*time.Hour, "2026-05-11T00:00:00Z")
	f("2026-05-11T23:59:59Z", 24*time.Hour, "2026-05-11T00:00:00Z")
	f("2026-05-11T13:45:00Z", time.Hour, "2026-05-11T13:00:00Z")
	f("1969-12-31T23:00:00Z", 24*time.Hour, "1969-12-31T00:00:00Z")
}
