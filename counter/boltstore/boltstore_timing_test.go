package boltstore

import (
	"context"
	"encoding/binary"
	"strconv"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/storetest"
)

var sinkReasons []counter.Reason

// BenchmarkCommit commits batches of new visitors, one fsynced transaction
// per batch: the cost per visit shows the fsync amortised by group commit.
// Commits are serialized by the store, so the benchmark does not run them in
// parallel. Run it on the disk the data directory will live on (TMPDIR).
func BenchmarkCommit(b *testing.B) {
	for _, batch := range []int{1, 64, 1024} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			s, err := Open(b.TempDir(), storetest.Params(b))
			if err != nil {
				b.Fatalf("cannot open store: %s", err)
			}
			defer s.Close()
			ctx := context.Background()
			now := time.Now()
			visits := make([]counter.Visit, batch)
			for i := range visits {
				visits[i] = counter.Visit{Campaign: "spring", Creator: "creator-" + strconv.Itoa(i%16)}
				visits[i].SetWindow(now, 24*time.Hour)
			}
			out := make([]counter.Reason, batch)
			var n uint64
			b.ReportAllocs()
			for b.Loop() {
				for i := range visits {
					n++
					visits[i].Key = benchKey(n)
				}
				if err := s.Commit(ctx, visits, out); err != nil {
					b.Fatalf("cannot commit: %s", err)
				}
			}
			sinkReasons = out
			if out[0] != counter.Qualified {
				b.Fatalf("unexpected reason for a new visitor; got %v; want qualified", out[0])
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "visits/s")
		})
	}
}

// benchKey spreads keys like a keyed hash (splitmix64), so that inserts land
// all over the window's B+tree as real visitor keys do.
func benchKey(n uint64) counter.VisitorKey {
	var k counter.VisitorKey
	for i := 0; i < 2; i++ {
		n += 0x9e3779b97f4a7c15
		z := n
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(k[8*i:], z^(z>>31))
	}
	return k
}
