package redirect

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
)

// BenchmarkHandle compares, in one run, a bare handler that only answers 302
// (the ceiling) with clickgate's handler for a known visitor: resolution,
// visitor key, local Bloom hit, tally and a signed click id; each also
// with Timed, the cost of clickgate_redirect_duration_seconds
// (go test -bench Handle -cpu 1,2,4).
func BenchmarkHandle(b *testing.B) {
	bare := func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Location", testDest.Default)
		ctx.SetStatusCode(fasthttp.StatusFound)
	}
	e := newEdge(b)
	hitCtx(b, e)
	for _, bc := range []struct {
		name string
		h    fasthttp.RequestHandler
	}{{"bare302", bare}, {"bare302Timed", Timed(bare)}, {"localHit", e.h.Handle}, {"localHitTimed", Timed(e.h.Handle)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var req fasthttp.Request
				req.SetRequestURI("/" + testCode)
				req.Header.SetUserAgent(tiktokUA)
				var ctx fasthttp.RequestCtx
				ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 7), Port: 5555}, nil)
				n := 0
				for pb.Next() {
					ctx.Response.Reset()
					bc.h(&ctx)
					n++
				}
				if n > 0 && ctx.Response.StatusCode() != 302 {
					b.Fatalf("unexpected status %d", ctx.Response.StatusCode())
				}
			})
		})
	}
}

// BenchmarkHandleNewVisitor is a new visitor's click up to the commit
// queue: both visitor keys, a new signed cookie, queueing and the wait
// (the commit itself is the store's, measured in its own benchmarks).
func BenchmarkHandleNewVisitor(b *testing.B) {
	h, next := queueOnly(b)
	b.ReportAllocs()
	for b.Loop() {
		h.Handle(next())
	}
}

// queueOnly returns a handler whose recorder takes visits into its queue
// and never commits them (its committer is not started) and a context for
// a new visitor on each call: the request path of a new visitor up to the
// commit queue.
func queueOnly(t testing.TB) (*Handler, func() *fasthttp.RequestCtx) {
	e := newEdge(t)
	params, _ := counter.NewDedupeParams(10_000, 0.001)
	rec := counter.NewRecorder(counter.RecorderOptions{Store: e.store, Params: params, CommitTimeout: time.Nanosecond, MaxQueue: 1 << 30})
	h := New(Options{Table: e.table, Recorder: rec, Secret: []byte(testSecret), PublicURL: "https://go.example.com"})
	var req fasthttp.Request
	req.SetRequestURI("/" + testCode)
	req.Header.SetUserAgent(tiktokUA)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, nil)
	addrs := make([]net.TCPAddr, 1<<16)
	for i := range addrs {
		addrs[i] = net.TCPAddr{IP: net.IPv4(10, 1, byte(i>>8), byte(i)), Port: 1}
	}
	n := 0
	return h, func() *fasthttp.RequestCtx {
		ctx.Response.Reset()
		ctx.SetRemoteAddr(&addrs[n%len(addrs)])
		n++
		return &ctx
	}
}
