package bench

import (
	"fmt"
	"net/netip"
)

// FraudPattern is one way a fraudster makes fake visitors: each
// fraudster's session is one pattern, from a /24 of its own, on the links
// of fraudster creators of one campaign that only that pattern clicks, so
// that what each pattern was paid can be told apart. The patterns take
// turns.
type FraudPattern int

const (
	// RotateAgents: one address clicks a link RotateClicks times, each
	// with another browser User-Agent and no cookie.
	RotateAgents FraudPattern = iota
	// ReplayJar: one address collects JarCookies cookies on a
	// fraudster's link, a User-Agent each; JarReplayers other addresses
	// of its /24 each replay every one of them on another fraudster's
	// link, where they are new visitors.
	ReplayJar
	// SweepBlock: SweepAddresses addresses of the /24 click a link
	// SweepAgents times each, a User-Agent each.
	SweepBlock
	numPatterns
)

// The sizes of the patterns: each goes past clickgate's default budgets
// (20 qualified visits per network, 300 per /24, per campaign per day).
const (
	RotateClicks   = 40
	JarCookies     = 30
	JarReplayers   = 5
	SweepAddresses = 50
	SweepAgents    = 8
)

// fraudsterPattern is the pattern that clicks the links of fraudster f
// of a campaign.
var fraudsterPattern = [FraudstersPerCampaign]FraudPattern{RotateAgents, ReplayJar, ReplayJar, SweepBlock}

var patternNames = [numPatterns]string{"User-Agent rotation from one address", "cookie jar replayed from other addresses", "/24 sweep"}

func (p FraudPattern) String() string {
	if p < 0 || p >= numPatterns {
		return fmt.Sprintf("FraudPattern(%d)", int(p))
	}
	return patternNames[p]
}

// MarshalText names p in JSON reports.
func (p FraudPattern) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// meanFraudLen is the mean number of requests of a fraudster's session.
func meanFraudLen() float64 {
	return float64(RotateClicks+JarCookies*(1+JarReplayers)+SweepAddresses*SweepAgents) / float64(numPatterns)
}

// FraudAgents are browser User-Agents that differ only in their version:
// what a fraudster rotates through. Each classifies as a person.
var FraudAgents = func() []string {
	out := make([]string, 64)
	for i := range out {
		out[i] = fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.%d.%d Safari/537.36", 6478+i/8, 50+i%8)
	}
	return out
}()

// fraud fills fraudster session i: pattern i%3, campaign i%Campaigns, from
// the /24 block i of the fraudsters' range.
func (g *Generator) fraud(i uint64, buf *Session) {
	p, c := FraudPattern(i%uint64(numPatterns)), int(i%uint64(g.m.Campaigns))
	from := func(h int) netip.Addr { return g.blockAddr(127, blocks/2+1+i, h) }
	buf.Pattern = p
	reqs := buf.Requests[:0]
	add := func(h, link, agent int, replay bool) {
		reqs = append(reqs, Request{Kind: Fraud, Link: link, Visitor: agent, Replay: replay, From: from(h)})
	}
	switch p {
	case RotateAgents:
		for u := range RotateClicks {
			add(1, g.m.fraudLink(c, 0), u, false)
		}
	case ReplayJar:
		for u := range JarCookies {
			add(1, g.m.fraudLink(c, 1), u, false)
		}
		for h := range JarReplayers {
			for u := range JarCookies {
				add(2+h, g.m.fraudLink(c, 2), u, true)
			}
		}
	case SweepBlock:
		for h := range SweepAddresses {
			for u := range SweepAgents {
				add(1+h, g.m.fraudLink(c, 3), u, false)
			}
		}
	}
	buf.Requests = reqs
}

// FraudBlock is what one fraudster's session sent from its /24: every
// request from one of its networks is a visitor that network had not
// sent, by its User-Agent or its cookie.
type FraudBlock struct {
	Campaign int            `json:"campaign"`
	Pattern  FraudPattern   `json:"pattern"`
	Sent     map[byte]int64 `json:"sent"` // clicks sent, by the last byte of the network's address
}

// Bound returns the most clickgate may pay for b: per network at most
// network visits, per block at most block (0: no budget).
func (b *FraudBlock) Bound(network, block int) int64 {
	var sum int64
	for _, n := range b.Sent {
		if network > 0 {
			n = min(n, int64(network))
		}
		sum += n
	}
	if block > 0 {
		sum = min(sum, int64(block))
	}
	return sum
}
