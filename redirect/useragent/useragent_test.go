package useragent

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

type tableRow struct {
	line     int
	class    Class
	category string
	source   string
	ua       string
}

// readTable reads testdata/useragents.tsv.
func readTable(tb testing.TB) []tableRow {
	tb.Helper()
	f, err := os.Open("testdata/useragents.tsv")
	if err != nil {
		tb.Fatalf("cannot open the table: %v", err)
	}
	defer f.Close()
	classes := map[string]Class{"person": Person, "bot": Bot, "preview": Preview}
	var rows []tableRow
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.SplitN(line, "\t", 4)
		if len(fields) != 4 {
			tb.Fatalf("line %d: want 4 tab-separated fields; got %d", n, len(fields))
		}
		class, ok := classes[fields[0]]
		if !ok {
			tb.Fatalf("line %d: unknown class %q", n, fields[0])
		}
		if fields[2] == "" {
			tb.Fatalf("line %d: no source", n)
		}
		ua := fields[3]
		if strings.HasPrefix(ua, `"`) {
			if ua, err = strconv.Unquote(ua); err != nil {
				tb.Fatalf("line %d: cannot unquote the UA: %v", n, err)
			}
		}
		rows = append(rows, tableRow{line: n, class: class, category: fields[1], source: fields[2], ua: ua})
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("cannot read the table: %v", err)
	}
	return rows
}

func TestClassifyTable(t *testing.T) {
	rows := readTable(t)
	counts := map[string]int{}
	for _, r := range rows {
		counts[r.category]++
		if got := Classify([]byte(r.ua)); got != r.class {
			t.Errorf("unexpected class for %q (line %d, %s, from %s); got %v; want %v", r.ua, r.line, r.category, r.source, got, r.class)
		}
	}
	if len(rows) < 300 {
		t.Errorf("unexpected table size; got %d rows; want at least 300", len(rows))
	}
	for _, c := range []string{"preview", "crawler", "library", "inapp", "browser", "implausible"} {
		if counts[c] == 0 {
			t.Errorf("no row of category %q", c)
		}
	}
	t.Logf("%d rows: %v", len(rows), counts)
}

// TestCrawlerListInstances classifies every example UA that the crawler
// list ships: each is a robot or a preview fetcher, except those of the
// patterns we exclude, which are people.
func TestCrawlerListInstances(t *testing.T) {
	// None is a person, not even one that imitates an in-app browser
	// (BrandVerity's "Twitter for iPhone"): an in-app marker no longer
	// outweighs our own robot patterns.
	n := 0
	for _, c := range crawlerList {
		_, excluded := excludedCrawlerPatterns[c.Pattern]
		for _, ua := range c.Instances {
			n++
			got := Classify([]byte(ua))
			if excluded {
				if got != Person {
					t.Errorf("unexpected class for %q (excluded pattern %q); got %v; want person", ua, c.Pattern, got)
				}
				continue
			}
			if got == Person {
				t.Errorf("unexpected class for %q (pattern %q); got person; want bot or preview", ua, c.Pattern)
			}
		}
	}
	if n < 2000 {
		t.Errorf("unexpected number of instances; got %d; want over 2000", n)
	}
}

// TestExcludedCrawlerPatterns keeps excludedCrawlerPatterns to patterns
// that the crawler list still has, each with its reason.
func TestExcludedCrawlerPatterns(t *testing.T) {
	inList := map[string]bool{}
	for _, c := range crawlerList {
		inList[c.Pattern] = true
	}
	for p, why := range excludedCrawlerPatterns {
		if !inList[p] {
			t.Errorf("excluded pattern %q is not in crawler-user-agents %s: drop it from excludedCrawlerPatterns", p, CrawlerListVersion)
		}
		if why == "" {
			t.Errorf("excluded pattern %q has no reason", p)
		}
	}
}

// TestCrawlerListChecksum keeps the embedded crawler list and the version
// recorded for it (CrawlerListVersion, reported by Summary) in step: a file
// edited or replaced by hand, not by update-crawler-list.sh, fails here.
func TestCrawlerListChecksum(t *testing.T) {
	sum := sha256.Sum256(crawlerListJSON)
	if got := hex.EncodeToString(sum[:]); got != crawlerListSHA256 {
		t.Fatalf("unexpected SHA-256 of crawler-user-agents.json; got %s; want %s (crawler-user-agents@%s): run go generate", got, crawlerListSHA256, CrawlerListVersion)
	}
	if !strings.HasPrefix(crawlerListIntegrity, "sha512-") {
		t.Fatalf("unexpected npm integrity %q; want sha512-…", crawlerListIntegrity)
	}
	if len(crawlerList) < 1000 {
		t.Fatalf("unexpected size of the crawler list; got %d patterns; want over 1000", len(crawlerList))
	}
}

func TestClassString(t *testing.T) {
	f := func(c Class, want string) {
		t.Helper()
		if got := c.String(); got != want {
			t.Errorf("unexpected String for %d; got %q; want %q", uint8(c), got, want)
		}
	}
	f(Person, "person")
	f(Bot, "bot")
	f(Preview, "preview")
	f(Class(7), "Class(7)")
}

func TestSummary(t *testing.T) {
	s := Summary()
	if s.Patterns != s.Literal+s.Regexp || s.Patterns < len(crawlerList) || s.Regexp == 0 || s.States == 0 {
		t.Fatalf("unexpected summary %+v", s)
	}
	t.Logf("%+v", s)
}

// TestPrecedence pins down the order of the rules on UAs that carry two
// kinds of tokens.
func TestPrecedence(t *testing.T) {
	f := func(ua string, want Class) {
		t.Helper()
		if got := Classify([]byte(ua)); got != want {
			t.Errorf("unexpected class for %q; got %v; want %v", ua, got, want)
		}
	}
	// Snap's fetcher says "snapchat", the in-app marker: preview wins.
	f("Snap URL Preview Service; bot; snapchat; https://developers.snap.com/robots", Preview)
	// In-app wins over the crawler list's broad tokens (Instagram on a
	// Pixel says "Google/google")...
	f("Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/130.0 Mobile Safari/537.36 Instagram 355.1.0.44.103 Android (34/14; Google/google; Pixel 8)", Person)
	// ...but not over our own robot patterns, nor over implausibility: a
	// word appended to a robot's UA makes no person.
	f("Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/130.0 Mobile Safari/537.36 Instagram 355.1.0.44.103 Android (34/14; Google/google; Pixel 8) Googlebot/2.1 +http://x", Bot)
	f("curl/8.5.0 Instagram", Bot)
	f("python-requests/2.31.0 Instagram", Bot)
	f("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36 Instagram", Bot)
	f("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html) FBAN/FBIOS", Bot)
	f("Go-http-client/1.1 snapchat", Bot)
	f("Wget/1.21 discord/1", Bot)
	f("x(Instagram", Bot)
	// The crawler list is case-sensitive: "Sonic" is not "Panasonic".
	f("Mozilla/5.0 (compatible; Sonic/1.0)", Bot)
	f("Mozilla/5.0 (Linux; Android 4.3; Panasonic ELUGA A Build/JWR66V) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/53.0.2785.57 Mobile Safari/537.36", Person)
	// Our own tokens are not.
	f("MOZILLA/5.0 (COMPATIBLE; DISCORDBOT/2.0; +HTTPS://DISCORDAPP.COM)", Preview)
	f("PYTHON-REQUESTS/2.32 (x)", Bot)
	// Viber's fetcher sends a bare "Viber".
	f("Viber", Preview)
	f("viber", Preview)
	// "bot" ending a word is a robot, but not in Cubot phones.
	f("Mozilla/5.0 (compatible; ExampleBot/1.0)", Bot)
	f("Mozilla/5.0 (Linux; Android 11; CUBOT KINGKONG 5 Pro) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Mobile Safari/537.36", Person)
}

// TestLanes finds a token at every offset of UAs long enough to be read in
// lanes, near lane boundaries included.
func TestLanes(t *testing.T) {
	filler := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/111.0.0.0 Safari/537.36 "
	for _, tc := range []struct {
		token string
		want  Class
	}{
		{"Discordbot/2.0", Preview},
		{"[FB_IAB/FB4A;FBAV/488.0.0.62.79;]", Person},
		{"Googlebot/2.1", Bot},
		{"developers.google.com/+/web/snippet", Preview}, // longer than maxPrefix
		{"curl/8.4.0", Bot},
	} {
		for _, n := range []int{minLaneLen, minLaneLen + 1, 100, 257, 1000} {
			for i := 0; i+len(tc.token) <= n; i++ {
				ua := []byte(strings.Repeat(filler, n/len(filler)+1)[:n])
				copy(ua[i:], tc.token)
				want := tc.want
				if want == Person && (!bytes.Contains(ua, []byte("(")) || !refInApp(bytes.ToLower(ua))) {
					want = Bot // the token overwrote the filler's only '(', its platform or its engine: implausible
				}
				if got := Classify(ua); got != want {
					t.Fatalf("unexpected class for %q at offset %d of %d bytes; got %v; want %v", tc.token, i, n, got, want)
				}
			}
		}
	}
}

// TestUncompilablePattern checks that a crawler-list pattern the matcher
// cannot handle (no required literal of 3 bytes, or bad syntax) stops the
// classifier from being built, naming the pattern, rather than being left
// out: at init, that panic fails every test of the package.
func TestUncompilablePattern(t *testing.T) {
	for _, p := range []string{`^.`, `a+b`, `(`, `\d{3}`} {
		rules := append(rulesFromLists(), rule{kind: maskBot, pattern: "re:" + p, caseSensitive: true, source: "crawler-user-agents"})
		_, err := newClassifier(rules)
		if err == nil || !strings.Contains(err.Error(), "crawler-user-agents") || !strings.Contains(err.Error(), p) {
			t.Errorf("unexpected error for the pattern %q; got %v; want one naming it", p, err)
		}
	}
}

func TestCompilePattern(t *testing.T) {
	f := func(expr string, fold bool, wantLits []string, wantRegexp bool) {
		t.Helper()
		cp, err := compilePattern(expr, fold)
		if err != nil {
			t.Fatalf("unexpected error for %q: %v", expr, err)
		}
		if strings.Join(cp.literals, "|") != strings.Join(wantLits, "|") || (cp.confirm != nil) != wantRegexp {
			t.Errorf("unexpected compilation of %q; got %q, regexp %v; want %q, regexp %v", expr, cp.literals, cp.confirm, wantLits, wantRegexp)
		}
	}
	f(`Googlebot\/`, false, []string{"Googlebot/"}, false)
	f(`[wW]get`, false, []string{"Wget", "wget"}, false)
	f(`S[eE][mM]rushBot`, false, []string{"SEMrushBot", "SEmrushBot", "SeMrushBot", "SemrushBot"}, false)
	f(`(sistrix|SISTRIX) [cC]rawler`, true, []string{"sistrix crawler"}, false)
	f(`^curl`, false, []string{"curl"}, true)
	f(`AdsBot-Google([^-]|$)`, false, []string{"AdsBot-Google"}, true)
	f(`BlogTraffic\/\d\.\d+ Feed-Fetcher`, false, []string{
		"BlogTraffic/0.", "BlogTraffic/1.", "BlogTraffic/2.", "BlogTraffic/3.", "BlogTraffic/4.",
		"BlogTraffic/5.", "BlogTraffic/6.", "BlogTraffic/7.", "BlogTraffic/8.", "BlogTraffic/9.",
	}, true)
	f(`(^| )sentry\/`, false, []string{"sentry/"}, true)

	for _, expr := range []string{`^.`, `a+b`, `(`} {
		if _, err := compilePattern(expr, false); err == nil {
			t.Errorf("unexpected success compiling %q", expr)
		}
	}
}

// TestFoldASCII checks the case-insensitive regexps: both cases of ASCII
// letters, nothing else, and negated classes negate both cases.
func TestFoldASCII(t *testing.T) {
	f := func(expr, text string, want bool) {
		t.Helper()
		cp, err := compilePattern(expr, true)
		if err != nil {
			t.Fatalf("unexpected error for %q: %v", expr, err)
		}
		if cp.confirm == nil {
			t.Fatalf("no regexp for %q", expr)
		}
		if got := cp.confirm.MatchString(text); got != want {
			t.Errorf("unexpected match of %q (as %s) on %q; got %v; want %v", expr, cp.confirm, text, got, want)
		}
	}
	f(`^viber`, "VIBER", true)
	f(`^viber`, "x viber", false)
	f(`(^|[^u]|[^c]u)bot\b`, "ExampleBOT/1", true)
	f(`(^|[^u]|[^c]u)bot\b`, "CUBOT P30", false)
	f(`(^|[^u]|[^c]u)bot\b`, "cubot p30", false)
	f(`[^a-z]xyz`, "Axyz", false)
	f(`[^a-z]xyz`, "-XYZ", true)
	f(`^kurl/`, "\u212aurl/", false) // Kelvin sign: no Unicode folding
}

func hasEngineToken(ua []byte) bool {
	low := bytes.ToLower(ua)
	for _, tok := range engineTokens {
		if bytes.Contains(low, []byte(tok)) {
			return true
		}
	}
	return false
}

// reference classifies like Classify, the slow and obvious way: one regexp
// per crawler-list pattern, substring search for our tokens, and regexps
// for the rules of plausible.go.
type reference struct {
	preview, robot, inApp, bot []func(ua, low []byte) bool
}

// Regexps of the reference for the rules of plausible.go, over the
// lowercased UA.
var (
	refEmail = regexp.MustCompile(`\w@[\w-]+\.[a-z]{2,}`)
	// An in-app browser's UA: "Mozilla/5.0 (", a platform with a letter up
	// to the first ')', and not the robots' "(compatible…".
	refInAppBrowser  = regexp.MustCompile(`^mozilla/5\.0 \([^)]*[a-z][^)]*\)`)
	refRobotPlatform = regexp.MustCompile(`^mozilla/5\.0 \(compatible`)
)

// refInApp reports whether the reference counts an in-app marker on ua
// (lowercased) as a person's.
func refInApp(low []byte) bool {
	return refInAppBrowser.Match(low) && !refRobotPlatform.Match(low) && hasEngineToken(low)
}

var referenceOnce = sync.OnceValue(func() *reference {
	r := &reference{}
	own := func(p string) func(ua, low []byte) bool {
		if expr, ok := strings.CutPrefix(p, "re:"); ok {
			re := regexp.MustCompile(expr) // our regexps are lowercase
			return func(_, low []byte) bool { return re.Match(low) }
		}
		tok := []byte(p)
		return func(_, low []byte) bool { return bytes.Contains(low, tok) }
	}
	for _, p := range previewPatterns {
		r.preview = append(r.preview, own(p))
	}
	for _, p := range inAppPatterns {
		r.inApp = append(r.inApp, own(p))
	}
	for _, p := range extraBotPatterns {
		r.robot = append(r.robot, own(p))
	}
	for _, c := range crawlerList {
		if _, ok := excludedCrawlerPatterns[c.Pattern]; ok {
			continue
		}
		re := regexp.MustCompile(c.Pattern)
		r.bot = append(r.bot, func(ua, _ []byte) bool { return re.Match(ua) })
	}
	botWord := regexp.MustCompile(`(^|[^u]|[^c]u)bot[/;), ,:(-]`)
	r.robot = append(r.robot, func(_, low []byte) bool { return botWord.Match(low) })
	return r
})

func (r *reference) classify(ua []byte) Class {
	low := make([]byte, len(ua))
	for i, c := range ua {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		low[i] = c
	}
	any := func(fs []func(ua, low []byte) bool) bool {
		for _, f := range fs {
			if f(ua, low) {
				return true
			}
		}
		return false
	}
	letter, paren, control := false, false, false
	for _, c := range low {
		letter = letter || 'a' <= c && c <= 'z'
		paren = paren || c == '('
		control = control || c < 0x20 || c == 0x7f
	}
	switch {
	case any(r.preview):
		return Preview
	case any(r.robot), refEmail.Match(low), len(ua) < 20 || !letter || !paren || control:
		return Bot
	case !hasEngineToken(ua):
		return Bot
	case any(r.inApp):
		if refInApp(low) {
			return Person
		}
		return Bot
	case any(r.bot):
		return Bot
	}
	return Person
}

// TestMatchesReference compares Classify with the reference on the table,
// on the crawler list's examples and on their case-swapped copies.
func TestMatchesReference(t *testing.T) {
	ref := referenceOnce()
	var uas []string
	for _, r := range readTable(t) {
		uas = append(uas, r.ua)
	}
	for _, c := range crawlerList {
		uas = append(uas, c.Instances...)
	}
	for _, ua := range uas {
		for _, b := range [][]byte{[]byte(ua), swapCase([]byte(ua))} {
			if got, want := Classify(b), ref.classify(b); got != want {
				t.Errorf("unexpected class for %q; got %v; want %v (reference)", b, got, want)
			}
		}
	}
}

func swapCase(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// FuzzClassify checks that Classify does not panic, returns one of the
// three classes, agrees with the reference, and that being a preview
// fetcher does not depend on ASCII case. Other classes may: the crawler
// list is case-sensitive ("Sonic" is a robot, "sonic" is not).
func FuzzClassify(f *testing.F) {
	for _, r := range readTable(f) {
		f.Add([]byte(r.ua))
	}
	ref := referenceOnce()
	f.Fuzz(func(t *testing.T, ua []byte) {
		got := Classify(ua)
		if got != Person && got != Bot && got != Preview {
			t.Fatalf("unexpected class for %q; got %v", ua, got)
		}
		if want := ref.classify(ua); got != want {
			t.Fatalf("unexpected class for %q; got %v; want %v (reference)", ua, got, want)
		}
		if swapped := Classify(swapCase(ua)); (got == Preview) != (swapped == Preview) {
			t.Fatalf("unexpected class for the case-swapped %q; got %v; the original is %v", ua, swapped, got)
		}
	})
}
