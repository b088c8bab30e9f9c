package redirect

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkTimed is the cost of clickgate_redirect_duration_seconds: the
// bare 302 handler and the handler of a known visitor, each without and
// with Timed, in one run (go test -bench Timed -cpu 1,2,4).
func BenchmarkTimed(b *testing.B) {
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
