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
	Fraud                // a fraudster's click on a fraudster's link: redirected, paid at most the budgets
	numKinds
)

var kindNames = [numKinds]string{"person", "crawler", "preview", "prefetch", "head", "unknown", "fraud"}

func (k Kind) String() string { return kindNames[k] }

// Model describes campaign-like traffic. Visitors come in groups behind one
// source address (a household or a carrier NAT): VisitorsPerAddress people
// with distinct browsers, each clicking one link Repeats times. Every
// address is used by one session only, so a run's visitors are all new.
// Fraudsters (FraudShare) come from /24s of their own and click only the
// links of each campaign's FraudstersPerCampaign fraudster creators, so
// that the audit can hold the honest creators to exact counts and the
// fraudsters to clickgate's budgets.
type Model struct {
	Campaigns           int // campaigns seeded
	CreatorsPerCampaign int // honest creators; each campaign also has FraudstersPerCampaign
	LinksPerCreator     int
	// VisitorsPerAddress people share one source address, each with its
	// own User-Agent. At most len(PersonAgents).
	VisitorsPerAddress int
	// AddressesPerBlock is how many addresses of each /24 the people come
	// from, 1 to 254: a /24 brings at most VisitorsPerAddress times as
	// many new visitors. clickgate pays at most --budget-block (300) per
	// /24 per campaign per day: 64 addresses of 4 people stay within it,
	// 254 (about a thousand people) do not.
	AddressesPerBlock int
	// MaxRepeats bounds the clicks of one visitor; the count follows a
	// Zipf law with exponent RepeatSkew (most people click once). An
	// address makes at most VisitorsPerAddress×MaxRepeats person clicks:
	// keep it within clickgate's edge velocity guard, 4 × --velocity-max.
	MaxRepeats int
	RepeatSkew float64
	// LinkSkew is the Zipf exponent of link popularity (a few creators go
	// viral).
	LinkSkew float64
	// Shares of all requests sent by kind; the rest are Person clicks.
	CrawlerShare, PreviewShare, PrefetchShare, HeadShare, UnknownShare float64
	// FraudShare is the share of all requests sent by fraudsters, in
	// sessions of the FraudPatterns taken in turn.
	FraudShare float64
	// NewVisitors makes every request a new visitor: one person's only
	// click, with a browser's User-Agent and no cookie, its address (a
	// new one each time, in 10.0.0.0/8) in X-Forwarded-For, on connections
	// from ProxyAddr, which the server must trust (--trusted-proxies).
	// The shares, fraud and repeats do not apply.
	NewVisitors bool
	// Seed makes the traffic reproducible.
	Seed uint64
	// AddressBase is the first /24 block of the source addresses, 0 to
	// 65535: people from 127.0.0.0/8 at blocks from it, fraudsters at
	// blocks from it + 32768, new visitors' forwarded addresses from
	// 10.0.0.0/8 (block numbers wrap at 65535, so ProxyAddr's block is
	// never a client's). Runs whose bases are Generator.Blocks apart
	// never share an address.
	AddressBase uint32
}

// FraudstersPerCampaign is how many creators of each campaign only
// fraudsters click: creator indexes CreatorsPerCampaign and up of it.
const FraudstersPerCampaign = 4

// ProxyAddr is the address that sends the NewVisitors model's traffic,
// as a load balancer would: run clickgate with --trusted-proxies
// 127.255.255.254.
var ProxyAddr = netip.AddrFrom4([4]byte{127, 255, 255, 254})

// blocks is how many /24 block numbers addresses take, 0 to 65534.
const blocks = 65535

// DefaultModel resembles a campaign: 2 campaigns of 50 creators with 2
// links each, 4 people per address clicking 1 to 7 times (two thirds once),
// a tenth of requests crawlers, 5% previews, 3% prefetches, 2% HEAD, 2%
// unknown codes and 3% fraudsters. Its people come from every address of
// their /24s (about a thousand per /24, past clickgate's default block
// budget); clickbench's own default is 64 addresses per /24.
func DefaultModel() Model {
	return Model{
		Campaigns: 2, CreatorsPerCampaign: 50, LinksPerCreator: 2,
		VisitorsPerAddress: 4, AddressesPerBlock: 254, MaxRepeats: 7, RepeatSkew: 2, LinkSkew: 1.1,
		CrawlerShare: 0.10, PreviewShare: 0.05, PrefetchShare: 0.03, HeadShare: 0.02, UnknownShare: 0.02,
		FraudShare: 0.03,
		Seed:       1,
	}
}

// perCampaign is the number of creators of a campaign, fraudsters included.
func (m *Model) perCampaign() int { return m.CreatorsPerCampaign + FraudstersPerCampaign }

// Creators is the number of creators over all campaigns, fraudsters
// included: creator k is of campaign k / (CreatorsPerCampaign +
// FraudstersPerCampaign).
func (m *Model) Creators() int { return m.Campaigns * m.perCampaign() }

// Links is the number of links, codes LinkCode(0) to LinkCode(Links-1):
// creator k's are k*LinksPerCreator and the next LinksPerCreator-1.
func (m *Model) Links() int { return m.Creators() * m.LinksPerCreator }

// LinkCode is the code of link i, here and in the baselines.
func LinkCode(i int) string { return fmt.Sprintf("L%07d", i) }

// CampaignID names campaign c as `clickbench seed` creates it.
func CampaignID(c int) string { return fmt.Sprintf("bench-%d", c) }

// CreatorID is the id of creator k (over all campaigns).
func (m *Model) CreatorID(k int) string {
	if local := k % m.perCampaign(); local >= m.CreatorsPerCampaign {
		return fmt.Sprintf("fraudster-%d", local-m.CreatorsPerCampaign)
	}
	return fmt.Sprintf("creator-%04d", k%m.perCampaign())
}

// Fraudster reports whether creator k is one whose links only fraudsters
// click.
func (m *Model) Fraudster(k int) bool { return k%m.perCampaign() >= m.CreatorsPerCampaign }

// LinkOwner returns the campaign and creator index (over all campaigns) of
// link i.
func (m *Model) LinkOwner(i int) (campaign, creator int) {
	creator = i / m.LinksPerCreator
	return creator / m.perCampaign(), creator
}

// honestLink returns the link of popularity rank r (0: the most popular)
// among the honest creators' links.
func (m *Model) honestLink(r int) int {
	h := r / m.LinksPerCreator
	k := h/m.CreatorsPerCampaign*m.perCampaign() + h%m.CreatorsPerCampaign
	return k*m.LinksPerCreator + r%m.LinksPerCreator
}

// fraudLink returns the first link of fraudster f of campaign c; the
// patterns click theirs (fraudsterPattern).
func (m *Model) fraudLink(c, f int) int {
	return (c*m.perCampaign() + m.CreatorsPerCampaign + f) * m.LinksPerCreator
}

// Validate reports the first setting that cannot work.
func (m *Model) Validate() error {
	switch {
	case m.Campaigns < 1 || m.CreatorsPerCampaign < 1 || m.LinksPerCreator < 1:
		return errors.New("campaigns, creators and links must each be at least 1")
	case m.Campaigns > 10_000_000 || m.CreatorsPerCampaign > 10_000_000 || m.LinksPerCreator > 10_000_000 || m.Links() > 10_000_000:
		return fmt.Errorf("%d campaigns × %d creators × %d links: at most 10,000,000 links", m.Campaigns, m.CreatorsPerCampaign, m.LinksPerCreator)
	case m.VisitorsPerAddress < 1 || m.VisitorsPerAddress > len(PersonAgents):
		return fmt.Errorf("visitors per address must be 1 to %d (one User-Agent each)", len(PersonAgents))
	case m.AddressesPerBlock < 1 || m.AddressesPerBlock > 254:
		return errors.New("addresses per block must be 1 to 254")
	case m.MaxRepeats < 1 || m.MaxRepeats > 1000:
		return errors.New("max repeats must be 1 to 1000")
	case m.RepeatSkew < 0 || m.LinkSkew < 0 || math.IsNaN(m.RepeatSkew) || math.IsNaN(m.LinkSkew):
		return errors.New("skews must be at least 0")
	case m.AddressBase > 65535:
		return errors.New("address base must be a /24 block number, 0 to 65535")
	}
	shares := []float64{m.CrawlerShare, m.PreviewShare, m.PrefetchShare, m.HeadShare, m.UnknownShare, m.FraudShare}
	sum := 0.0
	for _, s := range shares {
		if s < 0 || math.IsNaN(s) {
			return errors.New("shares must be at least 0")
		}
		sum += s
	}
	if sum >= 1 {
		return fmt.Errorf("shares of crawlers, previews, prefetches, HEAD, unknown codes and fraud add up to %.2f; people need the rest", sum)
	}
	return nil
}

// Request is one request of a session.
type Request struct {
	Kind Kind
	Link int // index of the link; for Unknown, a code that is no link
	// Visitor is the person (index within the session's address) for
	// Person clicks, the User-Agent of FraudAgents for Fraud, or the agent
	// variant for other kinds. A session keeps the cookie each of its
	// visitors got.
	Visitor int
	// First marks a Person's first click: the one clickgate should count
	// qualified.
	First bool
	// Replay sends the cookie that Visitor got earlier in the session: a
	// fraudster's cookie jar, replayed from another address.
	Replay bool
	// From is the client's address when it is not the session's: a
	// fraudster's other addresses, which connect themselves, or, in a
	// Forwarded session, the X-Forwarded-For of a new visitor.
	From netip.Addr
}

// Session is the traffic of one source address: its people's clicks
// interleaved with the other kinds, in sending order; or a fraudster's
// clicks from the addresses of one /24; or, Forwarded, new visitors
// behind a proxy.
type Session struct {
	Addr      netip.Addr
	Forwarded bool         // each request's From goes in X-Forwarded-For
	Pattern   FraudPattern // a fraudster's session: what it tries
	Requests  []Request
}

// Generator draws sessions from a Model. It is safe for concurrent use:
// session n depends only on the model and n.
type Generator struct {
	m         Model
	repeatCDF []float64 // P(repeats ≤ i+1)
	linkCDF   []float64 // P(honest link of rank ≤ i)
	kindCDF   [numKinds]float64
	// perPerson is how many requests of other kinds come with each person
	// click, on average, so that the shares hold over requests.
	perPerson float64
	// Sessions come in cycles of people sessions followed by the
	// attackSessions of one attack, so that FraudShare of requests are
	// fraud; people is 0 without fraud.
	people uint64
}

// forwardedPerSession is how many new visitors one connection of the
// NewVisitors model carries, as a proxy's kept-alive connection would.
const forwardedPerSession = 256

// NewGenerator returns a Generator for m, which must be valid.
func NewGenerator(m Model) (*Generator, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	honest := m.Links() - m.Campaigns*FraudstersPerCampaign*m.LinksPerCreator
	g := &Generator{m: m, repeatCDF: zipfCDF(m.MaxRepeats, m.RepeatSkew), linkCDF: zipfCDF(honest, m.LinkSkew)}
	// The shares are of all requests; people's sessions carry the other
	// kinds at their share of the requests that are not fraud.
	others := [numKinds]float64{0, m.CrawlerShare, m.PreviewShare, m.PrefetchShare, m.HeadShare, m.UnknownShare}
	sum := 0.0
	for k := Crawler; k < Fraud; k++ {
		sum += others[k]
		g.kindCDF[k] = sum
	}
	if sum > 0 {
		for k := range g.kindCDF {
			g.kindCDF[k] /= sum
		}
	}
	within := sum / (1 - m.FraudShare)
	g.perPerson = within / (1 - within)
	if m.FraudShare > 0 && !m.NewVisitors {
		// K-1 people's sessions of mean length h and one fraudster's of
		// mean length f: f / (f + (K-1)h) = FraudShare.
		clicks := 0.0
		for i, p := range g.repeatCDF {
			if i > 0 {
				p -= g.repeatCDF[i-1]
			}
			clicks += float64(i+1) * p
		}
		// people sessions of mean length h and one attack of length f:
		// f / (f + people·h) = FraudShare.
		h := float64(m.VisitorsPerAddress) * clicks * (1 + g.perPerson)
		f := float64(attackLen)
		g.people = max(1, uint64(math.Round(f*(1-m.FraudShare)/(m.FraudShare*h))))
	}
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

// split returns whether session n is a fraudster's, and its number among
// the people's sessions or among the fraudsters'.
func (g *Generator) split(n uint64) (fraud bool, i uint64) {
	if g.people == 0 {
		return false, n
	}
	period := g.people + attackSessions
	cycle, at := n/period, n%period
	if at >= g.people {
		return true, cycle*attackSessions + at - g.people
	}
	return false, cycle*g.people + at
}

// blockAddr returns host h (1 to 254) of /24 block b from the base, in the
// /8 of first.
func (g *Generator) blockAddr(first byte, b uint64, h int) netip.Addr {
	block := (uint64(g.m.AddressBase) + b) % blocks
	return netip.AddrFrom4([4]byte{first, byte(block >> 8), byte(block), byte(h)})
}

// Addr returns the source address of session n: for people's sessions
// 127.b.b.h, h from 1 to AddressesPerBlock, from /24 block AddressBase on;
// for a fraudster's, the first address it sends from, in the /24 of its
// attack, from block AddressBase+32768 on; ProxyAddr for new visitors.
func (g *Generator) Addr(n uint64) netip.Addr {
	if g.m.NewVisitors {
		return ProxyAddr
	}
	fraud, i := g.split(n)
	if fraud {
		_, block, first := attackPart(i)
		return g.fraudAddr(block, first)
	}
	a := uint64(g.m.AddressesPerBlock)
	return g.blockAddr(127, i/a, int(i%a)+1)
}

// Blocks returns how many /24 blocks from the base sessions 0 to n-1 use,
// in whichever range uses most: the next run's AddressBase is that many
// blocks on.
func (g *Generator) Blocks(n uint64) uint32 {
	if g.m.NewVisitors {
		return uint32((n*forwardedPerSession + 253) / 254)
	}
	people, fraud := n, uint64(0)
	if g.people > 0 {
		period := g.people + attackSessions
		people = n/period*g.people + min(n%period, g.people)
		fraud = n/period*attackSessions + n%period - min(n%period, g.people)
	}
	a := uint64(g.m.AddressesPerBlock)
	attacks := (fraud + attackSessions - 1) / attackSessions
	return uint32(max((people+a-1)/a, attacks*attackBlocks))
}

// Session returns session n, reusing buf's requests.
func (g *Generator) Session(n uint64, buf *Session) {
	r := rng{g.m.Seed ^ (n+1)*0x9e3779b97f4a7c15}
	buf.Addr, buf.Forwarded = g.Addr(n), g.m.NewVisitors
	if g.m.NewVisitors {
		g.forwarded(n, &r, buf)
		return
	}
	if fraud, i := g.split(n); fraud {
		g.fraud(i, buf)
		return
	}
	reqs := buf.Requests[:0]
	for v := range g.m.VisitorsPerAddress {
		link := g.m.honestLink(pick(g.linkCDF, r.float()))
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
		k := Kind(pick(g.kindCDF[Crawler:Fraud], r.float())) + Crawler
		req := Request{Kind: k, Visitor: int(r.next() % 1024)}
		if k == Unknown {
			req.Link = g.m.Links() + int(r.next()%1_000_000)
		} else {
			req.Link = g.m.honestLink(pick(g.linkCDF, r.float()))
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

// forwarded fills session n of the NewVisitors model: each request a
// person's only click, from its own address of 10.0.0.0/8.
func (g *Generator) forwarded(n uint64, r *rng, buf *Session) {
	reqs := buf.Requests[:0]
	for i := range uint64(forwardedPerSession) {
		v := n*forwardedPerSession + i
		reqs = append(reqs, Request{Kind: Person, Link: g.m.honestLink(pick(g.linkCDF, r.float())), Visitor: int(v % uint64(len(PersonAgents))),
			First: true, From: g.blockAddr(10, v/254, int(v%254)+1)})
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
