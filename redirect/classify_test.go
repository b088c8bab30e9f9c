package redirect

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
)

const (
	discordUA   = "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)"
	curlUA      = "curl/8.5.0"
	instagramUA = "Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/UQ1A.240205.004; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.119 Mobile Safari/537.36 Instagram 321.0.0.39.106 Android (34/14; 420dpi; 1080x2400; Google/google; Pixel 7; panther; panther; en_US; 574156925)"
)

func TestReasons(t *testing.T) {
	e := newEdge(t)
	type req struct {
		method  string
		headers []string
		status  int
		reason  counter.Reason
	}
	ua := func(s string) string { return "User-Agent: " + s + "\r\n" }
	for i, r := range []req{
		{"HEAD", []string{ua(chromeUA)}, 302, counter.Prefetch},
		{"GET", []string{ua(chromeUA), "Sec-Purpose: prefetch;prerender\r\n"}, 302, counter.Prefetch},
		{"GET", []string{ua(chromeUA), "Purpose: prefetch\r\n"}, 302, counter.Prefetch},
		{"GET", []string{ua(iPhoneUA), "X-Purpose: preview\r\n"}, 302, counter.Prefetch},
		{"GET", []string{ua(firefoxUA), "X-Moz: prefetch\r\n"}, 302, counter.Prefetch},
		{"GET", []string{ua(chromeUA), "Sec-Fetch-Dest: image\r\n"}, 302, counter.Prefetch},
		{"GET", []string{ua(chromeUA), "Sec-Fetch-Dest: iframe\r\n"}, 302, counter.Prefetch},
		{"GET", []string{ua(discordUA)}, 200, counter.Preview},
		{"GET", []string{ua(curlUA)}, 302, counter.Bot},
		{"GET", nil, 302, counter.Bot}, // no User-Agent at all
		{"GET", []string{ua(chromeUA), "Sec-Fetch-Mode: no-cors\r\n"}, 302, counter.Prefetch},
		{"GET", []string{ua(chromeUA), "Sec-Fetch-Mode: cors\r\n", "Sec-Fetch-Dest: document\r\n"}, 302, counter.Prefetch},
		{"GET", []string{ua(chromeUA), "Sec-Fetch-Mode: navigate\r\n", "Sec-Fetch-Dest: document\r\n"}, 302, counter.Qualified},
		{"GET", []string{ua(chromeUA), "Sec-Fetch-Dest: document\r\n"}, 302, counter.Qualified},
		{"GET", []string{ua(instagramUA)}, 302, counter.Qualified},
		{"GET", []string{ua(tiktokUA)}, 302, counter.Qualified},
	} {
		// A distinct client each, so dedupe never decides here.
		resp := e.do(t, fmt.Sprintf("127.0.1.%d", i+1), r.method, "/"+testCode, r.headers...)
		if resp.StatusCode() != r.status {
			t.Fatalf("unexpected status for %s %q; got %d; want %d", r.method, r.headers, resp.StatusCode(), r.status)
		}
		cookie := resp.Header.PeekCookie(VisitorCookie)
		if (r.reason == counter.Qualified) != (len(cookie) > 0) {
			t.Fatalf("unexpected visitor cookie %q for %s %q (reason %v): set only on a counted navigation", cookie, r.method, r.headers, r.reason)
		}
	}
	got := e.totals(t)
	want := counter.Counts{}
	want[counter.Prefetch], want[counter.Preview], want[counter.Bot], want[counter.Qualified] = 9, 1, 2, 4
	if got != want {
		t.Fatalf("unexpected counts; got %+v; want %+v", got, want)
	}
}

func TestVisitorCookie(t *testing.T) {
	e := newEdge(t)
	resp := e.do(t, "127.0.2.1", "GET", "/"+testCode, "User-Agent: "+chromeUA+"\r\n")
	var c fasthttp.Cookie
	c.SetKey(VisitorCookie)
	if !resp.Header.Cookie(&c) {
		t.Fatalf("no visitor cookie set on a first visit")
	}
	id := string(c.Value())
	if _, ok := e.h.visitors.ParseCookie([]byte(id)); !ok || !c.HTTPOnly() || !c.Secure() || c.SameSite() != fasthttp.CookieSameSiteLaxMode || c.MaxAge() < 365*24*3600 {
		t.Fatalf("unexpected visitor cookie %q", c.String())
	}
	cookie := "Cookie: " + VisitorCookie + "=" + id + "\r\n"
	// The same browser on another network (Wi-Fi to mobile data) and with
	// another User-Agent string is still one visitor.
	e.do(t, "127.0.2.2", "GET", "/"+testCode, "User-Agent: "+chromeUA+"\r\n", cookie)
	e.do(t, "2001:db8::7", "GET", "/"+testCode, "User-Agent: "+firefoxUA+"\r\n", cookie)
	// Without the cookie, the first network and User-Agent is known too.
	e.do(t, "127.0.2.1", "GET", "/"+testCode, "User-Agent: "+chromeUA+"\r\n")
	// Made-up cookies count as no cookie: a client that sends a new one with
	// every click is still keyed by its network and User-Agent.
	for i := range 10 {
		forged := fmt.Sprintf("%032d", i)
		e.do(t, "127.0.2.1", "GET", "/"+testCode, "User-Agent: "+chromeUA+"\r\n", "Cookie: "+VisitorCookie+"="+forged+"\r\n")
	}
	tampered := []byte(id)
	tampered[3] ^= 'A' ^ 'B'
	e.do(t, "127.0.2.1", "GET", "/"+testCode, "User-Agent: "+chromeUA+"\r\n", "Cookie: "+VisitorCookie+"="+string(tampered)+"\r\n")
	e.do(t, "127.0.2.1", "GET", "/"+testCode, "User-Agent: "+chromeUA+"\r\n", "Cookie: "+VisitorCookie+"=short\r\n")
	// A second browser on another network is another visitor.
	e.do(t, "127.0.2.9", "GET", "/"+testCode, "User-Agent: "+chromeUA+"\r\n")
	got := e.totals(t)
	if got[counter.Qualified] != 2 || got[counter.Duplicate] != 15 {
		t.Fatalf("unexpected counts; got %+v; want qualified=2 duplicates=15", got)
	}
}

func TestPreviewPage(t *testing.T) {
	e := newEdge(t)
	ctx := context.Background()
	l := counter.Link{Code: "cardlink", Campaign: "spring", Creator: "alice", Destinations: testDest,
		Preview: counter.Card{Title: `Alice's <b>"best"</b> & more`, Image: "https://img.example.com/a.png?w=1&h=2"}}
	if err := e.store.CreateLink(ctx, l); err != nil {
		t.Fatal(err)
	}
	camp, _ := e.store.Campaign(ctx, "spring")
	camp.Preview = counter.Card{Title: "campaign title", Description: "Join <now> & get \"$10\""}
	if err := e.store.PutCampaign(ctx, camp); err != nil {
		t.Fatal(err)
	}
	if err := e.table.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	resp := e.do(t, "127.0.3.1", "GET", "/cardlink", "User-Agent: "+discordUA+"\r\n")
	if resp.StatusCode() != 200 || !strings.HasPrefix(string(resp.Header.ContentType()), "text/html") {
		t.Fatalf("unexpected preview response: %d %q", resp.StatusCode(), resp.Header.ContentType())
	}
	page := string(resp.Body())
	for _, want := range []string{
		`<meta property="og:title" content="Alice&#39;s &lt;b&gt;&#34;best&#34;&lt;/b&gt; &amp; more">`,
		`<meta name="twitter:title" content="Alice&#39;s &lt;b&gt;&#34;best&#34;&lt;/b&gt; &amp; more">`,
		`<meta property="og:image" content="https://img.example.com/a.png?w=1&amp;h=2">`,
		`<meta name="twitter:card" content="summary_large_image">`,
		// The link's card has no description: the campaign's is used.
		`<meta property="og:description" content="Join &lt;now&gt; &amp; get &#34;$10&#34;">`,
		`<meta property="og:url" content="https://go.example.com/cardlink">`,
		`<meta http-equiv="refresh" content="0; url=https://app.example.com/join?src=cg&amp;` + DefaultClickParam + `=`,
	} {
		if !strings.Contains(page, want) {
			t.Fatalf("preview page lacks %s\n%s", want, page)
		}
	}
	if strings.Contains(page, "<b>") || strings.Contains(page, `"best"`) {
		t.Fatalf("unescaped value in preview page:\n%s", page)
	}
}

func TestEligibility(t *testing.T) {
	e := newEdge(t)
	ctx := context.Background()
	now := time.Now().UTC()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.store.PutCampaign(ctx, counter.Campaign{ID: "later", StartsAt: now.Add(time.Hour), EndsAt: now.Add(2 * time.Hour), DedupeWindow: counter.Duration(24 * time.Hour)}))
	must(e.store.PutCampaign(ctx, counter.Campaign{ID: "over", StartsAt: now.Add(-2 * time.Hour), EndsAt: now.Add(-time.Hour), DedupeWindow: counter.Duration(24 * time.Hour)}))
	for _, c := range []counter.Creator{
		{ID: "alice", Campaign: "later", Status: counter.StatusActive},
		{ID: "alice", Campaign: "over", Status: counter.StatusActive},
		{ID: "bob", Campaign: "spring", Status: counter.StatusSuspended},
		{ID: "carol", Campaign: "spring", Status: counter.StatusInvited},
	} {
		must(e.store.PutCreator(ctx, c))
	}
	for code, l := range map[string][2]string{"laterlink": {"later", "alice"}, "overlink": {"over", "alice"}, "boblink": {"spring", "bob"}, "carollink": {"spring", "carol"}} {
		must(e.store.CreateLink(ctx, counter.Link{Code: code, Campaign: l[0], Creator: l[1], Destinations: testDest}))
	}
	must(e.table.Refresh(ctx))
	f := func(code, campaign, creator string, reason counter.Reason) {
		t.Helper()
		if resp := e.do(t, "127.0.4.1", "GET", "/"+code, "User-Agent: "+chromeUA+"\r\n"); resp.StatusCode() != 302 {
			t.Fatalf("unexpected status for %s; got %d; want 302: a person is always redirected", code, resp.StatusCode())
		}
		days, err := e.rec.Stats(ctx, campaign, creator)
		must(err)
		if got := counter.Total(days); got[reason] != 1 || got.Clicks() != 1 {
			t.Fatalf("unexpected counts for %s; got %+v; want one %v", code, got, reason)
		}
	}
	f("laterlink", "later", "alice", counter.OutOfWindow)
	f("overlink", "over", "alice", counter.OutOfWindow)
	f("boblink", "spring", "bob", counter.Inactive)
	f("carollink", "spring", "carol", counter.Inactive)
}

func TestVelocityFlags(t *testing.T) {
	e := newEdge(t, func(o *Options) { o.Velocity = NewVelocity(VelocityOptions{Max: 3, Window: time.Minute}) })
	uas := []string{chromeUA, firefoxUA, iPhoneUA, androidUA, tiktokUA}
	for _, ua := range uas {
		e.do(t, "127.0.5.1", "GET", "/"+testCode, "User-Agent: "+ua+"\r\n")
	}
	e.do(t, "127.0.5.2", "GET", "/"+testCode, "User-Agent: "+chromeUA+"\r\n") // another network
	got := e.totals(t)
	if got[counter.Qualified] != 4 || got[counter.Velocity] != 2 {
		t.Fatalf("unexpected counts; got %+v; want qualified=4 velocity=2", got)
	}
}

func TestTrustedProxies(t *testing.T) {
	f := func(trusted string, wantQualified int64) {
		t.Helper()
		tp, err := ParseTrustedProxies(trusted)
		if err != nil {
			t.Fatal(err)
		}
		e := newEdge(t, func(o *Options) { o.TrustedProxies = tp })
		for _, xff := range []string{"203.0.113.7", "198.51.100.9", "203.0.113.7, 127.0.0.1"} {
			e.do(t, "127.0.0.1", "GET", "/"+testCode, "User-Agent: "+chromeUA+"\r\n", "X-Forwarded-For: "+xff+"\r\n")
		}
		if got := e.totals(t); got[counter.Qualified] != wantQualified {
			t.Fatalf("unexpected qualified with trusted proxies %q; got %+v; want %d", trusted, got, wantQualified)
		}
	}
	f("127.0.0.1", 2) // two clients behind the proxy
	f("", 1)          // a forged header on a direct connection changes nothing
}

// peekFetch reads what readFetch reads, a header at a time with PeekAll:
// the oracle of TestReadFetch and FuzzReadFetch.
func peekFetch(hdr *fasthttp.RequestHeader) (f fetch) {
	some := func(name string, is func(v string) bool) bool {
		for _, v := range hdr.PeekAll(name) {
			if is(string(v)) {
				return true
			}
		}
		return false
	}
	token := func(t string) func(string) bool { return func(v string) bool { return strings.ToLower(v) == t } }
	f.speculative = some("Sec-Purpose", func(v string) bool { return strings.Contains(strings.ToLower(v), "prefetch") }) ||
		some("Purpose", token("prefetch")) || some("X-Purpose", token("preview")) ||
		some("X-Purpose", token("prefetch")) || some("X-Moz", token("prefetch"))
	f.notNavigation = some("Sec-Fetch-Dest", func(v string) bool { return v != "" && v != "document" }) ||
		some("Sec-Fetch-Mode", func(v string) bool { return v != "" && v != "navigate" })
	return f
}

// readHeaders parses a GET request with the header lines given (each
// ending in CRLF), as the public listener does.
func readHeaders(lines string) (*fasthttp.RequestHeader, error) {
	var hdr fasthttp.RequestHeader
	err := hdr.Read(bufio.NewReader(strings.NewReader("GET /" + testCode + " HTTP/1.1\r\nHost: go.example.com\r\n" + lines + "\r\n")))
	return &hdr, err
}

func TestReadFetch(t *testing.T) {
	chrome := "User-Agent: " + chromeUA + "\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-User: ?1\r\nAccept-Language: en-US\r\nReferer: https://www.tiktok.com/\r\nCookie: a=b\r\n"
	for _, c := range []struct {
		lines string
		want  fetch
	}{
		{"", fetch{}},
		{chrome + "Sec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\n", fetch{}},
		{chrome + "Sec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: image\r\n", fetch{notNavigation: true}},
		{chrome + "Sec-Fetch-Dest: iframe\r\n", fetch{notNavigation: true}},
		{chrome + "Sec-Fetch-Mode: cors\r\n", fetch{notNavigation: true}},
		{"sec-fetch-dest: IMAGE\r\n", fetch{notNavigation: true}},                             // names in any case; a destination as sent
		{"Sec-Fetch-Dest: document\r\nSec-Fetch-Dest: image\r\n", fetch{notNavigation: true}}, // every copy counts
		{"Sec-Fetch-Dest: image\r\nSec-Fetch-Dest: document\r\n", fetch{notNavigation: true}},
		{"Purpose: x\r\nPurpose: prefetch\r\n", fetch{speculative: true}},
		{"Sec-Purpose: PREFETCH;prerender\r\n", fetch{speculative: true}}, // a purpose in any case
		{"Purpose: Prefetch\r\n", fetch{speculative: true}},
		{"X-Purpose: Preview\r\n", fetch{speculative: true}},
		{"X-Moz: Prefetch\r\n", fetch{speculative: true}},
		{"Sec-Fetch-Dest:\r\nSec-Fetch-Mode:\r\n", fetch{}}, // empty: not said
		{chrome + "Sec-Purpose: prefetch;prerender\r\n", fetch{speculative: true}},
		{"SEC-PURPOSE: prefetch\r\n", fetch{speculative: true}},
		{"Purpose: prefetch\r\n", fetch{speculative: true}},
		{"Purpose: prefetching\r\n", fetch{}},
		{"X-Purpose: preview\r\n", fetch{speculative: true}},
		{"X-Purpose: prefetch\r\n", fetch{speculative: true}},
		{"X-Moz: prefetch\r\n", fetch{speculative: true}},
		{"X-Moz: prefetch\r\nSec-Fetch-Dest: image\r\n", fetch{speculative: true, notNavigation: true}},
	} {
		hdr, err := readHeaders(c.lines)
		if err != nil {
			t.Fatalf("cannot parse %q: %v", c.lines, err)
		}
		if got, oracle := readFetch(hdr), peekFetch(hdr); got != c.want || oracle != c.want {
			t.Errorf("headers %q: readFetch gives %+v, PeekAll %+v; want %+v", c.lines, got, oracle, c.want)
		}
	}
}

// FuzzReadFetch: for any headers fasthttp parses, readFetch says what
// reading them one at a time with PeekAll says.
func FuzzReadFetch(f *testing.F) {
	for _, s := range []string{"Sec-Fetch-Dest: image\r\n", "sec-fetch-mode: cors\r\nSec-Fetch-Dest: document\r\n", "X-Purpose: preview\r\nCookie: cg_vid=x\r\n", "Sec-Purpose: prefetch\r\nPurpose: prefetch\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, lines string) {
		hdr, err := readHeaders(lines)
		if err != nil {
			return
		}
		if got, want := readFetch(hdr), peekFetch(hdr); got != want {
			t.Fatalf("headers %q: readFetch gives %+v; PeekAll %+v", lines, got, want)
		}
	})
}
