//go:build !race

package redirect

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestHandleLocalHitAllocs(t *testing.T) {
	e := newEdge(t)
	ctx := hitCtx(t, e)
	n := testing.AllocsPerRun(1000, func() {
		ctx.Response.Reset()
		e.h.Handle(ctx)
	})
	if n != 0 {
		t.Fatalf("unexpected allocations per redirect of a known visitor; got %v; want 0", n)
	}
	if ctx.Response.StatusCode() != 302 {
		t.Fatalf("unexpected status; got %d; want 302", ctx.Response.StatusCode())
	}
}

// TestHandleNewVisitorAllocs: a new visitor's click allocates nothing on
// its way to the commit queue (visitor keys, cookie, queueing, the wait).
func TestHandleNewVisitorAllocs(t *testing.T) {
	h, next := queueOnly(t)
	var ctx *fasthttp.RequestCtx
	n := testing.AllocsPerRun(1000, func() {
		ctx = next()
		h.Handle(ctx)
	})
	if n != 0 {
		t.Fatalf("%v allocations per new visitor's click outside the commit queue; want 0", n)
	}
	if ctx.Response.StatusCode() != 302 || len(ctx.Response.Header.PeekCookie(VisitorCookie)) == 0 {
		t.Fatalf("status %d, cookie %q: not a new visitor's redirect", ctx.Response.StatusCode(), ctx.Response.Header.PeekCookie(VisitorCookie))
	}
}
