package bench

import (
	"math"
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
	const sessions = 20000
	for n := range uint64(sessions) {
		g.Session(n, &s)
		if a := s.Addr.As4(); addrs[a] || a[0] != 127 || a[3] == 0 || a[3] == 255 {
			t.Fatalf("session %d: address %s reused or outside 127.0.0.0/8 hosts", n, s.Addr)
		} else {
			addrs[a] = true
		}
		clicks := make([]int, m.VisitorsPerAddress)
		link := make([]int, m.VisitorsPerAddress)
		for _, r := range s.Requests {
			kinds[r.Kind]++
			total++
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
		g.Session(n, &again)
		if again.Addr != s.Addr || len(again.Requests) != len(s.Requests) || again.Requests[0] != s.Requests[0] {
			t.Fatalf("session %d is not reproducible", n)
		}
	}
	share := func(k Kind) float64 { return float64(kinds[k]) / float64(total) }
	for k, want := range map[Kind]float64{Crawler: m.CrawlerShare, Preview: m.PreviewShare, Prefetch: m.PrefetchShare, Head: m.HeadShare, Unknown: m.UnknownShare} {
		if got := share(k); math.Abs(got-want) > 0.005 {
			t.Errorf("share of %s %.4f, want %.4f", k, got, want)
		}
	}
	// Zipf with exponent 2 over 1..7: P(1) = 1/Σ1/k² = 0.661.
	if got := float64(once) / float64(visitors); math.Abs(got-0.661) > 0.01 {
		t.Errorf("share of people clicking once %.3f, want 0.661", got)
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
