//go:build !race

package redirect

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
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
