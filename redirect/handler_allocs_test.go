//go:build !race

package redirect

import (
	"testing"
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
