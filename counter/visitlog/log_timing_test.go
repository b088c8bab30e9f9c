package visitlog

import (
	"strconv"
	"testing"
)

var sinkOffset Offset

// BenchmarkLogAppend is the embedded store's group commit: encode the
// visits queued meanwhile as one batch and append it, one write and one
// fsync. The fsync dominates, so the figure to read is visits/s at each
// batch size. Appends are serialized by the log (one committer), so the
// benchmark does not run them in parallel. Run it on the disk the log
// will live on (TMPDIR). extend=no is a file that grows with each
// Append, whose fsync records its size every time: compare it with
// extend=yes, the default, in the same run.
func BenchmarkLogAppend(b *testing.B) {
	for _, c := range []struct {
		n      int
		extend int64
	}{{64, 0}, {64, -1}, {1024, 0}, {1024, -1}} {
		name := "visits=" + strconv.Itoa(c.n) + "/extend=" + map[bool]string{true: "yes", false: "no"}[c.extend == 0]
		b.Run(name, func(b *testing.B) {
			n := c.n
			l := openLog(b, b.TempDir(), Options{ExtendBytes: c.extend})
			batch := &Batch{Visits: typical(1, n)}
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				batch.ID++
				buf = AppendBatch(buf[:0], batch)
				end, err := l.Append(buf)
				if err != nil {
					b.Fatal(err)
				}
				sinkOffset = end
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "visits/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/visit")
		})
	}
}

// BenchmarkLogRead reads a log of 256 batches of 1,024 visits (about 14
// MB, in 4 MiB segments) from its beginning: with decode is what a judge
// does, without is the log alone.
func BenchmarkLogRead(b *testing.B) {
	const batches, n = 256, 1024
	l := openLog(b, b.TempDir(), Options{SegmentBytes: 4 << 20})
	batch := &Batch{Visits: typical(1, n)}
	var size int64
	for i := range batches {
		batch.ID = uint64(i + 1)
		p := AppendBatch(nil, batch)
		size += int64(len(p))
		if _, err := l.Append(p); err != nil {
			b.Fatal(err)
		}
	}
	for _, decode := range []bool{false, true} {
		b.Run("decode="+strconv.FormatBool(decode), func(b *testing.B) {
			var into Batch
			var dec Decoder
			b.ReportAllocs()
			b.SetBytes(size)
			for b.Loop() {
				err := l.Read(Offset{}, func(_, next Offset, p []byte) error {
					sinkOffset = next
					if decode {
						return dec.Decode(p, &into)
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batches*n)/b.Elapsed().Seconds(), "visits/s")
		})
	}
}
