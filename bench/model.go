package bench

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
)

// Kind is what sent a request, and so how clickgate should count it.
type Kind uint8

// Kinds of request. Every Person click is redirected; the first of each
// visitor is a qualified visit and the rest are duplicates.
const (
	Person   Kind = iota // a browser navigating to the link
	Crawler              // a search engine, SEO tool or HTTP library: bots
	Preview              // a link-unfurl fetcher: previews, answered 200
	Prefetch             // a browser's speculative load (Sec-Purpose): prefetches
	Head                 // a HEAD request from a browser: prefetches
	Unknown              // a code that is no link: 404, counted nowhere
	numKinds
)

var kindNames = [numKinds]string{"person", "crawler", "preview", "prefetch", "head", "unknown"}

func (k Kind) String() string { return kindNames[k] }

// Model describes campaign-like traffic. Visitors come in groups behind one
// source address (a household or a carrier NAT): VisitorsPerAddress people
// with distinct browsers, each clicking one link Repeats times. Every
// address is used by one session only, so a run's visitors are all new.
type Model struct {
	Campaigns           int // campaigns seeded
	CreatorsPerCampaign int
	LinksPerCreator     int
	// VisitorsPerAddress people share one source address, each with its
	// own User-Agent. At most len(PersonAgents).
	VisitorsPerAddress int
	// MaxRepeats bounds the clicks of one visitor; the count follows a
	// Zipf law with exponent RepeatSkew (most people click once). An
	// address makes at most VisitorsPerAddress×MaxRepeats person clicks:
	// keep it within clickgate's --velocity-max.
	MaxRepeats int
	RepeatSkew float64
	// LinkSkew is the Zipf exponent of link popularity (a few creators go
	// viral).
	LinkSkew float64
	// Shares of all requests sent by kind; the rest are Person clicks.
	CrawlerShare, PreviewShare, PrefetchShare, HeadShare, UnknownShare float64
	// Seed makes the traffic reproducible.
	Seed uint64
	// AddressBase is the first source address in 127.0.0.0/8 (a /24 block
	// number, 0 to 65535); runs with other bases never share a visitor.
	AddressBase uint32
}

// DefaultModel resembles a campaign: 2 campaigns of 50 creators with 2
// links each, 4 people per address clicking 1 to 7 times (two thirds once),
// a tenth of requests crawlers, 5% previews, 3% prefetches, 2% HEAD and 2%
// unknown codes.
func DefaultModel() Model {
	return Model{
		Campaigns: 2, CreatorsPerCampaign: 50, LinksPerCreator: 2,
		VisitorsPerAddress: 4, MaxRepeats: 7, RepeatSkew: 2, LinkSkew: 1.1,
		CrawlerShare: 0.10, PreviewShare: 0.05, PrefetchShare: 0.03, HeadShare: 0.02, UnknownShare: 0.02,
		Seed: 1,
	}
}

// Links is the number of links, codes LinkCode(0) to LinkCode(Links-1).
func (m *Model) Links() int { return m.Campaigns * m.CreatorsPerCampaign * m.LinksPerCreator }

// Creators is the number of creators over all campaigns.
func (m *Model) Creators() int { return m.Campaigns * m.CreatorsPerCampaign }

// LinkCode is the code of link i, here and in the baselines.
func LinkCode(i int) string { return fmt.Sprintf("L%07d", i) }

// CampaignID and CreatorID name what `clickbench seed` creates.
func CampaignID(c int) string { return fmt.Sprintf("bench-%d", c) }

// CreatorID is the id of creator k of its campaign.
func CreatorID(k int) string { return fmt.Sprintf("creator-%04d", k) }

// LinkOwner returns the campaign and creator index (over all campaigns) of
// link i.
func (m *Model) LinkOwner(i int) (campaign, creator int) {
	creator = i / m.LinksPerCreator
	return creator / m.CreatorsPerCampaign, creator
}

// Validate reports the first setting that cannot work.
func (m *Model) Validate() error {
	switch {
	case m.Campaigns < 1 || m.CreatorsPerCampaign < 1 || m.LinksPerCreator < 1:
		return errors.New("campaigns, creators and links must each be at least 1")
	case m.Links() > 10_000_000:
		return fmt.Errorf("%d links: at most 10,000,000", m.Links())
	case m.VisitorsPerAddress < 1 || m.VisitorsPerAddress > len(PersonAgents):
		return fmt.Errorf("visitors per address must be 1 to %d (one User-Agent each)", len(PersonAgents))
	case m.MaxRepeats < 1 || m.MaxRepeats > 1000:
		return errors.New("max repeats must be 1 to 1000")
	case m.RepeatSkew < 0 || m.LinkSkew < 0 || math.IsNaN(m.RepeatSkew) || math.IsNaN(m.LinkSkew):
		return errors.New("skews must be at least 0")
	case m.AddressBase > 65535:
		return errors.New("address base must be a /24 block number, 0 to 65535")
	}
	shares := []float64{m.CrawlerShare, m.PreviewShare, m.PrefetchShare, m.HeadShare, m.UnknownShare}
	sum := 0.0
	for _, s := range shares {
		if s < 0 || math.IsNaN(s) {
			return errors.New("shares must be at least 0")
		}
		sum += s
	}
	if sum >= 1 {
		return fmt.Errorf("shares of crawlers, previews, prefetches, HEAD and unknown codes add up to %.2f; people need the rest", sum)
	}
	return nil
}

// Request is one request of a session.
type Request struct {
	Kind Kind
	Link int // index of the link; for Unknown, a code that is no link
	// Visitor is the person (index within the session's address) for
	// Person clicks, or the agent variant for other kinds.
	Visitor int
	// First marks a Person's first click: the one clickgate should count
	// qualified.
	First bool
}

// Session is the traffic of one source address: its people's clicks
// interleaved with the other kinds, in sending order.
type Session struct {
	Addr     netip.Addr
	Requests []Request
}

// Generator draws sessions from a Model. It is safe for concurrent use:
// session n depends only on the model and n.
type Generator struct {
	m         Model
	repeatCDF []float64 // P(repeats ≤ i+1)
	linkCDF   []float64 // P(link ≤ i)
	kindCDF   [numKinds]float64
	// perPerson is how many requests of other kinds come with each person
	// click, on average, so that the shares hold over requests.
	perPerson float64
}

// NewGenerator returns a Generator for m, which must be valid.
func NewGenerator(m Model) (*Generator, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	g := &Generator{m: m, repeatCDF: zipfCDF(m.MaxRepeats, m.RepeatSkew), linkCDF: zipfCDF(m.Links(), m.LinkSkew)}
	others := [numKinds]float64{0, m.CrawlerShare, m.PreviewShare, m.PrefetchShare, m.HeadShare, m.UnknownShare}
	sum := 0.0
	for k := Crawler; k < numKinds; k++ {
		sum += others[k]
		g.kindCDF[k] = sum
	}
	if sum > 0 {
		for k := range g.kindCDF {
			g.kindCDF[k] /= sum
		}
	}
	g.perPerson = sum / (1 - sum)
	return g, nil
}

// Model returns the model g draws from.
func (g *Generator) Model() Model { return g.m }

// zipfCDF returns the cumulative probabilities of ranks 1..n with weight
// 1/rank^s.
func zipfCDF(n int, s float64) []float64 {
	cdf := make([]float64, n)
	sum := 0.0
	for i := range cdf {
		sum += math.Pow(float64(i+1), -s)
		cdf[i] = sum
	}
	for i := range cdf {
		cdf[i] /= sum
	}
	cdf[n-1] = 1
	return cdf
}

func pick(cdf []float64, u float64) int {
	return min(sort.SearchFloat64s(cdf, u), len(cdf)-1)
}

// Addr returns the source address of session n: 127.b.b.h, h from 1 to
// 254, starting at /24 block AddressBase.
func (g *Generator) Addr(n uint64) netip.Addr {
	block := (uint64(g.m.AddressBase) + n/254) % 65536
	return netip.AddrFrom4([4]byte{127, byte(block >> 8), byte(block), byte(n%254 + 1)})
}

// Session returns session n, reusing buf's requests.
func (g *Generator) Session(n uint64, buf *Session) {
	r := rng{g.m.Seed ^ (n+1)*0x9e3779b97f4a7c15}
	buf.Addr = g.Addr(n)
	reqs := buf.Requests[:0]
	for v := range g.m.VisitorsPerAddress {
		link := pick(g.linkCDF, r.float())
		repeats := pick(g.repeatCDF, r.float()) + 1
		for i := range repeats {
			reqs = append(reqs, Request{Kind: Person, Link: link, Visitor: v, First: i == 0})
		}
	}
	// Other kinds: perPerson per person click on average.
	people := len(reqs)
	want := g.perPerson * float64(people)
	others := int(want)
	if r.float() < want-float64(others) {
		others++
	}
	for range others {
		k := Kind(pick(g.kindCDF[Crawler:], r.float())) + Crawler
		req := Request{Kind: k, Visitor: int(r.next() % 1024)}
		if k == Unknown {
			req.Link = g.m.Links() + int(r.next()%1_000_000)
		} else {
			req.Link = pick(g.linkCDF, r.float())
		}
		reqs = append(reqs, req)
	}
	// Interleave, keeping each person's clicks in order (First first).
	for i := len(reqs) - 1; i > 0; i-- {
		j := int(r.next() % uint64(i+1))
		reqs[i], reqs[j] = reqs[j], reqs[i]
	}
	for v := range g.m.VisitorsPerAddress {
		first := true
		for i := range reqs {
			if reqs[i].Kind == Person && reqs[i].Visitor == v {
				reqs[i].First, first = first, false
			}
		}
	}
	buf.Requests = reqs
}

// rng is splitmix64: tiny, fast, and good enough to draw traffic.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// float returns a number in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }
