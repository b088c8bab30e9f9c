package bench

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/redirect"
)

// listen serves h on a free loopback port and returns its address.
func listen(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// dedupeServer counts like clickgate, exactly and by kind, so the
// generator's expectations can be checked against what arrived.
type dedupeServer struct {
	mu                            sync.Mutex
	seen                          map[string]bool
	addrs                         map[string]bool
	qualified, duplicates, others int
	cookies                       int
}

func (s *dedupeServer) handle(ctx *fasthttp.RequestCtx) {
	code := string(ctx.Path()[1:])
	ua := string(ctx.UserAgent())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs[ctx.RemoteIP().String()] = true
	if strings.HasPrefix(code, "U") {
		ctx.SetStatusCode(404)
		return
	}
	person := ctx.IsGet() && len(ctx.Request.Header.Peek("Sec-Purpose")) == 0 && strings.HasPrefix(ua, "Mozilla/5.0 (") &&
		!strings.Contains(ua, "bot") && !strings.Contains(ua, "Headless") && !strings.Contains(ua, "facebookexternalhit")
	if !person {
		s.others++
	} else {
		cookie := string(ctx.Request.Header.Cookie(redirect.VisitorCookie))
		key := code + "|" + cookie
		if cookie == "" {
			key = code + "|" + ctx.RemoteIP().String() + "|" + ua
		} else {
			s.cookies++
		}
		if s.seen[key] {
			s.duplicates++
		} else {
			s.seen[key] = true
			s.qualified++
			id := fmt.Sprintf("v%d", len(s.seen))
			s.seen[code+"|"+id] = true
			ctx.Response.Header.Set("Set-Cookie", redirect.VisitorCookie+"="+id+"; Path=/; HttpOnly")
		}
	}
	if strings.Contains(ua, "facebookexternalhit") || strings.Contains(ua, "Twitterbot") || strings.Contains(ua, "Discordbot") ||
		strings.Contains(ua, "Slackbot") || strings.Contains(ua, "TelegramBot") || strings.Contains(ua, "WhatsApp") || strings.Contains(ua, "LinkedInBot") {
		ctx.SetStatusCode(200)
		return
	}
	ctx.Response.Header.Set("Location", "https://app.example.com/")
	ctx.SetStatusCode(302)
}

func TestRunSendsWhatItExpects(t *testing.T) {
	s := &dedupeServer{seen: map[string]bool{}, addrs: map[string]bool{}}
	m := DefaultModel()
	m.AddressBase = 300
	g, err := NewGenerator(m)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), LoadOptions{Target: listen(t, s.handle), Generator: g, Connections: 16, Requests: 3000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 3000 || res.Errors != 0 {
		t.Fatalf("answered %d with %d errors; want 3000 and 0", res.Requests, res.Errors)
	}
	var want Expected
	for i := range res.Creator {
		want.add(&res.Creator[i])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if want.Qualified != int64(s.qualified) || want.Duplicates != int64(s.duplicates) {
		t.Errorf("expected %d qualified and %d duplicates; the server saw %d and %d", want.Qualified, want.Duplicates, s.qualified, s.duplicates)
	}
	if s.cookies == 0 || s.cookies > s.duplicates {
		t.Errorf("%d clicks carried a cookie; want some, at most the %d duplicates", s.cookies, s.duplicates)
	}
	if others := want.Bots + want.Previews + want.Prefetches; others != int64(s.others) {
		t.Errorf("expected %d bots, previews and prefetches; the server saw %d", others, s.others)
	}
	if sent, lost := res.People(); sent == 0 || lost != 0 {
		t.Errorf("%d person clicks, %d not redirected", sent, lost)
	}
	// One source address per session (the last ones may have sent nothing).
	if n := int64(len(s.addrs)); n > res.Sessions || n < res.Sessions-16 {
		t.Errorf("%d source addresses for %d sessions", n, res.Sessions)
	}
}

func TestOpenLoopMeasuresFromDueTime(t *testing.T) {
	// The server stalls for 300ms once: a closed loop would send nothing
	// meanwhile and hide it; the open loop's requests that were due then
	// count the wait.
	var once sync.Once
	var stall sync.Mutex
	start := time.Now()
	h := func(ctx *fasthttp.RequestCtx) {
		if time.Since(start) > 200*time.Millisecond {
			once.Do(func() {
				stall.Lock()
				time.AfterFunc(300*time.Millisecond, stall.Unlock)
			})
		}
		stall.Lock()
		stall.Unlock()
		ctx.Response.Header.Set("Location", "https://app.example.com/")
		ctx.SetStatusCode(302)
	}
	m := DefaultModel()
	m.CrawlerShare, m.PreviewShare, m.PrefetchShare, m.HeadShare, m.UnknownShare = 0, 0, 0, 0, 0
	g, _ := NewGenerator(m)
	res, err := Run(context.Background(), LoadOptions{Target: listen(t, h), Generator: g, Connections: 64, Rate: 1000, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// About 300 of 1000 requests were due during the stall, waiting 0 to
	// 300ms: the 90th percentile is inside it.
	if res.Latency.P90 < 50*time.Millisecond || res.Latency.Max < 200*time.Millisecond {
		t.Errorf("p90 %s, max %s: the stall is hidden", res.Latency.P90, res.Latency.Max)
	}
	// Never more than were due; fewer only when the machine is slow.
	if res.Requests == 0 || res.Requests > 1001 {
		t.Errorf("%d requests answered in an open loop at 1000/s for 1s", res.Requests)
	}
}

func TestRunStopsByItself(t *testing.T) {
	addr := listen(t, NewBare(map[string]string{LinkCode(0): "https://app.example.com/"}).Handle)
	g, _ := NewGenerator(DefaultModel())
	begin := time.Now()
	res, err := Run(context.Background(), LoadOptions{Target: addr, Generator: g, Connections: 4, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(begin); el > 3*time.Second || res.Requests == 0 {
		t.Errorf("ran %s and answered %d", el, res.Requests)
	}
	if _, err := Run(context.Background(), LoadOptions{Target: addr, Generator: g}); err == nil {
		t.Error("a run without a bound was accepted")
	}
	// Nothing listening: every request is an error, and it still stops.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ln.Close()
	res, err = Run(context.Background(), LoadOptions{Target: ln.Addr().String(), Generator: g, Connections: 2, Requests: 20})
	if err != nil || res.Errors != 20 || res.Requests != 0 {
		t.Errorf("against a closed port: %d errors, %d answered, %v", res.Errors, res.Requests, err)
	}
}

func TestAudit(t *testing.T) {
	m := DefaultModel()
	m.Campaigns, m.CreatorsPerCampaign = 1, 2
	res := &Result{Kinds: map[string]KindResult{"person": {Sent: 1500, OK: 1500}}, Creator: []Expected{
		{Qualified: 1000, Duplicates: 500, Bots: 7},
		{Qualified: 3, Duplicates: 1},
	}}
	before := []Counts{{Qualified: 10}, {}}
	good := []Counts{{Qualified: 1010 - 2, Duplicates: 502, Bots: 7}, {Qualified: 3, Duplicates: 1}}
	if a := NewAudit(m, 0.001, res, before, good); !a.OK() {
		t.Fatalf("2 of 1000 missing is within the bound: %v", a.Problems)
	}
	for name, after := range map[string][]Counts{
		"one extra":       {{Qualified: 1011, Duplicates: 499, Bots: 7}, {Qualified: 3, Duplicates: 1}},
		"beyond bound":    {{Qualified: 1010 - 13, Duplicates: 513, Bots: 7}, {Qualified: 3, Duplicates: 1}},
		"lost duplicate":  {{Qualified: 1010, Duplicates: 499, Bots: 7}, {Qualified: 3, Duplicates: 1}},
		"bots":            {{Qualified: 1010, Duplicates: 500, Bots: 6}, {Qualified: 3, Duplicates: 1}},
		"velocity":        {{Qualified: 1010, Duplicates: 500, Bots: 7}, {Qualified: 3, Duplicates: 1, Velocity: 1}},
		"budget":          {{Qualified: 1010 - 2, Duplicates: 500, Bots: 7, Budget: 2}, {Qualified: 3, Duplicates: 1}},
		"one missing of3": {{Qualified: 1010, Duplicates: 500, Bots: 7}, {Qualified: 2, Duplicates: 1}},
	} {
		if a := NewAudit(m, 0.001, res, before, after); a.OK() {
			t.Errorf("%s: audit passed", name)
		}
	}
	res.Kinds["person"] = KindResult{Sent: 1500, OK: 1499, Errors: 1}
	if a := NewAudit(m, 0.001, res, before, good); a.OK() || a.NotRedirected != 1 {
		t.Errorf("a person not redirected passed the audit")
	}
}
