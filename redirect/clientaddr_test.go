package redirect

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// clientCtx returns a request from peer (an IP address, or "" for a peer
// without one) carrying one X-Forwarded-For header per xff value.
func clientCtx(tb testing.TB, peer string, xff ...string) *fasthttp.RequestCtx {
	tb.Helper()
	var req fasthttp.Request
	req.SetRequestURI("/AB3KX9QZ")
	for _, v := range xff {
		req.Header.Add("X-Forwarded-For", v)
	}
	var addr net.Addr = &net.UnixAddr{Name: "@", Net: "unix"}
	if peer != "" {
		ip := net.ParseIP(peer)
		if ip == nil {
			tb.Fatalf("bad test peer %q", peer)
		}
		addr = &net.TCPAddr{IP: ip, Port: 40000}
	}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, addr, nil)
	return ctx
}

func mustTrusted(tb testing.TB, s string) *TrustedProxies {
	tb.Helper()
	t, err := ParseTrustedProxies(s)
	if err != nil {
		tb.Fatalf("unexpected error for %q: %v", s, err)
	}
	return t
}

func TestParseTrustedProxies(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		tp, err := ParseTrustedProxies(in)
		if err != nil {
			t.Fatalf("unexpected error for %q: %v", in, err)
		}
		if got := tp.String(); got != want {
			t.Fatalf("unexpected proxies for %q; got %q; want %q", in, got, want)
		}
	}
	f("", "")
	f("  ", "")
	f("10.0.0.0/8", "10.0.0.0/8")
	f("10.0.0.0/8,192.168.1.1,::1/128", "10.0.0.0/8,192.168.1.1/32,::1/128")
	f(" 10.0.0.0/8 , 2001:db8::/32 ", "10.0.0.0/8,2001:db8::/32")
	f("10.1.2.3/8", "10.0.0.0/8")
	f("::1", "::1/128")
	f("::ffff:10.0.0.1", "10.0.0.1/32")
	f("::ffff:10.0.0.0/104", "10.0.0.0/8")
	f("0.0.0.0/0,::/0", "0.0.0.0/0,::/0")

	bad := func(in, mention string) {
		t.Helper()
		_, err := ParseTrustedProxies(in)
		if err == nil {
			t.Fatalf("expecting an error for %q", in)
		}
		if !strings.Contains(err.Error(), mention) {
			t.Fatalf("unexpected error for %q; got %q; want it to mention %q", in, err, mention)
		}
	}
	bad("10.0.0.0/33", `"10.0.0.0/33"`)
	bad("10.0.0.0/8,proxy.internal", `"proxy.internal"`)
	bad("10.0.0.0/8,,1.2.3.4", "entry 2 is empty")
	bad("10.0.0.0/8,", "entry 2 is empty")
	bad("1.2.3", `"1.2.3"`)
	bad("fe80::1%eth0", `"fe80::1%eth0"`)
	bad("::ffff:10.0.0.0/80", "at least /96")
	bad("10.0.0.0/8/8", `"10.0.0.0/8/8"`)
}

func TestTrustedProxiesContains(t *testing.T) {
	tp := mustTrusted(t, "10.0.0.0/8,192.168.1.1,2001:db8:ffff::/48")
	f := func(ip net.IP, want bool) {
		t.Helper()
		if got := tp.Contains(ip); got != want {
			t.Fatalf("unexpected Contains(%v); got %v; want %v", ip, got, want)
		}
	}
	f(net.ParseIP("10.20.30.40"), true) // 16-byte form
	f(net.IPv4(10, 0, 0, 1).To4(), true)
	f(net.ParseIP("11.0.0.1"), false)
	f(net.ParseIP("192.168.1.1"), true)
	f(net.ParseIP("192.168.1.2"), false)
	f(net.ParseIP("2001:db8:ffff:1::1"), true)
	f(net.ParseIP("2001:db8:fffe::1"), false)
	f(nil, false)
	f(net.IP{1, 2, 3}, false)

	var none *TrustedProxies
	if none.Contains(net.ParseIP("10.0.0.1")) {
		t.Fatalf("a nil TrustedProxies must trust nobody")
	}
}

func TestClientIP(t *testing.T) {
	tp := mustTrusted(t, "10.0.0.0/8,192.168.1.1,2001:db8:ffff::/48,::1")
	f := func(tp *TrustedProxies, peer string, xff []string, want string) {
		t.Helper()
		ctx := clientCtx(t, peer, xff...)
		got := ClientIP(ctx, tp)
		if got != netip.MustParseAddr(want) {
			t.Fatalf("unexpected client for peer %q and X-Forwarded-For %q; got %v; want %v", peer, xff, got, want)
		}
	}
	h := func(v ...string) []string { return v }

	// Direct connections: the header is ignored, forged or not.
	f(tp, "203.0.113.7", nil, "203.0.113.7")
	f(tp, "203.0.113.7", h("1.2.3.4"), "203.0.113.7")
	f(tp, "203.0.113.7", h("10.0.0.1, 1.2.3.4"), "203.0.113.7")
	f(tp, "2001:db8:1::1", h("1.2.3.4"), "2001:db8:1::1")
	f(nil, "203.0.113.7", h("1.2.3.4"), "203.0.113.7")
	f(mustTrusted(t, ""), "10.0.0.1", h("1.2.3.4"), "10.0.0.1")
	f(tp, "", h("1.2.3.4"), "0.0.0.0") // no IP peer: not trusted

	// Through a trusted proxy.
	f(tp, "10.0.0.1", nil, "10.0.0.1")
	f(tp, "10.0.0.1", h(""), "10.0.0.1")
	f(tp, "10.0.0.1", h("203.0.113.7"), "203.0.113.7")
	f(tp, "192.168.1.1", h("203.0.113.7"), "203.0.113.7")
	f(tp, "10.0.0.1", h("1.1.1.1, 203.0.113.7"), "203.0.113.7")  // forged left part ignored
	f(tp, "10.0.0.1", h("203.0.113.7, 10.9.9.9"), "203.0.113.7") // trusted hop skipped
	f(tp, "10.0.0.1", h("6.6.6.6,203.0.113.7,10.9.9.9,192.168.1.1"), "203.0.113.7")
	f(tp, "10.0.0.1", h("10.0.0.5, 10.0.0.6"), "10.0.0.5")       // all trusted: leftmost
	f(tp, "10.0.0.1", h("192.168.1.2, 10.0.0.6"), "192.168.1.2") // near miss of a bare IP
	f(tp, "::1", h("203.0.113.7"), "203.0.113.7")
	f(tp, "2001:db8:ffff::2", h("2001:db8:1::1"), "2001:db8:1::1")
	f(tp, "::ffff:10.0.0.1", h("203.0.113.7"), "203.0.113.7") // mapped peer matches IPv4 prefix

	// Several headers are one list, read from the last header back.
	f(tp, "10.0.0.1", h("1.1.1.1", "203.0.113.7, 10.0.0.2"), "203.0.113.7")
	f(tp, "10.0.0.1", h("203.0.113.9", "10.0.0.2"), "203.0.113.9")
	f(tp, "10.0.0.1", h("203.0.113.9", "10.0.0.2", ""), "203.0.113.9")
	f(tp, "10.0.0.1", h("10.0.0.3", "10.0.0.2"), "10.0.0.3")

	// Forms of a hop.
	f(tp, "10.0.0.1", h("203.0.113.7:5555"), "203.0.113.7")
	f(tp, "10.0.0.1", h("2001:db8::1"), "2001:db8::1")
	f(tp, "10.0.0.1", h("[2001:db8::1]"), "2001:db8::1")
	f(tp, "10.0.0.1", h("[2001:db8::1]:443"), "2001:db8::1")
	f(tp, "10.0.0.1", h("::ffff:203.0.113.7"), "203.0.113.7")
	f(tp, "10.0.0.1", h("[::ffff:203.0.113.7]:80"), "203.0.113.7")
	f(tp, "10.0.0.1", h(" \t203.0.113.7 \t"), "203.0.113.7")
	f(tp, "10.0.0.1", h(" , 203.0.113.7 ,, "), "203.0.113.7") // blank elements ignored
	f(tp, "10.0.0.1", h("203.0.113.7,[::1]:8080"), "203.0.113.7")

	// A malformed hop stops the walk at the last good address.
	f(tp, "10.0.0.1", h("203.0.113.7, unknown"), "10.0.0.1")
	f(tp, "10.0.0.1", h("unknown, 203.0.113.7"), "203.0.113.7")
	f(tp, "10.0.0.1", h("6.6.6.6, garbage, 10.0.0.9"), "10.0.0.9")
	f(tp, "10.0.0.1", h("6.6.6.6", "garbage", "10.0.0.9"), "10.0.0.9")
	f(tp, "10.0.0.1", h("1.2.3.4:99999"), "10.0.0.1")
	f(tp, "10.0.0.1", h("1.2.3.4:"), "10.0.0.1")
	f(tp, "10.0.0.1", h("1.2.3.4:80x"), "10.0.0.1")
	f(tp, "10.0.0.1", h("[1.2.3.4]"), "10.0.0.1")
	f(tp, "10.0.0.1", h("[2001:db8::1"), "10.0.0.1")
	f(tp, "10.0.0.1", h("[2001:db8::1]443"), "10.0.0.1")
	f(tp, "10.0.0.1", h("fe80::1%eth0"), "10.0.0.1")
	f(tp, "10.0.0.1", h("010.0.0.1"), "10.0.0.1")
	f(tp, "10.0.0.1", h("1.2.3.4.5"), "10.0.0.1")
	f(tp, "10.0.0.1", h("abc:80"), "10.0.0.1")
	f(tp, "10.0.0.1", h(`"203.0.113.7"`), "10.0.0.1")
	f(tp, "10.0.0.1", h(strings.Repeat("1", 100)), "10.0.0.1")
	f(tp, "10.0.0.1", h("for=203.0.113.7"), "10.0.0.1") // Forwarded syntax is not XFF
}

func TestNetworkKey(t *testing.T) {
	k := func(s string) uint64 { return NetworkKey(netip.MustParseAddr(s)) }
	f := func(a, b string, same bool) {
		t.Helper()
		if got := k(a) == k(b); got != same {
			t.Fatalf("unexpected key equality for %q and %q; got %v; want %v (%#x, %#x)", a, b, got, same, k(a), k(b))
		}
	}
	f("203.0.113.7", "203.0.113.7", true)
	f("203.0.113.7", "203.0.113.8", false)
	f("203.0.113.7", "::ffff:203.0.113.7", true)
	f("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true) // same /64
	f("2001:db8:1:2::1", "2001:db8:1:3::1", false)
	f("0.0.0.0", "::", false)
	f("203.0.113.7", "::cb00:7107", false) // IPv4-compatible form is a different network
	if got, want := k("203.0.113.7"), uint64(0xffffffff_cb007107); got != want {
		t.Fatalf("unexpected key for 203.0.113.7; got %#x; want %#x", got, want)
	}
	if got, want := k("2001:db8:1:2::1"), uint64(0x20010db800010002); got != want {
		t.Fatalf("unexpected key for 2001:db8:1:2::1; got %#x; want %#x", got, want)
	}
	if got := NetworkKey(netip.Addr{}); got != 0 {
		t.Fatalf("unexpected key for the invalid Addr; got %#x; want 0", got)
	}
}

// FuzzClientIP feeds arbitrary X-Forwarded-For values and peers: ClientIP
// never panics, with nobody trusted it returns the peer, and otherwise it
// returns the peer or an address written in the header.
func FuzzClientIP(f *testing.F) {
	f.Add([]byte{10, 0, 0, 1}, "203.0.113.7", "", uint8(1))
	f.Add([]byte{10, 0, 0, 1}, "1.1.1.1, 203.0.113.7:80, 10.0.0.2", "10.0.0.3", uint8(1))
	f.Add([]byte{10, 0, 0, 1}, "[2001:db8::1]:443", " ,garbage, 10.0.0.2", uint8(1))
	f.Add([]byte{203, 0, 113, 7}, "1.2.3.4", "", uint8(0))
	f.Add([]byte(net.ParseIP("::1")), "::ffff:1.2.3.4", "fe80::1%eth0", uint8(2))
	f.Add([]byte(net.ParseIP("10.0.0.1")), "10.0.0.9,\t[::ffff:102:304] ", "", uint8(2))
	f.Add([]byte{}, "1.2.3.4", "", uint8(2))
	f.Add([]byte("\n000"), "0", "\r0.0.0.0", uint8(0x1f))
	sets := []*TrustedProxies{
		nil,
		mustTrusted(f, "10.0.0.0/8,::1,2001:db8::/32"),
		mustTrusted(f, "0.0.0.0/0,::/0"),
	}
	f.Fuzz(func(t *testing.T, peerIP []byte, xff1, xff2 string, set uint8) {
		tp := sets[int(set)%len(sets)]
		var req fasthttp.Request
		for _, v := range []string{xff1, xff2} {
			if v != "" {
				req.Header.Add("X-Forwarded-For", v)
			}
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, &net.TCPAddr{IP: net.IP(peerIP)}, nil)
		peer, ok := netip.AddrFromSlice(peerIP)
		if !ok {
			peer = netip.IPv4Unspecified()
		}
		peer = peer.Unmap()

		got := ClientIP(&ctx, tp)
		if !got.IsValid() || got.Is4In6() || got.Zone() != "" {
			t.Fatalf("unexpected client %v for peer %v and %q, %q", got, peer, xff1, xff2)
		}
		if tp == nil || !tp.ContainsAddr(peer) {
			if got != peer {
				t.Fatalf("unexpected client for untrusted peer %v and %q, %q; got %v; want the peer", peer, xff1, xff2, got)
			}
			return
		}
		// The header as the server holds it: fasthttp neutralises CR and
		// LF in values it is given.
		var h []string
		for _, v := range ctx.Request.Header.PeekAll("X-Forwarded-For") {
			h = append(h, string(v))
		}
		if got != peer && !headerHas(strings.Join(h, ","), got) {
			t.Fatalf("unexpected client for peer %v and %q; got %v; want the peer or a hop in the header", peer, h, got)
		}
	})
}

// headerHas reports whether a list element of h is a. It is a deliberately
// simple, independent reading of the hop forms ClientIP accepts.
func headerHas(h string, a netip.Addr) bool {
	for _, e := range strings.Split(h, ",") {
		e = strings.Trim(e, " \t")
		if p, err := netip.ParseAddrPort(e); err == nil && p.Addr().Unmap() == a {
			return true
		}
		e = strings.TrimSuffix(strings.TrimPrefix(e, "["), "]")
		if x, err := netip.ParseAddr(e); err == nil && x.Unmap() == a {
			return true
		}
	}
	return false
}
