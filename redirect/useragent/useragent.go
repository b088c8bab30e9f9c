// Package useragent tells, from the User-Agent header alone, whether a click
// comes from a person, a robot, or a link-preview fetcher.
//
// # Rules, in order
//
//  1. Preview: the UA contains the token of a link-unfurl fetcher
//     (previewPatterns: Discordbot, Twitterbot, facebookexternalhit,
//     Slackbot, TelegramBot, WhatsApp, LinkedInBot, TikTokSpider,
//     Bluesky Cardyb, …). Checked first: many of them are also in the
//     crawler list, and none is a person.
//  2. Bot: the UA matches extraBotPatterns (HTTP libraries, command-line
//     tools, headless browsers, monitors and synthetic tests, scanners,
//     native app HTTP stacks, AI agents, Google's fetchers, a URL or a
//     host name) or botWordEnds ("Googlebot/", "…bot;"), or holds an
//     e-mail address ("+claudebot@anthropic.com"; hasEmail, which Ecosia's
//     "android@150.0.0.0" is not), whatever else it says: a word such as
//     "Instagram" appended to curl's UA makes no person.
//  3. Bot: the UA is implausible for a browser: shorter than 20 bytes,
//     without an ASCII letter, with an ASCII control byte, without a
//     '(' (every browser and in-app browser names its platform in
//     parentheses: "Mozilla/5.0 (iPhone; …)"; only robots and pre-2012
//     feature phones' WAP browsers leave it out), or without naming a
//     browser engine (engineTokens: Gecko, which WebKit and Blink claim
//     to be like, MSIE, Presto, …): "Mozilla/5.0 (compatible; Name/1.0)"
//     is a robot's convention, and every browser since Netscape names
//     its engine, where apps' own HTTP clients and tools name their
//     platform without one ("AndroidDownloadManager/5.1 (Linux; U;
//     Android 5.1; …)", "RapidAPI/4.2.0 (Macintosh; OS X/14.2.1)").
//  4. The UA carries an in-app browser marker (inAppPatterns: musical_ly,
//     Instagram, FBAN, Snapchat, Twitter for iPhone, LinkedInApp,
//     Barcelona, Android's WebView "; wv)", …). Person if the UA is an in-app browser's
//     (inAppBrowser: "Mozilla/5.0 (", a platform that is not the robots'
//     "compatible; …", ")", and an engine), even if it also matches a
//     pattern of the crawler list, which is broad and changes with every
//     update, while in-app UAs carry device and vendor names (Instagram on
//     a Pixel says "Google/google"). Bot otherwise: a marker on anything
//     else is an app's own HTTP client (YouTube's
//     "com.google.ios.youtube/19.49.7 (iPhone16,2; …)"), not a person's
//     click, or a word added to a robot's UA ("ia_archiver (Instagram)").
//  5. Bot: the UA matches a pattern of the crawler list.
//  6. Person otherwise.
//
// Our own patterns ignore ASCII case. The crawler list's patterns are
// case-sensitive, as its maintainers test them: ignoring case would make
// "Sonic" match "Panasonic" and "NING/" match "Lightning/". So a UA and its
// case-swapped copy are always both previews or both not, but may
// otherwise differ (FuzzClassify checks exactly this).
//
// # Crawler list
//
// The crawler patterns are those of crawler-user-agents.json from the npm
// package crawler-user-agents (github.com/monperrus/crawler-user-agents,
// MIT), embedded at CrawlerListVersion with its licence beside it. To
// update: go generate ./redirect/useragent (update-crawler-list.sh: npm
// pack, then the file, its licence, the version and checksums), and run the
// tests: they fail on a pattern that cannot be compiled, classify every
// example UA the list ships, compare the matcher with a plain regexp
// implementation, and re-check testdata/useragents.tsv, where a new pattern
// that catches a browser or an in-app browser shows up, as in
// testdata/people_heldout.txt. A pattern that catches people is left out
// with its reason in excludedCrawlerPatterns, never silently.
//
// # Matcher
//
// Regexps are not run per request. At init each pattern is parsed
// (regexp/syntax). A pattern whose language is a small finite set of
// strings becomes those strings: nearly all of them ("Googlebot\/",
// "[wW]get"). Any other ("^curl", "AdsBot-Google([^-]|$)") gives a
// required literal (a string every match contains) and keeps its regexp.
// The literals go into one Aho–Corasick automaton (automaton.go) that reads
// the UA once, in four interleaved lanes; a hit that the automaton alone
// cannot decide (a case-sensitive literal, one longer than 12 bytes, or one
// with a digit or rare punctuation) is confirmed by comparing the bytes at
// that place. A regexp runs at the end, once, only if its literal was found
// and no literal already decided.
//
// Cost, from useragent_timing_test.go on the development machine (one
// core, best of 40 runs): about 150 ns for a desktop browser UA, 310 ns for
// an in-app one (20 ns of it inAppBrowser), 270 ns for a crawler, 1,060 ns
// for 1 KiB of random printable bytes (80 ns of it hasEmail, for its ten
// '@'), and no allocation. The crawler list of 1.60.0 doubled the
// automaton (about 11,000 states) without changing these much: a UA is
// still read once. A UA built to trigger one of the crawler list's few
// unanchored regexps without matching it (many "BlogTraffic/1.2 " in
// 1 KiB) costs about 20 µs; 1 KiB of '@', each looked at by hasEmail,
// about 7.5 µs.
//
// # What a UA cannot tell
//
// A robot that sends a browser's UA unchanged is a person here. So are the
// AI agents that drive a real browser for a user: OpenAI's ChatGPT agent
// (formerly Operator) sends a plain Chrome UA. It signs its requests
// instead (HTTP Message Signatures, RFC 9421, with a Signature-Agent
// header of "https://chatgpt.com"), which only a check of those headers
// can see. Google-Extended and Applebot-Extended are robots.txt tokens,
// not UAs: what they govern is fetched as Googlebot (a bot) and Applebot
// (a preview).
//
// A robot whose UA is a whole browser UA plus a name only the crawler
// list knows ("… Safari/537.36 Silktide") becomes a person when a marker
// is added, since the marker outweighs the crawler list on an in-app
// browser's UA (TestCrawlerListWithMarker counts them). It gains nothing a
// plain browser UA would not give it.
//
// The rules, lists and held-out sets of testdata are measured by
// TestHeldOutRobots (robots' UAs classified as people) and
// TestHeldOutPeople (browsers' UAs classified as robots).
package useragent

import (
	"fmt"
	"math/bits"
	"regexp"
	"strings"
)

// Class is what a User-Agent says about the client.
type Class uint8

const (
	// Person is a browser, or an app's in-app browser, used by a person.
	Person Class = iota
	// Bot is a crawler, an HTTP library, a headless or automated browser,
	// or a UA no browser would send.
	Bot
	// Preview is a link-unfurl fetcher drawing a card for a shared link.
	Preview
)

func (c Class) String() string {
	switch c {
	case Person:
		return "person"
	case Bot:
		return "bot"
	case Preview:
		return "preview"
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// Classify classifies a User-Agent header value. It does not allocate and
// does no I/O; ua is not retained.
func Classify(ua []byte) Class {
	return defaultClassifier.classify(ua)
}

// Stats describes the compiled matcher, for the start-up log.
type Stats struct {
	CrawlerList string // package and version of the crawler list
	Excluded    int    // patterns of the crawler list left out (excludedCrawlerPatterns)
	Patterns    int    // patterns of all kinds (crawler list and own lists)
	Literal     int    // patterns decided by their literals alone
	Regexp      int    // patterns confirmed by a regexp when their literal is found
	Literals    int    // literals in the automaton
	States      int    // automaton states
}

// Summary returns the statistics of the matcher Classify uses.
func Summary() Stats { return defaultClassifier.stats }

var defaultClassifier = func() *classifier {
	c, err := newClassifier(rulesFromLists())
	if err != nil {
		panic(fmt.Sprintf("useragent: cannot build the classifier: %v", err))
	}
	// TestExcludedCrawlerPatterns keeps every one of them in the list.
	c.stats.Excluded = len(excludedCrawlerPatterns)
	return c
}()

// rule is one pattern and what a match means.
type rule struct {
	kind    uint8 // maskPreview, maskInApp, maskBot, maskRobot or maskEngine
	pattern string
	// caseSensitive is set for the crawler list, whose patterns are
	// case-sensitive regexps ("Sonic" must not match "Panasonic", "NING/"
	// must not match "Lightning/"). Our own patterns ignore ASCII case.
	caseSensitive bool
	source        string
}

func rulesFromLists() []rule {
	var rules []rule
	add := func(kind uint8, source string, patterns []string) {
		for _, p := range patterns {
			rules = append(rules, rule{kind: kind, pattern: p, source: source})
		}
	}
	add(maskPreview, "previewPatterns", previewPatterns)
	add(maskInApp, "inAppPatterns", inAppPatterns)
	add(maskRobot, "extraBotPatterns", extraBotPatterns)
	add(maskEngine, "engineTokens", engineTokens)
	for _, c := range crawlerList {
		if _, ok := excludedCrawlerPatterns[c.Pattern]; ok {
			continue
		}
		rules = append(rules, rule{
			kind:          maskBot,
			pattern:       "re:" + c.Pattern,
			caseSensitive: true,
			source:        "crawler-user-agents",
		})
	}
	return rules
}

type classifier struct {
	ac       *automaton
	confirms []*regexp.Regexp // by bit of output.confirm
	// Bits of output.confirm by kind of their rule.
	confirmPreview, confirmInApp, confirmBot, confirmRobot uint64
	stats                                                  Stats
}

func newClassifier(rules []rule) (*classifier, error) {
	c := &classifier{stats: Stats{CrawlerList: "crawler-user-agents@" + CrawlerListVersion + " (npm)"}}
	var entries []entry
	for _, r := range rules {
		expr, isRegexp := strings.CutPrefix(r.pattern, "re:")
		if !isRegexp {
			expr = regexp.QuoteMeta(expr)
		}
		cp, err := compilePattern(expr, !r.caseSensitive)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.source, err)
		}
		c.stats.Patterns++
		if cp.confirm != nil {
			i := len(c.confirms)
			if i == 64 {
				return nil, fmt.Errorf("%s: more than 64 patterns need a regexp; widen output.confirm", r.source)
			}
			c.confirms = append(c.confirms, cp.confirm)
			switch r.kind {
			case maskPreview:
				c.confirmPreview |= 1 << i
			case maskInApp:
				c.confirmInApp |= 1 << i
			case maskBot:
				c.confirmBot |= 1 << i
			case maskRobot:
				c.confirmRobot |= 1 << i
			default:
				return nil, fmt.Errorf("%s: pattern %q of kind %d needs a regexp, which only previews, in-app markers and robots may", r.source, r.pattern, r.kind)
			}
			// The literals only trigger the regexp, which knows the case.
			for _, lit := range dedupe(lowerAll(cp.literals)) {
				entries = append(entries, entry{lit: lit, confirm: 1 << i})
			}
			c.stats.Regexp++
			continue
		}
		c.stats.Literal++
		for _, lit := range cp.literals {
			e := entry{lit: lowerASCII(lit), mask: r.kind}
			if r.caseSensitive && e.lit != strings.ToUpper(e.lit) {
				e.spellings = []string{lit}
			}
			entries = append(entries, e)
		}
	}
	for _, lit := range botWordEnds {
		entries = append(entries, entry{lit: lit, notAfter: botWordExcept, mask: maskRobot})
		c.stats.Patterns++
		c.stats.Literal++
	}
	ac, err := buildAutomaton(entries)
	if err != nil {
		return nil, err
	}
	c.ac = ac
	c.stats.Literals = len(entries)
	c.stats.States = ac.states
	return c, nil
}

func lowerAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = lowerASCII(x)
	}
	return out
}

// lanes is how many interleaved lanes scan a long UA: the automaton's
// table loads depend on each other within a lane, not across lanes.
const lanes = 4

// minLaneLen is the shortest UA scanned in lanes: below it the overlap
// between lanes costs more than it saves.
const minLaneLen = 4 * (maxPrefix - 1)

func (c *classifier) classify(ua []byte) Class {
	var sc scan
	if !c.scan(ua, &sc) {
		return Preview
	}
	switch {
	case c.confirm(ua, sc.pending&c.confirmPreview):
		return Preview
	case sc.mask&maskRobot != 0 || c.confirm(ua, sc.pending&c.confirmRobot):
		return Bot
	case sc.kinds&kindAt != 0 && hasEmail(ua):
		return Bot
	case len(ua) < minPlausibleLen || sc.kinds&(kindLetter|kindParen) != kindLetter|kindParen || sc.kinds&kindControl != 0:
		return Bot
	case sc.mask&maskEngine == 0:
		return Bot
	case sc.mask&maskInApp != 0 || c.confirm(ua, sc.pending&c.confirmInApp):
		if inAppBrowser(ua, sc.mask&maskEngine != 0) {
			return Person
		}
		return Bot
	case sc.mask&maskBot != 0 || c.confirm(ua, sc.pending&c.confirmBot):
		return Bot
	}
	return Person
}

// scan is what reading a UA found.
type scan struct {
	mask    uint8  // kinds decided by a literal
	pending uint64 // regexps to run
	kinds   uint8  // byteKind of all bytes
}

// scan runs the automaton over ua and reports false as soon as it finds a
// preview fetcher.
//
// A long UA is read as lanes equal-length slices, lane k starting at
// k*step, that overlap by at least maxPrefix-1 bytes so that every prefix
// lies whole in one lane; the loop advances all lanes together.
func (c *classifier) scan(ua []byte, sc *scan) bool {
	trans, first := c.ac.trans, c.ac.firstOut
	n := len(ua)
	var kinds uint16
	if n < minLaneLen {
		var s uint32
		for i, b := range ua {
			ck := classKind[b]
			kinds |= ck
			s = uint32(trans[s<<classBits|uint32(uint8(ck))])
			if s >= first && !c.hit(ua, i+1, s, sc) {
				return false
			}
		}
		sc.kinds = uint8(kinds >> 8)
		return true
	}
	step := (n - (maxPrefix - 1)) / lanes
	l := n - (lanes-1)*step
	u0 := ua[:l]
	u1 := ua[step : step+l][:len(u0)]
	u2 := ua[2*step : 2*step+l][:len(u0)]
	u3 := ua[3*step:][:len(u0)]
	var s0, s1, s2, s3 uint32
	for i := range u0 {
		c0, c1, c2, c3 := classKind[u0[i]], classKind[u1[i]], classKind[u2[i]], classKind[u3[i]]
		kinds |= c0 | c1 | c2 | c3
		s0 = uint32(trans[s0<<classBits|uint32(uint8(c0))])
		s1 = uint32(trans[s1<<classBits|uint32(uint8(c1))])
		s2 = uint32(trans[s2<<classBits|uint32(uint8(c2))])
		s3 = uint32(trans[s3<<classBits|uint32(uint8(c3))])
		if max(s0, s1, s2, s3) >= first {
			if s0 >= first && !c.hit(ua, i+1, s0, sc) ||
				s1 >= first && !c.hit(ua, step+i+1, s1, sc) ||
				s2 >= first && !c.hit(ua, 2*step+i+1, s2, sc) ||
				s3 >= first && !c.hit(ua, 3*step+i+1, s3, sc) {
				return false
			}
		}
	}
	sc.kinds = uint8(kinds >> 8)
	return true
}

// hit records the output of state s, reached after reading ua[:end], and
// reports false for a preview fetcher.
func (c *classifier) hit(ua []byte, end int, s uint32, sc *scan) bool {
	o := &c.ac.outs[s-c.ac.firstOut]
	mask, confirm := o.mask, o.confirm
	if o.checkTo != o.checkFrom {
		m, p := c.ac.runChecks(ua, end, o)
		mask |= m
		confirm |= p
	}
	sc.mask |= mask
	sc.pending |= confirm
	return mask&maskPreview == 0
}

// confirm reports whether one of the regexps in set matches ua.
func (c *classifier) confirm(ua []byte, set uint64) bool {
	for set != 0 {
		i := bits.TrailingZeros64(set)
		if c.confirms[i].Match(ua) {
			return true
		}
		set &= set - 1
	}
	return false
}
