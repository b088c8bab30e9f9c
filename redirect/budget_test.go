package redirect

import (
	"net/netip"
	"testing"

	"github.com/clickgate/clickgate/counter"
)

// TestVisitNetworks: the network and block a visit carries are keyed by
// the secret, one per IPv4 address or IPv6 /64 and one per IPv4 /24 or
// IPv6 /48, never the raw keys, never 0, and apart from each other.
func TestVisitNetworks(t *testing.T) {
	vk, _ := DeriveKeys([]byte(testSecret))
	h := newVisitorHasher(vk)
	other, _ := DeriveKeys([]byte("another secret of thirty-two bytes"))
	o := newVisitorHasher(other)
	f := func(a, b string, sameNetwork, sameBlock bool) {
		t.Helper()
		x, y := netip.MustParseAddr(a), netip.MustParseAddr(b)
		nx, bx := h.NetworkBlock(x)
		ny, by := h.NetworkBlock(y)
		if got := nx == ny; got != sameNetwork {
			t.Fatalf("unexpected network of %s and %s; same %v; want %v", a, b, got, sameNetwork)
		}
		if got := bx == by; got != sameBlock {
			t.Fatalf("unexpected block of %s and %s; same %v; want %v", a, b, got, sameBlock)
		}
		for _, z := range []netip.Addr{x, y} {
			n, b := h.NetworkBlock(z)
			if n == NetworkKey(z) || b == BlockKey(z) || n == 0 || b == 0 || n == b {
				t.Fatalf("unexpected network %x and block %x of %s: raw, 0 or equal", n, b, z)
			}
			if on, ob := o.NetworkBlock(z); n == on || b == ob {
				t.Fatalf("unexpected network and block of %s: the same under another secret", z)
			}
		}
	}
	f("203.0.113.7", "203.0.113.7", true, true)
	f("203.0.113.7", "::ffff:203.0.113.7", true, true)
	f("203.0.113.7", "203.0.113.8", false, true)
	f("203.0.113.7", "203.0.114.7", false, false)
	f("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true, true)
	f("2001:db8:1:2::1", "2001:db8:1:3::1", false, true)
	f("2001:db8:1:2::1", "2001:db8:1:ff00::1", false, true) // another /56 of the /48
	f("2001:db8:1:2::1", "2001:db8:2:2::1", false, false)
	f("203.0.113.7", "::cb00:7107", false, false) // the same 32 bits, as IPv6
	// Every network of a block has a key of its own.
	seen := map[uint64]bool{}
	for i := range 256 {
		n, _ := h.NetworkBlock(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
		seen[n] = true
	}
	if len(seen) != 256 {
		t.Fatalf("256 networks of a /24 have %d keys; want 256", len(seen))
	}
}

// TestBudgetsAtTheEdge: the handler records each visit's network and
// block, and the embedded store's judge refuses what is over their daily
// budgets, however the User-Agent turns. The visitors are still
// redirected.
func TestBudgetsAtTheEdge(t *testing.T) {
	params, err := counter.NewDedupeParams(10_000, 0.001)
	if err != nil {
		t.Fatal(err)
	}
	params.BudgetNetwork, params.BudgetBlock = 2, 3
	e := newEdgeOf(t, params)
	f := func(ip, ua string, want counter.Reason) {
		t.Helper()
		before := e.totals(t)
		if resp := e.do(t, ip, "GET", "/"+testCode, "User-Agent: "+ua+"\r\n"); resp.StatusCode() != 302 {
			t.Fatalf("unexpected status for %s; got %d; want 302", ip, resp.StatusCode())
		}
		after := e.totals(t)
		if after[want] != before[want]+1 || after.Clicks() != before.Clicks()+1 {
			t.Fatalf("unexpected counts after a click from %s with %.20q; got %v, then %v; want one more %s", ip, ua, before, after, want)
		}
	}
	// One address, rotating User-Agents: two people, then over budget.
	f("127.0.0.1", chromeUA, counter.Qualified)
	f("127.0.0.1", firefoxUA, counter.Qualified)
	f("127.0.0.1", iPhoneUA, counter.Budget)
	f("127.0.0.1", androidUA, counter.Budget)
	f("127.0.0.1", chromeUA, counter.Duplicate) // still a duplicate
	// Its /24: one more, then over the block's budget.
	f("127.0.0.2", chromeUA, counter.Qualified)
	f("127.0.0.3", chromeUA, counter.Budget)
	// Another /24 has its own.
	f("127.0.1.1", chromeUA, counter.Qualified)
	// IPv6: /64 networks of one /48 block.
	f("2001:db8:1:1::1", chromeUA, counter.Qualified)
	f("2001:db8:1:1::2", firefoxUA, counter.Qualified)
	f("2001:db8:1:1::3", iPhoneUA, counter.Budget)
	f("2001:db8:1:2::1", chromeUA, counter.Qualified)
	f("2001:db8:1:ff00::1", chromeUA, counter.Budget)
	f("2001:db8:2::1", chromeUA, counter.Qualified)
}
