package redirect

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// TrustedProxies is a set of CIDRs whose X-Forwarded-For is believed.
// The zero value and nil trust nobody. It is immutable after
// ParseTrustedProxies and safe for concurrent use.
type TrustedProxies struct {
	prefixes []netip.Prefix
}

// ParseTrustedProxies parses a comma-separated list of CIDRs and bare
// addresses, for example "10.0.0.0/8,192.168.1.1,::1/128". A bare address
// is a /32 (IPv4) or /128 (IPv6). Host bits after the prefix length are
// ignored ("10.1.2.3/8" is 10.0.0.0/8), as net.ParseCIDR does. An empty (or
// all-blank) string trusts nobody.
func ParseTrustedProxies(s string) (*TrustedProxies, error) {
	t := &TrustedProxies{}
	if strings.TrimSpace(s) == "" {
		return t, nil
	}
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, fmt.Errorf("cannot parse trusted proxies %q: entry %d is empty", s, i+1)
		}
		p, err := parseTrustedPrefix(f)
		if err != nil {
			return nil, fmt.Errorf("cannot parse trusted proxy %q (entry %d of %q): %w", f, i+1, s, err)
		}
		t.prefixes = append(t.prefixes, p)
	}
	return t, nil
}

func parseTrustedPrefix(f string) (netip.Prefix, error) {
	if !strings.Contains(f, "/") {
		a, err := netip.ParseAddr(f)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("want an IP address or CIDR: %w", err)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("want an address without a zone")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(f)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("want an IP address or CIDR: %w", err)
	}
	// Peers and hops are compared unmapped, so an IPv4-mapped prefix such
	// as ::ffff:10.0.0.0/104 must become 10.0.0.0/8 to ever match.
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("an IPv4-mapped prefix must be at least /96")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Contains reports whether ip belongs to a trusted proxy. IPv4-mapped IPv6
// addresses match IPv4 prefixes.
func (t *TrustedProxies) Contains(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return ok && t.ContainsAddr(a)
}

// ContainsAddr is Contains for a netip.Addr.
func (t *TrustedProxies) ContainsAddr(a netip.Addr) bool {
	if t == nil {
		return false
	}
	a = a.Unmap()
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// String returns the canonical list, for logs and flag defaults.
func (t *TrustedProxies) String() string {
	if t == nil {
		return ""
	}
	var b strings.Builder
	for i, p := range t.prefixes {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// ClientIP returns the client's address: the socket peer, unless the peer is
// a trusted proxy. Then X-Forwarded-For is read right to left, skipping
// trusted hops, and the first untrusted address is the client. If every hop
// is trusted, the leftmost one is. A malformed hop stops the walk at the
// last good address: that hop wrote the garbage, so it is not trusted and is
// the client. A forged X-Forwarded-For on a direct (untrusted) connection
// changes nothing.
//
// Several X-Forwarded-For headers are one comma-joined list (RFC 9110, 5.3).
// A hop may be an IPv4 address with or without ":port", or an IPv6 address
// bare or in brackets with or without ":port"; blank list elements are
// ignored; zones are malformed. IPv4-mapped IPv6 addresses are returned as
// IPv4. The result is always valid: a peer without an IP address (a unix
// socket, an in-memory listener) is 0.0.0.0.
//
// ClientIP returns a netip.Addr rather than a net.IP because a net.IP for an
// address parsed from the header would have to be allocated; netip.Addr is a
// value. It does not allocate (TestClientIPAllocs). Use NetworkKey for the
// client's network.
func ClientIP(ctx *fasthttp.RequestCtx, t *TrustedProxies) netip.Addr {
	peer, ok := netip.AddrFromSlice(ctx.RemoteIP())
	if !ok {
		peer = netip.IPv4Unspecified()
	}
	peer = peer.Unmap()
	if t == nil || len(t.prefixes) == 0 || !t.ContainsAddr(peer) {
		return peer
	}
	return walkForwardedFor(peer, ctx.Request.Header.PeekAll(fasthttp.HeaderXForwardedFor), t)
}

// walkForwardedFor reads the hops in hs (header values in order of
// appearance) right to left, starting from the trusted peer.
func walkForwardedFor(peer netip.Addr, hs [][]byte, t *TrustedProxies) netip.Addr {
	client := peer
	for i := len(hs) - 1; i >= 0; i-- {
		h := hs[i]
		for end := len(h); end >= 0; {
			start := bytes.LastIndexByte(h[:end], ',') + 1
			hop := trimOWS(h[start:end])
			end = start - 1
			if len(hop) == 0 {
				continue
			}
			a, ok := parseHop(hop)
			if !ok {
				return client
			}
			client = a
			if !t.ContainsAddr(a) {
				return client
			}
		}
	}
	return client
}

// maxHopLen bounds the work per hop: the longest valid form is a bracketed
// IPv6 address with an embedded IPv4 and a port, 53 bytes.
const maxHopLen = 64

// parseHop parses one X-Forwarded-For element.
func parseHop(b []byte) (netip.Addr, bool) {
	if len(b) > maxHopLen {
		return netip.Addr{}, false
	}
	host := b
	want6 := false
	if b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host = b[1:end]
		if rest := b[end+1:]; len(rest) > 0 && (rest[0] != ':' || !validPort(rest[1:])) {
			return netip.Addr{}, false
		}
		want6 = true
	} else if i := bytes.IndexByte(b, ':'); i >= 0 && bytes.IndexByte(b[i+1:], ':') < 0 {
		// Exactly one colon: IPv4 with a port. IPv6 has at least two.
		if !validPort(b[i+1:]) {
			return netip.Addr{}, false
		}
		host = b[:i]
		if bytes.IndexByte(host, '.') < 0 {
			return netip.Addr{}, false
		}
	}
	if !addrChars(host) {
		return netip.Addr{}, false
	}
	// The string aliases b only for the duration of the call: netip.Addr
	// keeps no reference to it (zones, which would, are rejected below,
	// and the error, which would, is dropped). Converting with string(b)
	// allocates on every call because the error makes it escape.
	a, err := netip.ParseAddr(unsafe.String(unsafe.SliceData(host), len(host)))
	if err != nil || a.Zone() != "" || (want6 && !a.Is6()) {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// addrChars reports whether b holds only the characters of an IP address
// without a zone. It turns away the usual garbage ("unknown", obfuscated
// identifiers) before netip.ParseAddr, whose error would allocate.
func addrChars(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// validPort reports whether b is 1 to 5 decimal digits no greater than 65535.
func validPort(b []byte) bool {
	if len(b) == 0 || len(b) > 5 {
		return false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// trimOWS trims the optional whitespace (spaces and tabs) that may surround
// list elements.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// BlockKey returns the block of networks a belongs to, as one uint64: an
// IPv4 /24 or an IPv6 /48, what one customer of a host or an ISP usually
// holds. IPv4 blocks key like NetworkKey's, inside ff00::/8 (multicast,
// never a source), so the two families cannot collide.
func BlockKey(a netip.Addr) uint64 {
	a = a.Unmap()
	switch {
	case a.Is4():
		b := a.As4()
		return 0xffffffff<<32 | uint64(binary.BigEndian.Uint32(b[:]))&^0xff
	case a.Is6():
		b := a.As16()
		return binary.BigEndian.Uint64(b[:8]) &^ 0xffff
	}
	return 0
}

// NetworkKey returns the client network of a as one uint64, for visitor
// keys and click-rate limits: an IPv6 address is keyed by its /64, since one
// device rotates through the addresses of its network, and an IPv4 address
// by itself (/32) in the upper half 0xffffffff. That upper half would be an
// IPv6 /64 inside ff00::/8, multicast, which is never a source address, so
// IPv4 and IPv6 keys cannot collide. IPv4-mapped addresses key as IPv4. The
// invalid Addr keys as 0.
func NetworkKey(a netip.Addr) uint64 {
	a = a.Unmap()
	switch {
	case a.Is4():
		b := a.As4()
		return 0xffffffff<<32 | uint64(binary.BigEndian.Uint32(b[:]))
	case a.Is6():
		b := a.As16()
		return binary.BigEndian.Uint64(b[:8])
	}
	return 0
}
