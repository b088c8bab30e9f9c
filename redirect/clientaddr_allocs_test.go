//go:build !race

package redirect

import (
	"net/netip"
	"testing"
)

func TestClientIPAllocs(t *testing.T) {
	tp := mustTrusted(t, "10.0.0.0/8,2001:db8:ffff::/48")
	f := func(peer string, xff []string, want string) {
		t.Helper()
		ctx := clientCtx(t, peer, xff...)
		var got netip.Addr
		n := testing.AllocsPerRun(1000, func() {
			got = ClientIP(ctx, tp)
			_ = NetworkKey(got)
		})
		if n != 0 {
			t.Fatalf("unexpected allocations for peer %q and X-Forwarded-For %q; got %v; want 0", peer, xff, n)
		}
		if got != netip.MustParseAddr(want) {
			t.Fatalf("unexpected client for peer %q and X-Forwarded-For %q; got %v; want %v", peer, xff, got, want)
		}
	}
	f("203.0.113.7", nil, "203.0.113.7")                        // direct
	f("203.0.113.7", []string{"1.2.3.4"}, "203.0.113.7")        // direct, forged header
	f("2001:db8:1::1", nil, "2001:db8:1::1")                    // direct IPv6
	f("10.0.0.1", []string{"203.0.113.7"}, "203.0.113.7")       // one trusted proxy
	f("10.0.0.1", []string{"[2001:db8::1]:443"}, "2001:db8::1") // IPv6 hop
	f("10.0.0.1", []string{"1.1.1.1", "203.0.113.7, 10.0.0.2"}, "203.0.113.7")
	f("10.0.0.1", []string{"203.0.113.7, unknown"}, "10.0.0.1") // malformed hop: error dropped
}
