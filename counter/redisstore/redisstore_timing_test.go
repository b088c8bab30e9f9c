package redisstore

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/redisstore/redistest"
	"github.com/clickgate/clickgate/counter/storetest"
)

const benchBatch = 256

// BenchmarkCommit commits batches of new visitors, as the Recorder's group
// commit does, from several goroutines; one op is one batch.
func BenchmarkCommit(b *testing.B) {
	srv := redistest.Start(b)
	s, err := Open(context.Background(), Options{URL: srv.URL(0), Params: storetest.Params(b)})
	if err != nil {
		b.Fatalf("cannot open store: %s", err)
	}
	defer s.Close()
	now := time.Now()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		visits := make([]counter.Visit, benchBatch)
		out := make([]counter.Reason, benchBatch)
		for pb.Next() {
			base := int(next.Add(benchBatch))
			for i := range visits {
				visits[i] = counter.Visit{Campaign: "c1", Creator: "alice", Key: storetest.Key(base + i)}
				visits[i].SetWindow(now, 24*time.Hour)
			}
			if err := s.Commit(context.Background(), visits, out); err != nil {
				b.Errorf("cannot commit: %s", err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "visits/s")
}
