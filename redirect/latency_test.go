package redirect

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestLatency: each duration lands in the first bucket whose bound it does
// not exceed, buckets are cumulative, and _sum and _count add up.
func TestLatency(t *testing.T) {
	l := newLatency([]float64{0.001, 0.01})
	for _, d := range []time.Duration{500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, time.Second} {
		l.observe(d)
	}
	var b bytes.Buffer
	l.write(&b, "x_seconds")
	want := `x_seconds_bucket{le="0.001"} 2
x_seconds_bucket{le="0.01"} 3
x_seconds_bucket{le="+Inf"} 4
x_seconds_sum 1.0035
x_seconds_count 4
`
	if got := b.String(); !strings.HasSuffix(got, want) {
		t.Fatalf("unexpected histogram; got\n%s\nwant it to end with\n%s", got, want)
	}
}

// TestTimed: a 302 is observed, an answer that is not a redirect is not.
func TestTimed(t *testing.T) {
	count := func() uint64 {
		var n uint64
		for i := range redirectLatency.shards {
			for j := range redirectLatency.shards[i].counts {
				n += redirectLatency.shards[i].counts[j].Load()
			}
		}
		return n
	}
	f := func(status int, want uint64) {
		t.Helper()
		h := Timed(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(status) })
		var ctx fasthttp.RequestCtx
		before := count()
		h(&ctx)
		if got := count() - before; got != want {
			t.Fatalf("unexpected redirects observed for status %d; got %d; want %d", status, got, want)
		}
	}
	f(fasthttp.StatusFound, 1)
	f(fasthttp.StatusNotFound, 0)
	f(fasthttp.StatusOK, 0)
}
