package admin

import (
	"context"
	"fmt"
	"testing"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/boltstore"
	"github.com/clickgate/clickgate/counter/redisstore"
	"github.com/clickgate/clickgate/counter/redisstore/redistest"
	"github.com/clickgate/clickgate/redirect"
	"github.com/clickgate/clickgate/redirect/clickid"
)

// BenchmarkCreateLink is the cost of one POST /v1/links, the node's own
// table refreshed after it as the API does, in a catalog of size links
// already: what creating links one by one costs as a catalog grows.
//
//	go test ./redirect/admin -run '^$' -bench CreateLink -benchtime 200x
func BenchmarkCreateLink(b *testing.B) {
	for _, kind := range []string{"embedded", "redis"} {
		for _, size := range []int{1_000, 5_000, 20_000} {
			b.Run(fmt.Sprintf("store=%s/links=%d", kind, size), func(b *testing.B) {
				h := newHarnessOf(b, openBenchStore(b, kind))
				h.seed(b)
				seedLinks(b, h.store, size)
				if err := h.table.Refresh(context.Background()); err != nil {
					b.Fatal(err)
				}
				body := `{"campaign":"spring","creator":"alice","destinations":{"default":"https://app.example.com/join"}}`
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					h.call(b, "POST", "/v1/links", body, 201)
				}
				b.StopTimer()
				if got, want := h.table.Len(), size+b.N; got != want {
					b.Fatalf("unexpected links served; got %d; want %d", got, want)
				}
			})
		}
	}
}

// openBenchStore opens an empty store of kind, embedded or redis.
func openBenchStore(tb testing.TB, kind string) counter.Store {
	tb.Helper()
	params, err := counter.NewDedupeParams(10_000, 0.001)
	if err != nil {
		tb.Fatal(err)
	}
	var s counter.Store
	switch kind {
	case "embedded":
		s, err = boltstore.Open(tb.TempDir(), params)
	case "redis":
		srv := redistest.Start(tb)
		s, err = redisstore.Open(context.Background(), redisstore.Options{URL: srv.URL(0), Params: params})
	default:
		panic("BUG: unknown store kind " + kind)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// seedLinks creates n links of spring's alice in s directly.
func seedLinks(tb testing.TB, s counter.Store, n int) {
	tb.Helper()
	ctx := context.Background()
	for i := range n {
		l := counter.Link{Code: fmt.Sprintf("seed%07d", i), Campaign: "spring", Creator: "alice",
			Destinations: counter.Destinations{Default: "https://app.example.com/join"}}
		if err := s.CreateLink(ctx, l); err != nil {
			tb.Fatal(err)
		}
	}
}

// newHarnessOf is newHarness over store, which it closes at the end.
func newHarnessOf(tb testing.TB, store counter.Store) *harness {
	tb.Helper()
	params, _ := counter.NewDedupeParams(10_000, 0.001)
	table := redirect.NewTable(redirect.TableOptions{Store: store})
	rec := counter.NewRecorder(counter.RecorderOptions{Store: store, Params: params})
	rec.Start()
	tb.Cleanup(func() {
		rec.Stop(context.Background())
		store.Close()
	})
	api, err := New(Options{Store: store, Table: table, Recorder: rec, Token: token, PublicURL: "https://go.example.com",
		AppKey: appKey, Clicks: clickid.NewSigner([]byte(clickKey))})
	if err != nil {
		tb.Fatal(err)
	}
	return &harness{api: api, store: store, table: table}
}

// BenchmarkBulkImport is one POST /v1/links:bulk of 10,000 links with
// generated codes, this node's table refreshed after.
//
//	go test ./redirect/admin -run '^$' -bench BulkImport -benchtime 5x
func BenchmarkBulkImport(b *testing.B) {
	const n = 10_000
	body := bulkBody(n, "")
	for _, kind := range []string{"embedded", "redis"} {
		b.Run("store="+kind, func(b *testing.B) {
			h := newHarnessOf(b, openBenchStore(b, kind))
			h.seed(b)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				h.call(b, "POST", "/v1/links:bulk", body, 201)
			}
			b.StopTimer()
			if got := h.table.Len(); got != n*b.N {
				b.Fatalf("unexpected links served; got %d; want %d", got, n*b.N)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*b.N), "ns/link")
		})
	}
}
