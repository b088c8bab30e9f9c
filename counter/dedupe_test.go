package counter

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
)

func visitKey(i int) Visit {
	v := Visit{Campaign: "c", Creator: "a", Window: 86400, Expires: 2 * 86400}
	binary.LittleEndian.PutUint64(v.Key[:], uint64(i))
	binary.LittleEndian.PutUint32(v.Key[12:], uint32(i*7919))
	return v
}

func TestLocalFilter(t *testing.T) {
	p, err := NewDedupeParams(10_000, 0.001)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLocalFilter(p)
	for i := range 100 {
		v := visitKey(i)
		v.HasAlso = true
		v.Also = visitKey(1_000_000 + i).Key
		l.Add(&v)
		also := visitKey(1_000_000 + i)
		if !l.Test(&v) || !l.Test(&also) {
			t.Fatalf("unexpected miss of key %d or its second key after Add", i)
		}
		other := v
		other.Campaign = "d"
		if l.Test(&other) {
			t.Fatalf("unexpected hit in another campaign's filter")
		}
	}
	l.Expire(2*86400 - 1)
	if len(*l.windows.Load()) != 1 {
		t.Fatalf("window expired early")
	}
	l.Expire(2 * 86400)
	if len(*l.windows.Load()) != 0 {
		t.Fatalf("unexpected windows after expiry; got %d; want 0", len(*l.windows.Load()))
	}
}

// TestLocalFilterFlood: ten times its capacity of keys, and the filter
// still answers new keys within twice its rate: it forgets the oldest
// instead of filling up. The last capacity's worth of keys are known.
func TestLocalFilterFlood(t *testing.T) {
	const expected, fp = 16_000, 0.001
	p, err := NewDedupeParams(expected, fp)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLocalFilter(p)
	const n = 10 * expected
	for i := range n {
		v := visitKey(i)
		l.Add(&v)
	}
	for i := n - expected/2; i < n; i++ {
		if v := visitKey(i); !l.Test(&v) {
			t.Fatalf("a key of the last generation forgotten: %d", i)
		}
	}
	hits := 0
	const probes = 200_000
	for i := range probes {
		if v := visitKey(10*n + i); l.Test(&v) {
			hits++
		}
	}
	if rate := float64(hits) / probes; rate > 2*fp*1.5 {
		t.Fatalf("false positives %.5f after a flood; want within twice %v", rate, fp)
	}
	t.Logf("false positives after %d keys: %d of %d", n, hits, probes)
}

// TestLocalFilterConcurrent: Adds that fill generations over and over,
// and Tests, from several goroutines at once (the race detector checks
// the lock-free reads), then the filter still knows what it was told last
// and answers new keys within twice its rate.
func TestLocalFilterConcurrent(t *testing.T) {
	const expected, fp = 16_000, 0.001
	p, err := NewDedupeParams(expected, fp)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLocalFilter(p)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 3 * expected {
				v := visitKey(g*10*expected + i)
				v.Window += int64(i%3) * 86400 // windows added meanwhile too
				l.Add(&v)
				probe := visitKey(100*expected + g*10*expected + i)
				l.Test(&probe)
			}
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			l.Expire(int64(i)) // drops nothing, swaps the windows
		}
	}()
	wg.Wait()
	for i := range 500 {
		v := visitKey(1_000_000 + i)
		l.Add(&v)
	}
	for i := range 500 {
		if v := visitKey(1_000_000 + i); !l.Test(&v) {
			t.Fatalf("key %d forgotten right after it was added", i)
		}
	}
	hits := 0
	const probes = 100_000
	for i := range probes {
		if v := visitKey(10_000_000 + i); l.Test(&v) {
			hits++
		}
	}
	if rate := float64(hits) / probes; rate > 2*fp*1.5 {
		t.Fatalf("false positives %.5f after concurrent adds; want within twice %v", rate, fp)
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
