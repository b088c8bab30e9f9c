package visitlog

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a monotonic clock that moves only when told, or when
// BatchIDs sleeps on it.
type fakeClock struct {
	elapsed time.Duration
	slept   int
}

func (c *fakeClock) since(time.Time) time.Duration { return c.elapsed }
func (c *fakeClock) sleep(d time.Duration)         { c.slept++; c.elapsed += d }

func TestBatchIDs(t *testing.T) {
	start := time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC)
	var c fakeClock
	g, err := newBatchIDs(0xabcd, start, c.since, c.sleep)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for range 1000 {
		ids = append(ids, g.Next())
	}
	for i, id := range ids {
		if Node(id) != 0xabcd {
			t.Fatalf("unexpected node of id %x; got %x; want abcd", id, Node(id))
		}
		if i > 0 && id <= ids[i-1] {
			t.Fatalf("unexpected id %x after %x: ids must increase", id, ids[i-1])
		}
	}
	// 256 ids a millisecond: the first one of the run is base+1.
	if c.slept != 3 || c.elapsed != 3*time.Millisecond {
		t.Fatalf("unexpected waits for 1000 ids in one millisecond; got %d, %s; want 3, 3ms", c.slept, c.elapsed)
	}
	// The clock moves on: ids follow it, leaving a gap.
	c.elapsed = time.Hour
	id := g.Next()
	if want := g.node | (g.base + uint64(time.Hour/time.Millisecond)<<stampSeqBits); id != want {
		t.Fatalf("unexpected id after an hour; got %x; want %x", id, want)
	}

	// A restart a millisecond of wall clock after the last id hands out
	// ids above every id of the first run.
	last := g.Next()
	restart := start.Add(c.elapsed + time.Millisecond)
	g2, err := newBatchIDs(0xabcd, restart, time.Since, time.Sleep)
	if err != nil {
		t.Fatal(err)
	}
	if id := g2.Next(); id <= last {
		t.Fatalf("unexpected id after a restart; got %x; want above %x", id, last)
	}

	// Node 0 at the epoch: still never 0.
	g0, err := newBatchIDs(0, idEpoch, c.since, c.sleep)
	if err != nil {
		t.Fatal(err)
	}
	if id := g0.Next(); id == 0 {
		t.Fatalf("unexpected batch id 0")
	}

	for _, at := range []time.Time{idEpoch.Add(-time.Millisecond), time.Date(2060, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if _, err := newBatchIDs(1, at, c.since, c.sleep); err == nil {
			t.Fatalf("unexpected success for a clock at %s", at)
		}
	}
}

// TestBatchIDsConcurrent hands out ids from many goroutines on the real
// clock: none twice.
func TestBatchIDsConcurrent(t *testing.T) {
	g, err := NewBatchIDs(7)
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 2000
	got := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				got[w] = append(got[w], g.Next())
			}
		})
	}
	wg.Wait()
	seen := make(map[uint64]bool)
	for _, ids := range got {
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("unexpected id %x handed out twice", id)
			}
			seen[id] = true
		}
	}
}
