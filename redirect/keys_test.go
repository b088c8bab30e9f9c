package redirect

import (
	"bytes"
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
)

// FuzzVisitorKeys feeds arbitrary Cookie headers, client addresses,
// User-Agents and ids to the visitor-key builder. Only a cookie this
// service signed is accepted, a new one always is, and keys keep apart
// what must stay apart: campaigns and creators, cookies and networks, one
// User-Agent and another, while one IPv6 /64 and an IPv4 address however
// written stay one network.
func FuzzVisitorKeys(f *testing.F) {
	f.Add("cg_vid=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", []byte{203, 0, 113, 7}, []byte(chromeUA), "spring", "alice")
	f.Add("a=b; cg_vid=; cg_vid=x", []byte(netip.MustParseAddr("2001:db8::1").AsSlice()), []byte(""), "c", "d")
	f.Add("", []byte{}, []byte("\x00"), "spring", "bob")
	vk, _ := DeriveKeys([]byte(testSecret))
	h := newVisitorHasher(vk)
	f.Fuzz(func(t *testing.T, cookie string, addr, ua []byte, campaign, creator string) {
		// Ids are checked when campaigns and creators are created: never
		// empty, never with a NUL (the separator of the key's input).
		if campaign == "" || creator == "" || strings.Contains(campaign+creator, "\x00") {
			return
		}
		var hdr fasthttp.RequestHeader
		hdr.Set("Cookie", cookie)
		v := hdr.Cookie(VisitorCookie)
		id, ok := h.ParseCookie(v)
		if ok {
			var raw [cookieIDLen + cookieTagLen]byte
			copy(raw[:], id[:])
			tag := h.cookieTag(id[:])
			copy(raw[cookieIDLen:], tag[:])
			if signed := base64.RawURLEncoding.EncodeToString(raw[:]); signed != string(v) {
				t.Fatalf("accepted cookie %q; the signed cookie of its id is %q", v, signed)
			}
		}
		var fresh [visitorCookieLen]byte
		freshID := h.NewCookie(fresh[:])
		if got, ok := h.ParseCookie(fresh[:]); !ok || got != freshID {
			t.Fatalf("unexpected parse of a new cookie %q; got %x, %v; want %x", fresh, got, ok, freshID)
		}
		bad := bytes.Clone(fresh[:])
		bad[len(cookie)%visitorCookieLen] ^= 1
		if _, ok := h.ParseCookie(bad); ok {
			t.Fatalf("accepted an altered cookie %q", bad)
		}

		a, ok := netip.AddrFromSlice(addr)
		if !ok {
			a = netip.IPv4Unspecified()
		}
		key := h.NetworkKey(campaign, creator, a, ua)
		if again := h.NetworkKey(campaign, creator, a, ua); again != key {
			t.Fatalf("unexpected key for the same visit; got %x then %x", key, again)
		}
		same := a
		switch {
		case a.Is4():
			same = netip.AddrFrom16(a.As16()) // ::ffff:a.b.c.d
		case a.Is6() && !a.Is4In6():
			b := a.As16()
			b[15] ^= 0xff // another address of the /64
			same = netip.AddrFrom16(b)
		}
		if got := h.NetworkKey(campaign, creator, same, ua); got != key {
			t.Fatalf("unexpected key for %v, in the network of %v; got %x; want %x", same, a, got, key)
		}
		for _, other := range []struct {
			what string
			key  counter.VisitorKey
		}{
			{"another creator", h.NetworkKey(campaign, creator+"x", a, ua)},
			{"another campaign", h.NetworkKey(campaign+"x", creator, a, ua)},
			{"campaign and creator swapped", h.NetworkKey(creator, campaign, a, ua)},
			{"another User-Agent", h.NetworkKey(campaign, creator, a, append(bytes.Clone(ua), 'x'))},
			{"a cookie", h.CookieKey(campaign, creator, id[:])},
		} {
			if other.key == key && !(other.what == "campaign and creator swapped" && campaign == creator) {
				t.Fatalf("unexpected key of %s equal to the visit's %x", other.what, key)
			}
		}
	})
}
