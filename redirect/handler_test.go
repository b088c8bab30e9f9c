package redirect

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/counter/boltstore"
	"github.com/clickgate/clickgate/redirect/clickid"
)

// spyStore is a real store that counts the calls made to it, and keeps the
// visits committed.
type spyStore struct {
	counter.Store
	calls atomic.Int64

	mu        sync.Mutex
	committed []counter.Visit
}

func (s *spyStore) Commit(ctx context.Context, v []counter.Visit, out []counter.Reason) error {
	s.calls.Add(1)
	s.mu.Lock()
	s.committed = append(s.committed, v...)
	s.mu.Unlock()
	return s.Store.Commit(ctx, v, out)
}

func (s *spyStore) AddCounts(ctx context.Context, c []counter.Count) error {
	s.calls.Add(1)
	return s.Store.AddCounts(ctx, c)
}

func (s *spyStore) Version(ctx context.Context) (uint64, error) {
	s.calls.Add(1)
	return s.Store.Version(ctx)
}

func (s *spyStore) Link(ctx context.Context, code string) (counter.Link, error) {
	s.calls.Add(1)
	return s.Store.Link(ctx, code)
}

// edge is a Handler on an in-memory listener over a real embedded store.
type edge struct {
	store *spyStore
	table *Table
	rec   *counter.Recorder
	h     *Handler
	ln    *fasthttputil.InmemoryListener
}

const (
	testCode   = "AB3KX9QZ"
	testSecret = "0123456789abcdef0123456789abcdef"
)

var testDest = counter.Destinations{
	Default: "https://app.example.com/join?src=cg#top",
	IOS:     "https://apps.apple.com/app/id123",
	Android: "https://play.google.com/store/apps/details?id=com.example",
}

// Real User-Agents (see useragent/testdata for more).
const (
	chromeUA  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
	iPhoneUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	androidUA = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36"
	tiktokUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 musical_ly_34.1.2 JsSdk/2.0 NetType/WIFI Channel/App Store ByteLocale/en Region/US"
)

func newEdge(t testing.TB, opts ...func(*Options)) *edge {
	t.Helper()
	params, err := counter.NewDedupeParams(10_000, 0.001)
	if err != nil {
		t.Fatal(err)
	}
	return newEdgeOf(t, params, opts...)
}

// newEdgeOf is newEdge over a store of params.
func newEdgeOf(t testing.TB, params counter.DedupeParams, opts ...func(*Options)) *edge {
	t.Helper()
	bs, err := boltstore.Open(t.TempDir(), params)
	if err != nil {
		t.Fatalf("cannot open store: %s", err)
	}
	ctx := context.Background()
	now := time.Now().UTC()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(bs.PutCampaign(ctx, counter.Campaign{ID: "spring", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour),
		DedupeWindow: counter.Duration(24 * time.Hour), VisitBlockSize: 1000}))
	must(bs.PutCreator(ctx, counter.Creator{ID: "alice", Campaign: "spring", Country: "US", Status: counter.StatusActive}))
	must(bs.CreateLink(ctx, counter.Link{Code: testCode, Campaign: "spring", Creator: "alice", Destinations: testDest}))

	e := &edge{store: &spyStore{Store: bs}, ln: fasthttputil.NewInmemoryListener()}
	e.table = NewTable(TableOptions{Store: e.store})
	must(e.table.Refresh(ctx))
	e.rec = counter.NewRecorder(counter.RecorderOptions{Store: e.store, Params: params})
	e.rec.Start()
	o := Options{Table: e.table, Recorder: e.rec, Secret: []byte(testSecret), PublicURL: "https://go.example.com"}
	for _, f := range opts {
		f(&o)
	}
	e.h = New(o)
	srv := &fasthttp.Server{Handler: e.h.Handle, NoDefaultContentType: true}
	go srv.Serve(e.ln)
	t.Cleanup(func() {
		srv.Shutdown()
		e.rec.Stop(context.Background())
		bs.Close()
	})
	return e
}

// do sends a raw request line and headers from client address ip.
func (e *edge) do(t testing.TB, ip, method, path string, headers ...string) *fasthttp.Response {
	t.Helper()
	conn, err := e.ln.DialWithLocalAddr(&net.TCPAddr{IP: net.ParseIP(ip), Port: 40000})
	if err != nil {
		t.Fatalf("cannot dial: %s", err)
	}
	defer conn.Close()
	req := method + " " + path + " HTTP/1.1\r\nHost: go.example.com\r\n" + strings.Join(headers, "") + "Connection: close\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatalf("cannot write request: %s", err)
	}
	resp := &fasthttp.Response{}
	if method == "HEAD" {
		resp.SkipBody = true
	}
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		t.Fatalf("cannot read response to %s %s: %s", method, path, err)
	}
	return resp
}

func (e *edge) totals(t testing.TB) counter.Counts {
	t.Helper()
	days, err := e.rec.Stats(context.Background(), "spring", "alice")
	if err != nil {
		t.Fatalf("cannot read stats: %s", err)
	}
	return counter.Total(days)
}

func TestRedirect(t *testing.T) {
	e := newEdge(t)
	signer := clickid.NewSigner(func() []byte { _, k := DeriveKeys([]byte(testSecret)); return k }())
	f := func(ua, wantPrefix string) {
		t.Helper()
		before := time.Now().Unix()
		resp := e.do(t, "127.0.0.9", "GET", "/"+testCode+"?utm_source=tiktok", "User-Agent: "+ua+"\r\n")
		if resp.StatusCode() != 302 {
			t.Fatalf("unexpected status for %q; got %d; want 302", ua, resp.StatusCode())
		}
		if cc := string(resp.Header.Peek("Cache-Control")); cc != "no-store" {
			t.Fatalf("unexpected Cache-Control; got %q; want no-store", cc)
		}
		loc := string(resp.Header.Peek("Location"))
		if !strings.HasPrefix(loc, wantPrefix) {
			t.Fatalf("unexpected Location for %q; got %q; want prefix %q", ua, loc, wantPrefix)
		}
		i := strings.Index(loc, DefaultClickParam+"=")
		if i < 0 {
			t.Fatalf("no click id in Location %q", loc)
		}
		id := loc[i+len(DefaultClickParam)+1:]
		id, _, _ = strings.Cut(id, "#")
		c, err := signer.Parse([]byte(id))
		if err != nil {
			t.Fatalf("cannot verify click id %q: %s", id, err)
		}
		if c.Campaign != "spring" || c.Creator != "alice" || c.Link != testCode || c.Time < before || c.Time > time.Now().Unix() {
			t.Fatalf("unexpected claims; got %+v", c)
		}
	}
	f(chromeUA, "https://app.example.com/join?src=cg&"+DefaultClickParam+"=")
	f(iPhoneUA, "https://apps.apple.com/app/id123?"+DefaultClickParam+"=")
	f(androidUA, "https://play.google.com/store/apps/details?id=com.example&"+DefaultClickParam+"=")

	// The fragment stays last.
	resp := e.do(t, "127.0.0.9", "GET", "/"+testCode, "User-Agent: "+firefoxUA+"\r\n")
	if loc := string(resp.Header.Peek("Location")); !strings.HasSuffix(loc, "#top") {
		t.Fatalf("unexpected Location; got %q; want it to end in #top", loc)
	}
}

// TestVisitRecord: a person's visit is recorded with what the visit log
// keeps: its time, keyed network and block keys, both visitor keys, and
// the nonce of the click id the person was redirected with.
func TestVisitRecord(t *testing.T) {
	e := newEdge(t)
	signer := clickid.NewSigner(func() []byte { _, k := DeriveKeys([]byte(testSecret)); return k }())
	before := time.Now().UnixMilli()
	resp := e.do(t, "127.0.0.9", "GET", "/"+testCode, "User-Agent: "+chromeUA+"\r\n")
	loc := string(resp.Header.Peek("Location"))
	id, _, _ := strings.Cut(loc[strings.Index(loc, DefaultClickParam+"=")+len(DefaultClickParam)+1:], "#")
	c, err := signer.Parse([]byte(id))
	if err != nil {
		t.Fatalf("cannot verify click id %q: %s", id, err)
	}
	e.store.mu.Lock()
	vs := slices.Clone(e.store.committed)
	e.store.mu.Unlock()
	if len(vs) != 1 {
		t.Fatalf("unexpected visits committed; got %d; want 1", len(vs))
	}
	v := vs[0]
	if v.Nonce != c.Nonce || v.At < before || v.At > time.Now().UnixMilli() || v.Network == 0 || v.Block == 0 ||
		!v.HasAlso || v.Also == v.Key || v.MarkOnly {
		t.Fatalf("unexpected visit %+v for click id %+v", v, c)
	}
	// Another click, another nonce.
	e.do(t, "127.0.0.10", "GET", "/"+testCode, "User-Agent: "+chromeUA+"\r\n")
	e.store.mu.Lock()
	defer e.store.mu.Unlock()
	if len(e.store.committed) != 2 || e.store.committed[1].Nonce == v.Nonce || e.store.committed[1].Network == v.Network {
		t.Fatalf("unexpected second visit %+v", e.store.committed[1:])
	}
}

func TestCountBeforeRedirect(t *testing.T) {
	e := newEdge(t)
	for i := range 20 {
		ip := fmt.Sprintf("127.0.0.%d", 10+i)
		for range 3 {
			if resp := e.do(t, ip, "GET", "/"+testCode, "User-Agent: "+chromeUA+"\r\n"); resp.StatusCode() != 302 {
				t.Fatalf("unexpected status; got %d; want 302", resp.StatusCode())
			}
		}
		// Read straight from the store, without the recorder's tally: the
		// qualified visit is there as soon as its 302 is.
		days, err := e.store.Store.Stats(context.Background(), "spring", "alice")
		if err != nil {
			t.Fatal(err)
		}
		if got := counter.Total(days)[counter.Qualified]; got != int64(i+1) {
			t.Fatalf("unexpected qualified count in the store after %d visitors' redirects; got %d; want %d", i+1, got, i+1)
		}
	}
	got := e.totals(t)
	if got[counter.Qualified] != 20 || got[counter.Duplicate] != 40 || got.Clicks() != 60 {
		t.Fatalf("unexpected totals; got %+v; want qualified=20 duplicates=40 clicks=60", got)
	}
}

func TestVisitorKeys(t *testing.T) {
	e := newEdge(t)
	click := func(ip, ua string) {
		t.Helper()
		if resp := e.do(t, ip, "GET", "/"+testCode, "User-Agent: "+ua+"\r\n"); resp.StatusCode() != 302 {
			t.Fatalf("unexpected status; got %d; want 302", resp.StatusCode())
		}
	}
	click("2001:db8:1:2:aaaa::1", chromeUA)
	click("2001:db8:1:2:bbbb::2", chromeUA) // same /64: same visitor
	click("2001:db8:1:3::1", chromeUA)      // other /64
	click("127.0.0.5", chromeUA)
	click("127.0.0.5", firefoxUA) // other User-Agent
	click("127.0.0.5", chromeUA)
	got := e.totals(t)
	if got[counter.Qualified] != 4 || got[counter.Duplicate] != 2 {
		t.Fatalf("unexpected totals; got %+v; want qualified=4 duplicates=2", got)
	}
}

func TestNotCounted(t *testing.T) {
	e := newEdge(t)
	// HEAD is redirected and not paid.
	resp := e.do(t, "127.0.0.3", "HEAD", "/"+testCode)
	if resp.StatusCode() != 302 || len(resp.Header.Peek("Location")) == 0 {
		t.Fatalf("unexpected HEAD response; got %d, Location %q", resp.StatusCode(), resp.Header.Peek("Location"))
	}
	if resp := e.do(t, "127.0.0.3", "POST", "/"+testCode); resp.StatusCode() != 405 || string(resp.Header.Peek("Allow")) != "GET, HEAD" {
		t.Fatalf("unexpected POST response; got %d, Allow %q; want 405", resp.StatusCode(), resp.Header.Peek("Allow"))
	}
	if got := e.totals(t); got.Clicks() != 1 || got[counter.Prefetch] != 1 {
		t.Fatalf("unexpected counts; got %+v; want prefetches=1 only", got)
	}
}

func TestBadPathsTouchNoStore(t *testing.T) {
	e := newEdge(t)
	f := func(path string, want int) {
		t.Helper()
		before := e.store.calls.Load()
		resp := e.do(t, "127.0.0.4", "GET", path, "User-Agent: "+chromeUA+"\r\n")
		if resp.StatusCode() != want {
			t.Fatalf("unexpected status for %q; got %d; want %d", path, resp.StatusCode(), want)
		}
		if n := e.store.calls.Load() - before; n != 0 {
			t.Fatalf("unexpected store calls for %q; got %d; want 0", path, n)
		}
	}
	f("/ZZZZZZZZ", 404)                 // unknown
	f("/%41B3KX9QZ", 404)               // percent-encoded A
	f("/AB3KX9QZ%00", 404)              // encoded NUL
	f("/AB3K.X9QZ", 404)                // bad character
	f("/AB3KX9QZ/", 404)                // trailing slash
	f("//AB3KX9QZ", 404)                // double slash
	f("/"+strings.Repeat("A", 33), 404) // overlong
	f("/ABC", 404)                      // too short
	f("/", 404)                         // empty
	f("/../AB3KX9QZ", 404)              // traversal
	f("/healthz", 200)                  // reserved
	f("/robots.txt", 200)               // reserved
	f("/v1/campaigns/spring", 404)      // admin paths are not public
	f("/ab3kx9qz", 404)                 // codes are case-sensitive
	if got := e.totals(t); got.Clicks() != 0 {
		t.Fatalf("unexpected counts; got %+v; want none", got)
	}
	// Robots are asked to fetch nothing.
	if resp := e.do(t, "127.0.0.4", "GET", "/robots.txt", ""); string(resp.Body()) != "User-agent: *\nDisallow: /\n" {
		t.Fatalf("unexpected /robots.txt %q; want every path disallowed to every robot", resp.Body())
	}
}

func TestTableRefresh(t *testing.T) {
	e := newEdge(t)
	if e.table.entry("NEWCODE1") != nil {
		t.Fatalf("unexpected entry for a code not yet created")
	}
	if err := e.store.CreateLink(context.Background(), counter.Link{Code: "NEWCODE1", Campaign: "spring", Creator: "alice", Destinations: testDest}); err != nil {
		t.Fatal(err)
	}
	old := e.table.snap.Load()
	if err := e.table.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.table.entry("NEWCODE1"); got == nil || got.Creator.ID != "alice" || got.Campaign.ID != "spring" {
		t.Fatalf("unexpected entry after refresh; got %+v", got)
	}
	if old.lookup("NEWCODE1") != nil {
		t.Fatalf("the old snapshot changed; snapshots must be immutable")
	}
	// An unchanged version does not reload.
	cur := e.table.snap.Load()
	if err := e.table.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.table.snap.Load() != cur {
		t.Fatalf("unexpected reload of an unchanged catalog")
	}
}

func TestCodes(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		c := NewCode()
		if len(c) != GeneratedCodeLen || !ValidCode([]byte(c)) || strings.Trim(c, CodeAlphabet) != "" {
			t.Fatalf("unexpected generated code %q", c)
		}
		seen[c] = true
	}
	if len(seen) != 1000 {
		t.Fatalf("unexpected collisions among 1000 codes: %d distinct", len(seen))
	}
	f := func(code string, ok bool) {
		t.Helper()
		if err := CheckCustomCode(code); (err == nil) != ok {
			t.Fatalf("unexpected result for %q; got %v; want ok=%v", code, err, ok)
		}
	}
	f("alice-2026", true)
	f("A_b-9", true)
	f("healthz", false)
	f("abc", false)
	f("with space", false)
	f("caf\u00e9", false)
	f(strings.Repeat("x", 33), false)
}

// hitCtx returns a request for testCode from a visitor the local filter
// already knows, so Handle takes the path that needs no store.
func hitCtx(t testing.TB, e *edge) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.SetRequestURI("/" + testCode)
	req.Header.SetUserAgent(tiktokUA)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 7), Port: 5555}, nil)
	e.h.Handle(&ctx) // first visit: committed, then in the local filter
	if ctx.Response.StatusCode() != 302 {
		t.Fatalf("unexpected status; got %d; want 302", ctx.Response.StatusCode())
	}
	return &ctx
}

// FuzzHandle sends arbitrary request targets and User-Agents: the handler
// never panics, redirects only the known code, and only to its destinations.
func FuzzHandle(f *testing.F) {
	for _, s := range []string{"/" + testCode, "/" + testCode + "?a=b", "/%41B3KX9QZ", "/healthz", "//x", "/a/../b", "http://h/" + testCode, "*"} {
		f.Add(s, "Mozilla/5.0 (iPhone)")
	}
	e := newEdge(f)
	f.Fuzz(func(t *testing.T, target, ua string) {
		var req fasthttp.Request
		req.Header.SetRequestURI(target)
		req.Header.SetUserAgent(ua)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 8), Port: 1}, nil)
		e.h.Handle(&ctx)
		status := ctx.Response.StatusCode()
		path := string(req.URI().PathOriginal())
		switch {
		case status == 302:
			if path != "/"+testCode {
				t.Fatalf("unexpected redirect for target %q (path %q)", target, path)
			}
			loc := string(ctx.Response.Header.Peek("Location"))
			if !strings.HasPrefix(loc, testDest.Default[:strings.Index(testDest.Default, "#")]) &&
				!strings.HasPrefix(loc, testDest.IOS) && !strings.HasPrefix(loc, testDest.Android) {
				t.Fatalf("unexpected Location %q for target %q", loc, target)
			}
		case status == 200:
			if path != "/healthz" && path != "/robots.txt" {
				t.Fatalf("unexpected 200 for target %q", target)
			}
		case status != 404:
			t.Fatalf("unexpected status %d for target %q", status, target)
		}
	})
}
