//go:build !race

package judge

import (
	"testing"

	"github.com/clickgate/clickgate/counter"
)

// TestAllocs guards the zero-allocation claims: Partition, and Apply of
// visits whose window, creator-day and network are known.
func TestAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { sinkUint = Partition("spring-2026", "creator-00042", 16) }); n != 0 {
		t.Fatalf("unexpected allocations of Partition; got %v; want 0", n)
	}
	p := testParams
	p.VelocityMax = 65534 // the visits stay duplicates
	j := mustNew(t, p)
	visits := []counter.Visit{visit("c1", "alice", "ann", 0), visit("c1", "bob", "bea", 1), visit("c2", "alice", "ann", 2)}
	out := make([]counter.Reason, len(visits))
	j.Apply(visits, out)
	j.Apply(visits, out)
	if out[0] != counter.Duplicate {
		t.Fatalf("unexpected reason of a known visitor; got %s; want duplicates", out[0])
	}
	if n := testing.AllocsPerRun(100, func() { j.Apply(visits, out) }); n != 0 {
		t.Fatalf("unexpected allocations of Apply of known visitors; got %v; want 0", n)
	}
}
