package visitlog

import (
	"strconv"
	"testing"

	"github.com/clickgate/clickgate/counter"
)

var (
	sinkBytes []byte
	sinkBatch Batch
)

// typical returns n visits as a busy campaign sends them: a few hundred
// creators, most visits of new visitors with a cookie (a second key).
func typical(b, n int) []counter.Visit {
	vs := visits(b, n)
	for i := range vs {
		vs[i].Campaign = "spring26"
		vs[i].Creator = "creator-" + strconv.Itoa((i*7919)%300)
		vs[i].HasAlso = i%5 != 0
	}
	return vs
}

// BenchmarkAppendBatch encodes a group commit's batch, as the committer
// does once per commit, from several goroutines to show the encoder pool
// does not serialize them.
func BenchmarkAppendBatch(b *testing.B) {
	for _, n := range []int{64, 1024} {
		b.Run("visits="+strconv.Itoa(n), func(b *testing.B) {
			batch := &Batch{ID: 1, Visits: typical(1, n)}
			size := len(AppendBatch(nil, batch))
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 0, size)
				for pb.Next() {
					buf = AppendBatch(buf[:0], batch)
				}
				sinkBytes = buf
			})
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/visit")
			b.ReportMetric(float64(size)/float64(n), "bytes/visit")
		})
	}
}

// BenchmarkDecodeBatch decodes a batch into a reused one with a Decoder, as
// a judge does for every batch it reads.
func BenchmarkDecodeBatch(b *testing.B) {
	for _, n := range []int{64, 1024} {
		b.Run("visits="+strconv.Itoa(n), func(b *testing.B) {
			p := AppendBatch(nil, &Batch{ID: 1, Visits: typical(1, n)})
			var into Batch
			var dec Decoder
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if err := dec.Decode(p, &into); err != nil {
					b.Fatal(err)
				}
			}
			sinkBatch = into
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/visit")
		})
	}
}
