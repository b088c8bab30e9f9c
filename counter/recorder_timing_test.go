package counter_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/boltstore"
	"github.com/clickgate/clickgate/counter/storetest"
)

// BenchmarkRecord is new visitors recorded by 64 callers at once (32 a
// core, two cores here) through the embedded store, up to their durable
// append (the judge decides after): the queue, the group commits and their
// fsyncs. Its allocations are the hot path's share of the collector's
// work.
//
//	go test ./counter -run '^$' -bench Record -benchtime 50000x
func BenchmarkRecord(b *testing.B) {
	p := storetest.Params(b)
	bs, err := boltstore.Open(b.TempDir(), p)
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	r := counter.NewRecorder(counter.RecorderOptions{Store: bs, Params: p})
	r.Start()
	defer r.Stop(context.Background())
	var n atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v := visit(int(n.Add(1)))
			if reason, out := r.Record(&v); out != counter.Committed || reason != counter.Pending {
				b.Errorf("unexpected record of a new visitor: %v, %v", reason, out)
				return
			}
		}
	})
}
