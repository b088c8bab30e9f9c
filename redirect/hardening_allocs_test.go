//go:build !race

package redirect

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestHandleHardenedAllocs guards the hot path with every check on: the
// host allowlist, and a probe limit that another network is over, so that
// known codes take the sketch lookup. Refusals allocate nothing either.
func TestHandleHardenedAllocs(t *testing.T) {
	// The limit is above the 1001 unknown codes asked for below.
	probes := NewProbes(ProbeOptions{Max: 2000, Window: time.Minute})
	e := newEdge(t, withHosts(t, "go.example.com"), func(o *Options) { o.Probes = probes })
	for range 2001 {
		probes.Unknown(1, time.Now())
	}
	f := func(target, host string, want int) {
		t.Helper()
		var req fasthttp.Request
		req.SetRequestURI(target)
		req.Header.SetHost(host)
		req.Header.SetUserAgent(tiktokUA)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 84, 1), Port: 5555}, nil)
		e.h.Handle(&ctx) // a known visitor from now on
		n := testing.AllocsPerRun(1000, func() {
			ctx.Response.Reset()
			e.h.Handle(&ctx)
		})
		if n != 0 {
			t.Fatalf("unexpected allocations for %s on %s; got %v; want 0", target, host, n)
		}
		if got := ctx.Response.StatusCode(); got != want {
			t.Fatalf("unexpected status for %s on %s; got %d; want %d", target, host, got, want)
		}
	}
	f("/"+testCode, "go.example.com", 302)
	f("/"+testCode, "evil.example", 421)
	f("http://evil@go.example.com/"+testCode, "go.example.com", 421)
	f("/ZZZZZZZZ", "go.example.com", 404)
	f("/%41", "go.example.com", 404)
}

func TestHostsAllowsAllocs(t *testing.T) {
	h, err := ParseHosts("links.example.com,go.example.com")
	if err != nil {
		t.Fatal(err)
	}
	host := []byte("GO.EXAMPLE.COM:443")
	if n := testing.AllocsPerRun(1000, func() { h.Allows(host) }); n != 0 {
		t.Fatalf("unexpected allocations per Allows; got %v; want 0", n)
	}
}
