//go:build !race

package visitlog

import (
	"strconv"
	"testing"

	"github.com/clickgate/clickgate/counter"
)

// manyCreators returns n visits of 300 creators: a string table past
// smallTable.
func manyCreators(n int) []counter.Visit {
	vs := visits(3, n)
	for i := range vs {
		vs[i].Creator = "creator-" + strconv.Itoa(i%300)
	}
	return vs
}

// TestAppendBatchAllocs guards AppendBatch's claim: no allocation into a
// buffer with room, with a small string table and a large one.
func TestAppendBatchAllocs(t *testing.T) {
	for name, b := range map[string]*Batch{
		"small table": {ID: 1, Visits: visits(1, 64)},
		"large table": {ID: 2, Visits: manyCreators(1024)},
	} {
		buf := AppendBatch(nil, b)
		if n := testing.AllocsPerRun(100, func() { buf = AppendBatch(buf[:0], b) }); n != 0 {
			t.Fatalf("unexpected allocations by AppendBatch with a %s; got %v; want 0", name, n)
		}
	}
}

// TestDecodeBatchAllocs: DecodeBatch allocates nothing per visit, and a
// Decoder that has seen the batch's strings allocates nothing, with a
// small string table and a large one.
func TestDecodeBatchAllocs(t *testing.T) {
	b := Batch{Visits: visits(2, 1024)}
	allocs := func(n int) float64 {
		p := AppendBatch(nil, &Batch{ID: 1, Visits: visits(1, n)})
		return testing.AllocsPerRun(100, func() {
			if err := DecodeBatch(p, &b); err != nil {
				t.Fatal(err)
			}
		})
	}
	if few, many := allocs(10), allocs(1024); few != many {
		t.Fatalf("unexpected allocations by DecodeBatch per visit; got %v for 10 visits, %v for 1024", few, many)
	}
	for name, vs := range map[string][]counter.Visit{"small table": visits(1, 1024), "large table": manyCreators(1024)} {
		p := AppendBatch(nil, &Batch{ID: 1, Visits: vs})
		var dec Decoder
		n := testing.AllocsPerRun(100, func() {
			if err := dec.Decode(p, &b); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Fatalf("unexpected allocations by Decoder.Decode with a %s; got %v; want 0", name, n)
		}
	}
}
