//go:build !race

package counter

import "testing"

func TestTallyAddAllocs(t *testing.T) {
	ty := newTally()
	k := tallyKey{"spring26", "alice", "AB3KX9QZ", 20600, Bot}
	ty.add(k, 1)
	if n := testing.AllocsPerRun(1000, func() { ty.add(k, 1) }); n != 0 {
		t.Fatalf("unexpected allocations for a tallied key; got %v; want 0", n)
	}
	if got := ty.take(); len(got) != 1 || got[0].N != 1002 {
		t.Fatalf("unexpected counts; got %+v; want one of 1002 (AllocsPerRun runs once more to warm up)", got)
	}
}
