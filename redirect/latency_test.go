package redirect

import (
	"bytes"
	"regexp"
	"strconv"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// TestTimed: a 302 is observed, an answer that is not a redirect is not.
func TestTimed(t *testing.T) {
	count := func() uint64 {
		var b bytes.Buffer
		metrics.WritePrometheus(&b, false)
		m := regexp.MustCompile(`(?m)^clickgate_redirect_duration_seconds_count (\d+)$`).FindSubmatch(b.Bytes())
		if m == nil {
			return 0
		}
		n, _ := strconv.ParseUint(string(m[1]), 10, 64)
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
