package counter

import (
	"sync"
	"testing"
)

// TestTallyTotal: total is every count added, by reason, whether taken,
// restored or still tallied, and never goes down while adds, takes and
// restores run at once.
func TestTallyTotal(t *testing.T) {
	tl := newTally()
	add := func(creator string, r Reason, n int64) { tl.add(tallyKey{"spring", creator, "", 20000, r}, n) }
	add("alice", Bot, 2)
	add("bob", Bot, 1)
	add("alice", Duplicate, 5)
	f := func(what string, want Counts) {
		t.Helper()
		if got := tl.total(); got != want {
			t.Fatalf("unexpected total %s; got %v; want %v", what, got, want)
		}
	}
	var want Counts
	want[Bot], want[Duplicate] = 3, 5
	f("before a take", want)
	taken := tl.take()
	f("after a take", want)
	tl.restore(taken[:1])
	f("after a restore", want)
	add("carol", Uncounted, 4)
	want[Uncounted] = 4
	f("after another add", want)
	tl.take()
	tl.take() // drops the idle keys
	f("after the keys went idle", want)

	// Concurrently: total only grows, and ends at every add.
	const workers, adds = 4, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range workers {
		wg.Go(func() {
			for i := range adds {
				add(string(rune('a'+i%7)), Prefetch, 1)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var last int64
		for {
			select {
			case <-stop:
				return
			default:
			}
			counts := tl.take()
			if len(counts) > 1 {
				tl.restore(counts[len(counts)/2:])
			}
			got := tl.total()[Prefetch]
			if got < last {
				t.Errorf("unexpected total of prefetches; got %d after %d", got, last)
				return
			}
			last = got
		}
	}()
	wg.Wait()
	close(stop)
	<-done
	want[Prefetch] = workers * adds
	f("after concurrent adds", want)
}
