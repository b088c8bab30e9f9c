package bench

import (
	"fmt"
	"net/netip"
)

// FraudPattern is one way a fraudster makes fake visitors, from a /24 of
// its own, on the links of fraudster creators of one campaign that only
// that pattern clicks, so that what each pattern was paid can be told
// apart. Fraud comes in attacks, one of each pattern: the rotation and the
// jar in one session each, the sweep in sweepParts sessions at once (so
// that it is over within a fraction of a second, as a sweep by a botnet
// would be, and not cut short by the end of a run).
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
	JarReplayers   = 3
	SweepAddresses = 50
	SweepAgents    = 8
)

// An attack's sessions, /24 blocks and requests.
const (
	sweepParts     = 10 // SweepAddresses/sweepParts addresses each
	attackSessions = 2 + sweepParts
	attackBlocks   = 3
	attackLen      = RotateClicks + JarCookies*(1+JarReplayers) + SweepAddresses*SweepAgents
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

// attackPart returns the pattern of fraudster session i, the block (from
// the fraudsters' first) of its attack it sends from, and its first host.
func attackPart(i uint64) (p FraudPattern, block uint64, first int) {
	a, part := i/attackSessions, i%attackSessions
	switch part {
	case 0:
		return RotateAgents, a * attackBlocks, 1
	case 1:
		return ReplayJar, a*attackBlocks + 1, 1
	}
	return SweepBlock, a*attackBlocks + 2, int(part-2)*(SweepAddresses/sweepParts) + 1
}

// fraudAddr returns host h of fraudsters' block b.
func (g *Generator) fraudAddr(b uint64, h int) netip.Addr { return g.blockAddr(127, blocks/2+1+b, h) }

// FraudAgents are browser User-Agents that differ only in their version:
// what a fraudster rotates through. Each classifies as a person.
var FraudAgents = func() []string {
	out := make([]string, 64)
	for i := range out {
		out[i] = fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.%d.%d Safari/537.36", 6478+i/8, 50+i%8)
	}
	return out
}()

// fraud fills fraudster session i, its attack's part on the campaign
// that attacks take in turn.
func (g *Generator) fraud(i uint64, buf *Session) {
	p, block, first := attackPart(i)
	c := int(i / attackSessions % uint64(g.m.Campaigns))
	from := func(h int) netip.Addr { return g.fraudAddr(block, h) }
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
		for h := first; h < first+SweepAddresses/sweepParts; h++ {
			for u := range SweepAgents {
				add(h, g.m.fraudLink(c, 3), u, false)
			}
		}
	}
	buf.Requests = reqs
}

// FraudBlock is what fraudsters sent from one /24: every request from one
// of its networks is a visitor that network had not sent, by its
// User-Agent or its cookie. A session makes one; MergeFraud sums those of
// a /24.
type FraudBlock struct {
	Block    netip.Prefix   `json:"block"`
	Campaign int            `json:"campaign"`
	Pattern  FraudPattern   `json:"pattern"`
	Sent     map[byte]int64 `json:"sent"` // clicks sent, by the last byte of the network's address
}

// MergeFraud returns one FraudBlock per /24 of bs, in their order.
func MergeFraud(bs []FraudBlock) []FraudBlock {
	var out []FraudBlock
	at := map[netip.Prefix]int{}
	for _, b := range bs {
		i, ok := at[b.Block]
		if !ok {
			i, at[b.Block] = len(out), len(out)
			out = append(out, FraudBlock{Block: b.Block, Campaign: b.Campaign, Pattern: b.Pattern, Sent: map[byte]int64{}})
		}
		for h, n := range b.Sent {
			out[i].Sent[h] += n
		}
	}
	return out
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
