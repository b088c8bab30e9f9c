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

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
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

// fakeGate counts like clickgate, exactly and by creator, with clickgate's
// budgets when budgets is set, so the generator's expectations and the
// audit can be checked against what arrived.
type fakeGate struct {
	m       Model
	budgets bool

	mu      sync.Mutex
	seen    map[string]bool
	addrs   map[string]bool // clients, by X-Forwarded-For when there is one
	counts  []Counts        // by creator
	paid    map[string]int  // qualified per campaign per network and per /24
	cookies int             // person clicks that came with a cookie
	ids     int
}

func newFakeGate(m Model, budgets bool) *fakeGate {
	return &fakeGate{m: m, budgets: budgets, seen: map[string]bool{}, addrs: map[string]bool{}, counts: make([]Counts, m.Creators()), paid: map[string]int{}}
}

func (s *fakeGate) handle(ctx *fasthttp.RequestCtx) {
	code := string(ctx.Path()[1:])
	ua := string(ctx.UserAgent())
	client := ctx.RemoteIP().String()
	if xff := ctx.Request.Header.Peek("X-Forwarded-For"); len(xff) > 0 {
		client = string(xff)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs[client] = true
	var link int
	if _, err := fmt.Sscanf(code, "L%07d", &link); err != nil || link >= s.m.Links() {
		ctx.SetStatusCode(404)
		return
	}
	campaign, k := s.m.LinkOwner(link)
	c := &s.counts[k]
	c.Clicks++
	preview := strings.Contains(ua, "facebookexternalhit") || strings.Contains(ua, "Twitterbot") || strings.Contains(ua, "Discordbot") ||
		strings.Contains(ua, "Slackbot") || strings.Contains(ua, "TelegramBot") || strings.Contains(ua, "WhatsApp") || strings.Contains(ua, "LinkedInBot")
	switch {
	case !ctx.IsGet() || len(ctx.Request.Header.Peek("Sec-Purpose")) > 0:
		c.Prefetches++
	case preview:
		c.Previews++
	case !strings.HasPrefix(ua, "Mozilla/5.0 (") || strings.Contains(ua, "bot") || strings.Contains(ua, "Headless"):
		c.Bots++
	default:
		cookie := string(ctx.Request.Header.Cookie(redirect.VisitorCookie))
		key := code + "|" + cookie
		if cookie == "" {
			key = code + "|" + client + "|" + ua
		} else {
			s.cookies++
		}
		network := fmt.Sprint(campaign, client)
		block := fmt.Sprint(campaign, client[:strings.LastIndexByte(client, '.')])
		switch {
		case s.seen[key]:
			c.Duplicates++
		case s.budgets && (s.paid[network] >= counter.DefaultBudgetNetwork || s.paid[block] >= counter.DefaultBudgetBlock):
			c.Budget++
		default:
			s.seen[key] = true
			s.paid[network]++
			s.paid[block]++
			c.Qualified++
		}
		if cookie == "" {
			s.ids++
			id := fmt.Sprintf("v%d", s.ids)
			s.seen[code+"|"+id] = true
			ctx.Response.Header.Set("Set-Cookie", redirect.VisitorCookie+"="+id+"; Path=/; HttpOnly")
		}
	}
	if preview {
		ctx.SetStatusCode(200)
		return
	}
	ctx.Response.Header.Set("Location", "https://app.example.com/")
	ctx.SetStatusCode(302)
}

// run sends n requests of m to s and audits s's counts.
func (s *fakeGate) run(t *testing.T, n int64) (*Result, *Audit) {
	t.Helper()
	g, err := NewGenerator(s.m)
	if err != nil {
		t.Fatal(err)
	}
	before := make([]Counts, s.m.Creators())
	res, err := Run(context.Background(), LoadOptions{Target: listen(t, s.handle), Generator: g, Connections: 16, Requests: n})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != n || res.Errors != 0 {
		t.Fatalf("answered %d with %d errors; want %d and 0", res.Requests, res.Errors, n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return res, DefaultLimits().Audit(s.m, res, before, s.counts)
}

func TestRunSendsWhatItExpects(t *testing.T) {
	m := DefaultModel()
	m.AddressBase, m.AddressesPerBlock = 300, 64
	m.FraudShare = 0.4 // a fraudster's session every few
	s := newFakeGate(m, true)
	res, a := s.run(t, 8000)
	if !a.OK() || a.Expected.Qualified == 0 || a.Got.Qualified != a.Expected.Qualified {
		var b strings.Builder
		a.Write(&b, false)
		t.Fatalf("audit against an exact server:\n%s", b.String())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cookies == 0 || s.cookies > int(a.Expected.Duplicates)+int(res.Kinds[Fraud.String()].Sent) {
		t.Errorf("%d clicks carried a cookie; want some, at most the %d duplicates and the fraudsters' replays", s.cookies, a.Expected.Duplicates)
	}
	if sent, lost := res.People(); sent == 0 || lost != 0 {
		t.Errorf("%d person clicks, %d not redirected", sent, lost)
	}
	// Every pattern ran, and paid less than it sent.
	patterns := map[FraudPattern]bool{}
	for _, f := range a.Fraud {
		patterns[f.Pattern] = patterns[f.Pattern] || f.Attacks > 0
	}
	if paid, bound, clicks := a.PaidFraud(); len(patterns) != int(numPatterns) || paid == 0 || paid > bound || bound >= clicks {
		t.Errorf("fraud: patterns %v, paid %d, bound %d, clicks %d", patterns, paid, bound, clicks)
	}
	// One source address per people's session (the last ones may have sent
	// nothing), and more for fraudsters.
	if n := int64(len(s.addrs)); n < res.Sessions-16 {
		t.Errorf("%d source addresses for %d sessions", n, res.Sessions)
	}
}

// TestRunSpreadsSessionsOverTargets checks that sessions go to every
// target, all of a session's requests to one with its own Host header, and
// that the audit of what the targets counted together holds.
func TestRunSpreadsSessionsOverTargets(t *testing.T) {
	m := DefaultModel()
	m.AddressBase, m.AddressesPerBlock, m.FraudShare = 600, 64, 0
	s := newFakeGate(m, true)
	var mu sync.Mutex
	byClient := map[string]map[string]bool{} // client address → listeners it reached
	requests := map[string]int{}             // listener → requests
	var targets []string
	for range 3 {
		var addr string
		addr = listen(t, func(ctx *fasthttp.RequestCtx) {
			if host := string(ctx.Host()); host != addr {
				t.Errorf("unexpected Host header at %s; got %q; want %q", addr, host, addr)
			}
			mu.Lock()
			client := ctx.RemoteIP().String()
			if byClient[client] == nil {
				byClient[client] = map[string]bool{}
			}
			byClient[client][addr] = true
			requests[addr]++
			mu.Unlock()
			s.handle(ctx)
		})
		targets = append(targets, addr)
	}
	g, err := NewGenerator(m)
	if err != nil {
		t.Fatal(err)
	}
	const n = 6000
	res, err := Run(context.Background(), LoadOptions{Target: targets[0], Targets: targets[1:], Generator: g, Connections: 16, Requests: n})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != n || res.Errors != 0 {
		t.Fatalf("answered %d with %d errors; want %d and 0", res.Requests, res.Errors, n)
	}
	s.mu.Lock()
	a := DefaultLimits().Audit(m, res, make([]Counts, m.Creators()), s.counts)
	s.mu.Unlock()
	if !a.OK() || a.Got.Qualified != a.Expected.Qualified {
		var b strings.Builder
		a.Write(&b, false)
		t.Fatalf("audit over %d targets:\n%s", len(targets), b.String())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, addr := range targets {
		if requests[addr] < n/len(targets)/2 {
			t.Errorf("unexpected requests at %s; got %d of %d; want about a third", addr, requests[addr], n)
		}
	}
	for client, reached := range byClient {
		if len(reached) != 1 {
			t.Errorf("unexpected listeners of client %s; got %d; want 1 (one session per address)", client, len(reached))
		}
	}
}

func TestNewVisitors(t *testing.T) {
	m := DefaultModel()
	m.NewVisitors, m.AddressBase = true, 65534
	s := newFakeGate(m, true)
	res, a := s.run(t, 3000)
	if !a.OK() || a.Got.Qualified != 3000 || a.Expected.Qualified != 3000 || res.NewVisitors() != 3000 {
		var b strings.Builder
		a.Write(&b, false)
		t.Fatalf("every request a new visitor:\n%s", b.String())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.addrs) != 3000 || s.cookies != 0 {
		t.Errorf("%d client addresses for 3000 new visitors, %d cookies", len(s.addrs), s.cookies)
	}
	for a := range s.addrs {
		if !strings.HasPrefix(a, "10.") {
			t.Fatalf("a new visitor from %s, not 10.0.0.0/8", a)
		}
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

func TestBusySplitsLatency(t *testing.T) {
	// Requests due from 300ms to 600ms after the first are busy, and the
	// server takes 50ms over each request it gets then: the busy side
	// holds them, the quiet side the others, served at once (a loaded
	// machine's latency is well below 50ms, not always below 20ms). From
	// the first request, not from now: on a loaded machine the set-up
	// took longer than the window.
	var mu sync.Mutex
	var start time.Time
	busy := func(at time.Time) bool {
		mu.Lock()
		if start.IsZero() {
			start = at
		}
		d := at.Sub(start)
		mu.Unlock()
		return d >= 300*time.Millisecond && d < 600*time.Millisecond
	}
	h := func(ctx *fasthttp.RequestCtx) {
		if busy(time.Now()) {
			time.Sleep(50 * time.Millisecond)
		}
		ctx.Response.Header.Set("Location", "https://app.example.com/")
		ctx.SetStatusCode(302)
	}
	m := DefaultModel()
	m.CrawlerShare, m.PreviewShare, m.PrefetchShare, m.HeadShare, m.UnknownShare = 0, 0, 0, 0, 0
	g, _ := NewGenerator(m)
	res, err := Run(context.Background(), LoadOptions{Target: listen(t, h), Generator: g, Connections: 64, Rate: 1000, Duration: time.Second, Busy: busy})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 500 {
		t.Fatalf("%d of about 1000 requests answered, %d errors", res.Requests, res.Errors)
	}
	if res.Busy == nil || res.Quiet == nil || res.Busy.Requests+res.Quiet.Requests != res.Requests {
		t.Fatalf("the sides do not add up to the %d requests: %+v, %+v", res.Requests, res.Busy, res.Quiet)
	}
	if res.Busy.Requests < 200 || res.Busy.Requests > 320 {
		t.Errorf("%d busy requests; about 300 were due in the busy 300ms", res.Busy.Requests)
	}
	if res.Busy.Latency.P50 < 50*time.Millisecond || res.Quiet.Latency.P50 >= res.Busy.Latency.P50/2 {
		t.Errorf("busy p50 %s, quiet p50 %s: the slow requests are on the wrong side", res.Busy.Latency.P50, res.Quiet.Latency.P50)
	}
	if sum := Merge(res, res); sum.Busy == nil || sum.Busy.Requests != 2*res.Busy.Requests || sum.Quiet.Requests != 2*res.Quiet.Requests {
		t.Errorf("Merge does not sum the sides: %+v", sum.Busy)
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

func TestLagProbe(t *testing.T) {
	// A server whose stats count a visit 50ms after its 302.
	var mu sync.Mutex
	clicks := map[string]int{}
	const delay = 50 * time.Millisecond
	var forwarded sync.Map
	h := func(ctx *fasthttp.RequestCtx) {
		path := string(ctx.Path())
		switch {
		case strings.HasPrefix(path, "/P"):
			forwarded.Store(string(ctx.Request.Header.Peek("X-Forwarded-For")), true)
			creator := "probe-" + strings.TrimLeft(path[2:], "0")
			if path == "/P0000000" {
				creator = "probe-0"
			}
			time.AfterFunc(delay, func() {
				mu.Lock()
				clicks[creator]++
				mu.Unlock()
			})
			ctx.Response.Header.Set("Location", "https://app.example.com/")
			ctx.SetStatusCode(302)
		case strings.HasSuffix(path, "/stats"):
			creator := strings.TrimSuffix(strings.TrimPrefix(path, "/v1/creators/"), "/stats")
			mu.Lock()
			fmt.Fprintf(ctx, `{"clicks": %d}`, clicks[creator])
			mu.Unlock()
		default: // seeding: the creator or link as it was put
			ctx.SetStatusCode(200)
			ctx.SetBodyString("{}")
		}
	}
	addr := listen(t, h)
	p := &LagProbe{Admin: &adminclient.Client{URL: "http://" + addr, Token: "t"}, Target: addr, Campaign: "c", Creators: 2, Poll: 5 * time.Millisecond, Pause: 10 * time.Millisecond}
	ctx := context.Background()
	if err := p.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	run, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := p.Run(run); err != nil {
		t.Fatal(err)
	}
	r := p.Result()
	if r.Probes < 4 || r.Lost != 0 || r.Lag.P50 < delay || r.Lag.Max > 10*delay {
		t.Fatalf("unexpected result for a %s lag: %+v", delay, r)
	}
	n := 0
	forwarded.Range(func(k, _ any) bool {
		if !strings.HasPrefix(k.(string), "172.16.") {
			t.Errorf("a probe from %q", k)
		}
		n++
		return true
	})
	if int64(n) < r.Probes {
		t.Errorf("%d probes from %d addresses: each should be a new visitor", r.Probes, n)
	}
}
