package redirect

import (
	"context"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestAppendLocationQuery(t *testing.T) {
	f := func(dest, query, want string) {
		t.Helper()
		got := string(AppendLocationQuery(nil, dest, []byte(query), "cg_click", []byte("ID")))
		if got != want {
			t.Fatalf("unexpected location for %q with query %q; got %q; want %q", dest, query, got, want)
		}
	}
	f("https://x.example/p", "", "https://x.example/p?cg_click=ID")
	f("https://x.example/p", "utm_source=tiktok", "https://x.example/p?utm_source=tiktok&cg_click=ID")
	// The click id is the real one only, however the forged one is spelled.
	f("https://x.example/p", "utm_source=tiktok&cg_click=forged", "https://x.example/p?utm_source=tiktok&cg_click=ID")
	f("https://x.example/p", "cg%5Fclick=forged&cg_click&a=1", "https://x.example/p?a=1&cg_click=ID")
	f("https://x.example/p", "cg_clicks=1", "https://x.example/p?cg_clicks=1&cg_click=ID")
	f("https://x.example/p", "CG_CLICK=F2&Cg%5FClick=F3&b=1", "https://x.example/p?b=1&cg_click=ID") // in any case
	// The destination's parameters win, whatever the spelling.
	f("https://x.example/p?src=cg&utm_source=app#top", "utm%5fsource=tiktok&src=x&b=2", "https://x.example/p?src=cg&utm_source=app&b=2&cg_click=ID#top")
	f("https://x.example/p?ref=alice", "REF=bob&Ref=eve", "https://x.example/p?ref=alice&cg_click=ID")
	f("https://x.example/p?", "a=1", "https://x.example/p?a=1&cg_click=ID")
	f("https://x.example/p?a=1&", "a=2&b", "https://x.example/p?a=1&b&cg_click=ID")
	// Empty parameters are dropped; repeated ones kept; values escaped
	// again, so the header holds only safe bytes.
	f("https://x.example/p", "&&=x&a=1&a=2&", "https://x.example/p?a=1&a=2&cg_click=ID")
	f("https://x.example/p", "q=a+b%20c&r=%zz&s=\xff\r\n<>\"'", "https://x.example/p?q=a%20b%20c&r=%25zz&s=%FF%0D%0A%3C%3E%22%27&cg_click=ID")
	f("https://x.example/p", "k=a=b&e=", "https://x.example/p?k=a%3Db&e=&cg_click=ID")

	// Bounds: the first MaxPassthroughParams parameters, and a parameter
	// that would pass MaxPassthroughBytes is left out with the rest.
	many := strings.Repeat("a=1&", MaxPassthroughParams) + "z=1"
	if got := string(AppendLocationQuery(nil, "https://x.example/", []byte(many), "cg_click", []byte("ID"))); strings.Contains(got, "z=1") ||
		strings.Count(got, "a=1") != MaxPassthroughParams {
		t.Fatalf("unexpected location past %d parameters: %q", MaxPassthroughParams, got)
	}
	long := "a=" + strings.Repeat("x", MaxPassthroughBytes-10) + "&b=" + strings.Repeat("y", 20) + "&c=1"
	got := string(AppendLocationQuery(nil, "https://x.example/", []byte(long), "cg_click", []byte("ID")))
	if !strings.Contains(got, "?a=xxx") || strings.Contains(got, "b=") || strings.Contains(got, "c=1") || !strings.HasSuffix(got, "&cg_click=ID") {
		t.Fatalf("unexpected location past %d bytes: %.80q...", MaxPassthroughBytes, got)
	}
}

// FuzzAppendLocationQuery: whatever the short link's query, the location
// is the destination with its own parameters as they were, exactly one
// click id, the real one, and only bytes that are safe in a header.
func FuzzAppendLocationQuery(f *testing.F) {
	for _, s := range [][2]string{
		{"https://x.example/p?src=cg#top", "utm_source=tiktok&cg_click=forged"},
		{"https://x.example/p", "cg%5Fclick=1&src=2&+=%&a+b=c"},
		{"https://x.example/p?a=1&", "a=2&&b"},
		{"https://x.example/p??", "%00=%0d%0a"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, dest, query string) {
		if ValidateDestination(dest, nil) != nil {
			return
		}
		loc := string(AppendLocationQuery(nil, dest, []byte(query), "cg_click", []byte("REAL")))
		for i := 0; i < len(loc); i++ {
			if c := loc[i]; c <= ' ' || c >= 0x7f {
				t.Fatalf("unsafe byte 0x%02x in location %q", c, loc)
			}
		}
		want, err := url.Parse(dest)
		if err != nil {
			return
		}
		got, err := url.Parse(loc)
		if err != nil {
			t.Fatalf("location %q does not parse: %s", loc, err)
		}
		if got.Host != want.Host || got.Path != want.Path || got.Fragment != want.Fragment {
			t.Fatalf("location %q is not destination %q", loc, dest)
		}
		gq, err1 := url.ParseQuery(got.RawQuery)
		wq, err2 := url.ParseQuery(want.RawQuery)
		if err1 != nil || err2 != nil {
			return // a destination query net/url refuses (a ';')
		}
		if ids := gq["cg_click"]; want.Query().Get("cg_click") == "" && (len(ids) != 1 || ids[0] != "REAL") {
			t.Fatalf("location %q has click ids %q; want only REAL", loc, ids)
		}
		for k, v := range wq {
			if k == "cg_click" {
				continue
			}
			if len(gq[k]) != len(v) || strings.Join(gq[k], "\x00") != strings.Join(v, "\x00") {
				t.Fatalf("location %q changed the destination's %q: %q; want %q", loc, k, gq[k], v)
			}
		}
	})
}

// TestHandlePassthrough: a short link's query reaches the destination but
// for the click id, which is only the real one; a campaign with
// passthrough off sends the destination as it is.
func TestHandlePassthrough(t *testing.T) {
	e := newEdge(t)
	ctx := context.Background()
	setPassthrough := func(on bool) {
		t.Helper()
		c, err := e.store.Campaign(ctx, "spring")
		must(t, err)
		c.QueryPassthrough = on
		must(t, e.store.PutCampaign(ctx, c))
		must(t, e.table.Refresh(ctx))
	}
	get := func(target string) *url.URL {
		t.Helper()
		var req fasthttp.Request
		req.SetRequestURI(target)
		req.Header.SetUserAgent(chromeUA)
		var rc fasthttp.RequestCtx
		rc.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 1}, nil)
		e.h.Handle(&rc)
		if rc.Response.StatusCode() != 302 {
			t.Fatalf("unexpected status for %q; got %d; want 302", target, rc.Response.StatusCode())
		}
		u, err := url.Parse(string(rc.Response.Header.Peek("Location")))
		must(t, err)
		return u
	}
	setPassthrough(true)
	u := get("/" + testCode + "?utm_source=tiktok&cg_click=forged&src=evil")
	q := u.Query()
	if q.Get("utm_source") != "tiktok" || q.Get("src") != "cg" || len(q["src"]) != 1 || len(q["cg_click"]) != 1 || q.Get("cg_click") == "forged" {
		t.Fatalf("unexpected query of the destination; got %q", u.RawQuery)
	}
	claims, err := e.h.Signer().Parse([]byte(q.Get("cg_click")))
	if err != nil || claims.Link != testCode || time.Since(time.Unix(claims.Time, 0)) > time.Minute {
		t.Fatalf("the click id is not the real one: %v, %+v", err, claims)
	}
	setPassthrough(false)
	u = get("/" + testCode + "?utm_source=tiktok&cg_click=forged")
	if q := u.Query(); q.Has("utm_source") || len(q["cg_click"]) != 1 || q.Get("cg_click") == "forged" {
		t.Fatalf("unexpected query with passthrough off; got %q", u.RawQuery)
	}
}
