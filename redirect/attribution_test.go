package redirect

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/clickid"
)

// clickIDOf returns the claims of the click id in a redirect's Location or
// a preview page.
func clickIDOf(t *testing.T, h *Handler, resp *fasthttp.Response) clickid.Claims {
	t.Helper()
	where := string(resp.Header.Peek("Location"))
	if resp.StatusCode() == 200 {
		where = string(resp.Body())
	}
	_, id, ok := strings.Cut(where, DefaultClickParam+"=")
	if !ok {
		t.Fatalf("no click id in the answer %d %q", resp.StatusCode(), where)
	}
	if end := strings.IndexFunc(id, func(r rune) bool { return !isClickIDChar(r) }); end >= 0 {
		id = id[:end]
	}
	c, err := h.Signer().Parse([]byte(id))
	if err != nil {
		t.Fatalf("cannot verify click id %q: %s", id, err)
	}
	return c
}

func isClickIDChar(r rune) bool {
	return 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_'
}

// TestClickIDAttributable: the click id of every answer is attributable
// exactly when classify found a person's eligible navigation, whatever
// dedupe decides after.
func TestClickIDAttributable(t *testing.T) {
	e := newEdge(t, func(o *Options) { o.Velocity = NewVelocity(VelocityOptions{Max: 2, Window: time.Minute}) })
	ctx := context.Background()
	now := time.Now().UTC()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.store.PutCampaign(ctx, counter.Campaign{ID: "over", StartsAt: now.Add(-2 * time.Hour), EndsAt: now.Add(-time.Hour), DedupeWindow: counter.Duration(24 * time.Hour)}))
	must(e.store.PutCreator(ctx, counter.Creator{ID: "alice", Campaign: "over", Status: counter.StatusActive}))
	must(e.store.PutCreator(ctx, counter.Creator{ID: "bob", Campaign: "spring", Status: counter.StatusSuspended}))
	must(e.store.CreateLink(ctx, counter.Link{Code: "overlink", Campaign: "over", Creator: "alice", Destinations: testDest}))
	must(e.store.CreateLink(ctx, counter.Link{Code: "boblink", Campaign: "spring", Creator: "bob", Destinations: testDest}))
	must(e.table.Refresh(ctx))

	ua := func(s string) string { return "User-Agent: " + s + "\r\n" }
	for i, r := range []struct {
		ip, method, code string
		headers          []string
		want             bool
	}{
		{"127.0.6.1", "GET", testCode, []string{ua(chromeUA)}, true},
		{"127.0.6.1", "GET", testCode, []string{ua(chromeUA)}, true}, // a duplicate: a returning person
		{"127.0.6.2", "GET", testCode, []string{ua(tiktokUA)}, true},
		{"127.0.6.3", "GET", testCode, []string{ua(chromeUA), "Sec-Fetch-Dest: document\r\n"}, true},
		{"127.0.6.4", "HEAD", testCode, []string{ua(chromeUA)}, false},
		{"127.0.6.5", "GET", testCode, []string{ua(chromeUA), "Sec-Purpose: prefetch;prerender\r\n"}, false},
		{"127.0.6.5", "GET", testCode, []string{ua(iPhoneUA), "X-Purpose: preview\r\n"}, false},
		{"127.0.6.5", "GET", testCode, []string{ua(chromeUA), "Sec-Fetch-Dest: image\r\n"}, false},
		{"127.0.6.6", "GET", testCode, []string{ua(discordUA)}, false}, // the preview page
		{"127.0.6.7", "GET", testCode, []string{ua(curlUA)}, false},
		{"127.0.6.7", "GET", testCode, nil, false},
		{"127.0.6.8", "GET", "overlink", []string{ua(chromeUA)}, false},
		{"127.0.6.9", "GET", "boblink", []string{ua(chromeUA)}, false},
		// The network's third click in a minute is over the rate.
		{"127.0.6.10", "GET", testCode, []string{ua(chromeUA)}, true},
		{"127.0.6.10", "GET", testCode, []string{ua(firefoxUA)}, true},
		{"127.0.6.10", "GET", testCode, []string{ua(iPhoneUA)}, false},
	} {
		resp := e.do(t, r.ip, r.method, "/"+r.code, r.headers...)
		if c := clickIDOf(t, e.h, resp); c.Attributable != r.want {
			t.Fatalf("unexpected Attributable for request %d, %s /%s %q from %s; got %v; want %v", i, r.method, r.code, r.headers, r.ip, c.Attributable, r.want)
		}
	}
	got := e.totals(t)
	if got[counter.Qualified] != 5 || got[counter.Duplicate] != 1 || got[counter.Velocity] != 1 {
		t.Fatalf("unexpected counts; got %+v; want qualified=5 duplicates=1 velocity=1", got)
	}
}

// TestClickIDsDiffer: two clicks on one link in the same second, by the same
// person, get two ids with two keys.
func TestClickIDsDiffer(t *testing.T) {
	e := newEdge(t)
	seen := map[string]bool{}
	bySecond := map[int64]int{}
	for i := 0; ; i++ {
		resp := e.do(t, "127.0.7.1", "GET", "/"+testCode, "User-Agent: "+chromeUA+"\r\n")
		c := clickIDOf(t, e.h, resp)
		loc := string(resp.Header.Peek("Location"))
		if seen[loc] || seen[c.Key()] {
			t.Fatalf("unexpected repeated click id or key after %d clicks: %q, key %q", i, loc, c.Key())
		}
		seen[loc], seen[c.Key()] = true, true
		if bySecond[c.Time]++; bySecond[c.Time] == 2 {
			return // two ids of one second, and they differ
		}
		if i == 1000 {
			t.Fatalf("no two of %d clicks in the same second", i)
		}
	}
}
