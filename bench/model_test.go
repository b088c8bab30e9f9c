package bench

import (
	"fmt"
	"math"
	"net/netip"
	"testing"

	"github.com/clickgate/clickgate/redirect/useragent"
)

func TestAgentsClassify(t *testing.T) {
	seen := map[string]bool{}
	for _, ua := range PersonAgents {
		if c := useragent.Classify([]byte(ua)); c != useragent.Person {
			t.Errorf("person agent classified %s: %s", c, ua)
		}
		if seen[ua] {
			t.Errorf("person agent listed twice: %s", ua)
		}
		seen[ua] = true
	}
	for _, ua := range FraudAgents {
		if c := useragent.Classify([]byte(ua)); c != useragent.Person {
			t.Errorf("fraudster's agent classified %s: %s", c, ua)
		}
		if seen[ua] {
			t.Errorf("agent listed twice: %s", ua)
		}
		seen[ua] = true
	}
	for _, ua := range CrawlerAgents {
		if c := useragent.Classify([]byte(ua)); c != useragent.Bot {
			t.Errorf("crawler agent classified %s: %s", c, ua)
		}
	}
	for _, ua := range PreviewAgents {
		if c := useragent.Classify([]byte(ua)); c != useragent.Preview {
			t.Errorf("preview agent classified %s: %s", c, ua)
		}
	}
}

func TestGeneratorFollowsTheModel(t *testing.T) {
	m := DefaultModel()
	m.AddressBase = 65535 // wraps around to block 0
	g, err := NewGenerator(m)
	if err != nil {
		t.Fatal(err)
	}
	var kinds [numKinds]int
	var total, visitors, once int
	addrs := map[[4]byte]bool{}
	var s, again Session
	const sessions = 40000
	for n := range uint64(sessions) {
		g.Session(n, &s)
		for _, r := range s.Requests {
			kinds[r.Kind]++
			total++
		}
		if a := s.Addr.As4(); addrs[a] || a[0] != 127 || a[3] == 0 || a[3] == 255 || a[1] == 255 && a[2] == 255 {
			t.Fatalf("session %d: address %s reused or outside 127.0.0.0/8 hosts", n, s.Addr)
		} else {
			addrs[a] = true
		}
		g.Session(n, &again)
		if again.Addr != s.Addr || len(again.Requests) != len(s.Requests) || again.Requests[0] != s.Requests[0] {
			t.Fatalf("session %d is not reproducible", n)
		}
		if s.Requests[0].Kind == Fraud {
			checkFraud(t, &m, n, &s)
			continue
		}
		clicks := make([]int, m.VisitorsPerAddress)
		link := make([]int, m.VisitorsPerAddress)
		for _, r := range s.Requests {
			if r.Kind == Fraud || r.Replay || r.From.IsValid() {
				t.Fatalf("session %d: a fraudster's request among people's: %+v", n, r)
			}
			if r.Kind != Unknown && r.Kind != Fraud {
				if _, k := m.LinkOwner(r.Link); m.Fraudster(k) {
					t.Fatalf("session %d: a %s on fraudster %s's link", n, r.Kind, m.CreatorID(k))
				}
			}
			if r.Kind != Person {
				if r.First {
					t.Fatalf("session %d: a %s marked first", n, r.Kind)
				}
				continue
			}
			if r.First != (clicks[r.Visitor] == 0) {
				t.Fatalf("session %d: visitor %d's click %d has First=%v", n, r.Visitor, clicks[r.Visitor], r.First)
			}
			if clicks[r.Visitor] > 0 && link[r.Visitor] != r.Link {
				t.Fatalf("session %d: visitor %d clicked two links", n, r.Visitor)
			}
			clicks[r.Visitor]++
			link[r.Visitor] = r.Link
		}
		people := 0
		for _, c := range clicks {
			if c < 1 || c > m.MaxRepeats {
				t.Fatalf("session %d: a visitor clicked %d times; want 1 to %d", n, c, m.MaxRepeats)
			}
			people += c
			visitors++
			if c == 1 {
				once++
			}
		}
		if people > m.VisitorsPerAddress*m.MaxRepeats {
			t.Fatalf("session %d: %d person clicks from one address", n, people)
		}
	}
	share := func(k Kind) float64 { return float64(kinds[k]) / float64(total) }
	for k, want := range map[Kind]float64{Crawler: m.CrawlerShare, Preview: m.PreviewShare, Prefetch: m.PrefetchShare, Head: m.HeadShare, Unknown: m.UnknownShare, Fraud: m.FraudShare} {
		if got := share(k); math.Abs(got-want) > 0.005 {
			t.Errorf("share of %s %.4f, want %.4f", k, got, want)
		}
	}
	// Zipf with exponent 2 over 1..7: P(1) = 1/Σ1/k² = 0.661.
	if got := float64(once) / float64(visitors); math.Abs(got-0.661) > 0.01 {
		t.Errorf("share of people clicking once %.3f, want 0.661", got)
	}
	// The next run's addresses are all new.
	next := m
	next.AddressBase = (m.AddressBase + g.Blocks(sessions)) % 65535
	g2, _ := NewGenerator(next)
	for n := range uint64(sessions) {
		if a := g2.Addr(n); addrs[a.As4()] {
			t.Fatalf("session %d of the next run comes from %s again", n, a)
		}
	}
}

// checkFraud checks fraudster session n: one campaign's links of the
// fraudsters of its pattern, from one /24 of the fraudsters' range.
func checkFraud(t *testing.T, m *Model, n uint64, s *Session) {
	t.Helper()
	want := map[FraudPattern]int{RotateAgents: RotateClicks, ReplayJar: JarCookies * (1 + JarReplayers), SweepBlock: SweepAddresses * SweepAgents / sweepParts}[s.Pattern]
	if len(s.Requests) != want {
		t.Fatalf("session %d (%s): %d requests, want %d", n, s.Pattern, len(s.Requests), want)
	}
	block := s.Addr.As4()
	// The fraudsters' blocks are 32768 on from the people's.
	if b := int(block[1])<<8 | int(block[2]); b < 32768-10 || b > 32768+100 {
		t.Fatalf("session %d: fraudster at %s, not in its range", n, s.Addr)
	}
	campaign := -1
	nets := map[[4]byte]map[string]bool{}
	for _, r := range s.Requests {
		a := r.From.As4()
		if r.Kind != Fraud || a[0] != block[0] || a[1] != block[1] || a[2] != block[2] {
			t.Fatalf("session %d: request %+v", n, r)
		}
		c, k := m.LinkOwner(r.Link)
		if campaign >= 0 && c != campaign || !m.Fraudster(k) || fraudsterPattern[k%m.perCampaign()-m.CreatorsPerCampaign] != s.Pattern {
			t.Fatalf("session %d (%s): a click on %s/%s", n, s.Pattern, CampaignID(c), m.CreatorID(k))
		}
		campaign = c
		// Every click is a visitor its network had not sent.
		id := fmt.Sprint(r.Link, r.Visitor, r.Replay)
		if nets[a] == nil {
			nets[a] = map[string]bool{}
		}
		if nets[a][id] {
			t.Fatalf("session %d: %s sends visitor %s twice", n, r.From, id)
		}
		nets[a][id] = true
	}
}

func TestAttacks(t *testing.T) {
	m := DefaultModel()
	g, err := NewGenerator(m)
	if err != nil {
		t.Fatal(err)
	}
	// An attack's sessions are consecutive, so they run at once; the
	// sweep's cover its /24's addresses once each.
	var s Session
	var first uint64
	for g.Session(first, &s); len(s.Requests) == 0 || s.Requests[0].Kind != Fraud; g.Session(first, &s) {
		first++
	}
	blocks := map[netip.Prefix]FraudPattern{}
	sweep := map[netip.Addr]int{}
	for n := first; n < first+attackSessions; n++ {
		g.Session(n, &s)
		if len(s.Requests) == 0 || s.Requests[0].Kind != Fraud {
			t.Fatalf("session %d of the attack from %d is not a fraudster's", n, first)
		}
		b, _ := s.Addr.Prefix(24)
		if p, ok := blocks[b]; ok && p != s.Pattern {
			t.Fatalf("%s and %s share %s", p, s.Pattern, b)
		}
		blocks[b] = s.Pattern
		if s.Pattern == SweepBlock {
			for _, r := range s.Requests {
				sweep[r.From]++
			}
		}
	}
	if len(blocks) != attackBlocks || len(sweep) != SweepAddresses {
		t.Fatalf("an attack from %d /24s, its sweep from %d addresses", len(blocks), len(sweep))
	}
	for a, n := range sweep {
		if n != SweepAgents {
			t.Fatalf("the sweep sent %d clicks from %s, want %d", n, a, SweepAgents)
		}
	}
	if g.Session(first+attackSessions, &s); s.Requests[0].Kind == Fraud {
		t.Fatalf("the attack from %d goes on past %d sessions", first, attackSessions)
	}
}

func TestModelValidate(t *testing.T) {
	for name, f := range map[string]func(*Model){
		"no campaigns":     func(m *Model) { m.Campaigns = 0 },
		"too many agents":  func(m *Model) { m.VisitorsPerAddress = len(PersonAgents) + 1 },
		"shares over one":  func(m *Model) { m.CrawlerShare = 0.6; m.PreviewShare = 0.4 },
		"negative share":   func(m *Model) { m.HeadShare = -0.1 },
		"address base":     func(m *Model) { m.AddressBase = 65536 },
		"no repeats":       func(m *Model) { m.MaxRepeats = 0 },
		"too many links":   func(m *Model) { m.CreatorsPerCampaign = 1_000_000; m.LinksPerCreator = 11 },
		"negative skew":    func(m *Model) { m.LinkSkew = -1 },
		"no links per one": func(m *Model) { m.LinksPerCreator = 0 },
		"no addresses":     func(m *Model) { m.AddressesPerBlock = 0 },
		"whole block":      func(m *Model) { m.AddressesPerBlock = 255 },
		"negative fraud":   func(m *Model) { m.FraudShare = -0.01 },
		"fraud over one":   func(m *Model) { m.FraudShare = 0.8 },
	} {
		m := DefaultModel()
		f(&m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
		if _, err := NewGenerator(m); err == nil {
			t.Errorf("%s: NewGenerator accepted it", name)
		}
	}
	m := DefaultModel()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestAllowedMissing(t *testing.T) {
	for _, c := range []struct {
		n    int64
		p    float64
		want int64
		// Poisson(2) exceeds 11 with probability 8.3e-7 and 12 with 2.1e-7.
	}{{0, 0.001, 0}, {1000, 0, 0}, {1000, 0.001, 12}, {100, 0.001, 5}} {
		if got := AllowedMissing(c.n, c.p); got != c.want {
			t.Errorf("AllowedMissing(%d, %g) = %d, want %d", c.n, c.p, got, c.want)
		}
	}
}
