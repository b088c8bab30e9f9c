//go:build !race

package redirect

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestTimedAllocs: observing a redirect's latency allocates nothing.
func TestTimedAllocs(t *testing.T) {
	h := Timed(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusFound) })
	var ctx fasthttp.RequestCtx
	if n := testing.AllocsPerRun(100, func() { h(&ctx) }); n != 0 {
		t.Fatalf("unexpected allocations of a timed redirect; got %v; want 0", n)
	}
}
