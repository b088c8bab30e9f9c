package judge

import (
	"testing"

	"github.com/clickgate/clickgate/counter"
)

// TestDecided: Decided grows by the reasons Apply gave, a MarkOnly visit
// excepted. Other tests of the package apply visits too, so it compares
// the counts before and after; run it without t.Parallel.
func TestDecided(t *testing.T) {
	j := mustNew(t, testParams)
	mark := visit("c1", "carol", "cid", 0)
	mark.MarkOnly = true
	visits := []counter.Visit{visit("c1", "alice", "ann", 0), visit("c1", "alice", "ann", 1000), visit("c1", "bob", "bea", 2000), mark}
	out := make([]counter.Reason, len(visits))
	before := Decided()
	j.Apply(visits, out)
	after := Decided()
	var want counter.Counts
	want[counter.Qualified], want[counter.Duplicate] = 2, 1
	for r := range after {
		if got := after[r] - before[r]; got != want[r] {
			t.Fatalf("unexpected decided %s; got %d; want %d", counter.Reason(r), got, want[r])
		}
	}
}
