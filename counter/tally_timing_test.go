package counter

import (
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkNote tallies non-qualified clicks on 1,000 links of 500
// creators from every goroutine at once: run with -cpu 1,2,4 to see
// contention.
func BenchmarkNote(b *testing.B) {
	t := newTally()
	creators, links := make([]string, 500), make([]string, 1000)
	for i := range links {
		links[i] = "LINK" + strconv.Itoa(100000+i)
	}
	for i := range creators {
		creators[i] = "creator-" + strconv.Itoa(i)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			l := i % len(links)
			t.add(tallyKey{"spring26", creators[l%len(creators)], links[l], 20600, Bot}, 1)
			i++
		}
	})
}
