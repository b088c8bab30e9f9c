package spool

import (
	"strconv"
	"testing"
)

var sinkID uint64

// BenchmarkAppend writes batches of visits, one write and one fsync per
// batch, as the Recorder spools one group commit: the cost per visit shows
// the fsync amortised by the batch. Appends are serialized by the spool,
// so the benchmark does not run them in parallel. Run it on the disk the
// spool will live on (TMPDIR).
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 64, 1024} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			s := open(b, b.TempDir(), Options{})
			vs := visits(1, batch)
			b.ReportAllocs()
			for b.Loop() {
				id, err := s.Append(vs, false)
				if err != nil {
					b.Fatal(err)
				}
				sinkID = id
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/visit")
			b.ReportMetric(float64(s.Size())/float64(b.N*batch), "bytes/visit")
		})
	}
}

// BenchmarkAppendAck is a batch's whole life in the spool when the store
// answers late: append, then ack (two fsyncs), and the segment deleted.
func BenchmarkAppendAck(b *testing.B) {
	s := open(b, b.TempDir(), Options{})
	vs := visits(1, 64)
	b.ReportAllocs()
	for b.Loop() {
		id, err := s.Append(vs, true)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Ack(id); err != nil {
			b.Fatal(err)
		}
	}
}
