//go:build !race

package redirect

import (
	"context"
	"strings"
	"testing"
)

func TestAppendLocationQueryAllocs(t *testing.T) {
	buf := make([]byte, 0, 512)
	value := []byte("AcCJh9AGCHNwcmluZzI2BWFsaWNlCEFCM0tYOVFaUDGR01YJJaH_RnKUGoY7aA")
	query := []byte("utm_source=tiktok&utm_medium=bio&cg%5Fclick=forged&src=x&q=a+b%20c")
	for _, dest := range []string{"https://app.example.com/p?src=1#frag", "https://app.example.com/join"} {
		n := testing.AllocsPerRun(1000, func() {
			buf = AppendLocationQuery(buf[:0], dest, query, "cg_click", value)
		})
		if n != 0 {
			t.Fatalf("unexpected allocations for %q; got %v; want 0", dest, n)
		}
	}
}

// TestHandlePassthroughAllocs: a known visitor's redirect with a query
// passed through allocates nothing.
func TestHandlePassthroughAllocs(t *testing.T) {
	e := newEdge(t)
	c, err := e.store.Campaign(context.Background(), "spring")
	must(t, err)
	c.QueryPassthrough = true
	must(t, e.store.PutCampaign(context.Background(), c))
	must(t, e.table.Refresh(context.Background()))
	ctx := hitCtx(t, e)
	ctx.Request.SetRequestURI("/" + testCode + "?utm_source=tiktok&utm_campaign=spring&cg_click=forged")
	n := testing.AllocsPerRun(1000, func() {
		ctx.Response.Reset()
		e.h.Handle(ctx)
	})
	if n != 0 {
		t.Fatalf("unexpected allocations per redirect with a query; got %v; want 0", n)
	}
	if loc := string(ctx.Response.Header.Peek("Location")); ctx.Response.StatusCode() != 302 || !strings.Contains(loc, "utm_source=tiktok") {
		t.Fatalf("unexpected answer; got %d, Location %q", ctx.Response.StatusCode(), loc)
	}
}
