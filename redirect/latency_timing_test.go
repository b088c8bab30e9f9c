package redirect

import (
	"testing"
)

// BenchmarkLatencyObserve is one update of the redirect latency histogram
// alone.
func BenchmarkLatencyObserve(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			redirectLatency.Update(0.003)
		}
	})
}
