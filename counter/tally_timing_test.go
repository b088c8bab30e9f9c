package counter

import (
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkNote tallies non-qualified clicks on 1,000 links from every
// goroutine at once: run with -cpu 1,2,4 to see contention.
func BenchmarkNote(b *testing.B) {
	t := newTally()
	creators := make([]string, 1000)
	for i := range creators {
		creators[i] = "creator-" + strconv.Itoa(i)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			t.add(tallyKey{"spring26", creators[i%len(creators)], 20600, Bot}, 1)
			i++
		}
	})
}
