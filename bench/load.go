package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/redirect"
)

// LoadOptions configure one load run.
type LoadOptions struct {
	// Target is the host:port of the public listener. Required.
	Target string
	// Targets are more public listeners of the same service (other
	// edges): sessions go to Target and each of these in turn, all of a
	// session's requests to one, as a load balancer keeps a person's
	// connection on one edge. default: none
	Targets []string
	// Host is sent as the Host header. default: the session's target
	Host string
	// Generator draws the traffic. Required.
	Generator *Generator
	// Connections is the number of connections open at once, each from
	// its own source address. default: 64
	Connections int
	// Rate is the open loop's arrival rate in requests per second: request
	// n is due at n/Rate and its latency runs from then, so a stall of the
	// server is not hidden. 0: closed loop, every connection as fast as it
	// goes.
	Rate float64
	// Duration and Requests bound the run; at least one must be set.
	Duration time.Duration
	Requests int64
	// Timeout bounds one request, connecting included. default: 10s
	Timeout time.Duration
	// Progress receives a line every second. default: none
	Progress io.Writer
	// Busy, when set, splits the latencies: each answered request's also
	// goes to Result.Busy when Busy(its due time), and to Result.Quiet
	// otherwise; the loop asks it once the request is answered. It says,
	// for example, whether a bulk import was under way, so that both sides
	// share every slow spell of the machine. default: no split
	Busy func(due time.Time) bool
}

// Run sends traffic until the duration or the request count is reached,
// or ctx is done.
func Run(ctx context.Context, o LoadOptions) (*Result, error) {
	if o.Target == "" || o.Generator == nil {
		return nil, errors.New("a target and a generator are required")
	}
	if o.Duration <= 0 && o.Requests <= 0 {
		return nil, errors.New("a duration or a request count is required, or it would never stop")
	}
	if o.Rate < 0 {
		return nil, errors.New("rate must be at least 0")
	}
	if o.Connections <= 0 {
		o.Connections = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	m := o.Generator.Model()
	l := &loader{o: o, start: time.Now(), codes: make([]string, m.Links())}
	for i := range l.codes {
		l.codes[i] = LinkCode(i)
	}
	l.workers = make([]*worker, o.Connections)
	for i := range l.workers {
		l.workers[i] = newWorker(l, m.Creators())
	}
	var wg sync.WaitGroup
	for _, w := range l.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx)
		}()
	}
	progressDone := make(chan struct{})
	if o.Progress != nil {
		go l.progress(ctx, progressDone)
	} else {
		close(progressDone)
	}
	wg.Wait()
	elapsed := time.Since(l.start)
	<-progressDone
	return l.result(elapsed), nil
}

type loader struct {
	o        LoadOptions
	start    time.Time
	codes    []string
	workers  []*worker
	sessions atomic.Uint64
	tickets  atomic.Int64
}

// ticket returns the number of the next request, or false when the run's
// request count is reached.
func (l *loader) ticket() (int64, bool) {
	n := l.tickets.Add(1) - 1
	return n, l.o.Requests <= 0 || n < l.o.Requests
}

func (l *loader) due(n int64) time.Time {
	return l.start.Add(time.Duration(float64(n) * 1e9 / l.o.Rate))
}

type worker struct {
	l   *loader
	buf []byte
	br  *bufio.Reader
	sc  *net.TCPConn
	res fasthttp.Response
	ses Session
	// target is the session's listener, host its Host header.
	target, host string
	jar          [][]byte   // visitor cookies of the session, by Request.Visitor
	src          netip.Addr // the address w.sc comes from

	// A fraudster's session: its campaign, its /24 and what each of its
	// networks sent, by the last byte of the address.
	fraudCampaign int
	fraudBlock    netip.Prefix
	fraudSent     map[byte]int64

	mu       sync.Mutex // guards what the progress line reads
	hist     *hdrhistogram.Histogram
	lag      *hdrhistogram.Histogram
	split    [2][2]*hdrhistogram.Histogram // quiet, busy: latency, send lag; with LoadOptions.Busy
	kinds    [numKinds]KindResult
	creators []Expected
	fraud    []FraudBlock
}

func newWorker(l *loader, creators int) *worker {
	w := &worker{l: l, br: bufio.NewReaderSize(nil, 16<<10), hist: newHist(), lag: newHist(), creators: make([]Expected, creators)}
	if l.o.Busy != nil {
		w.split = [2][2]*hdrhistogram.Histogram{{newHist(), newHist()}, {newHist(), newHist()}}
	}
	return w
}

func (w *worker) loop(ctx context.Context) {
	g := w.l.o.Generator
	for ctx.Err() == nil {
		n := w.l.sessions.Add(1) - 1
		g.Session(n, &w.ses)
		w.target, w.host = w.l.o.Target, w.l.o.Host
		if k := n % uint64(1+len(w.l.o.Targets)); k > 0 {
			w.target = w.l.o.Targets[k-1]
		}
		if w.host == "" {
			w.host = w.target
		}
		if !w.session(ctx) {
			return
		}
	}
}

// session sends the requests of w.ses over one connection from its
// address (one per address for a fraudster's), redialing after an error.
// It returns false when the run is over.
func (w *worker) session(ctx context.Context) bool {
	defer w.endSession()
	for i := range w.jar {
		w.jar[i] = w.jar[i][:0]
	}
	for i := range w.ses.Requests {
		n, ok := w.l.ticket()
		if !ok {
			return false
		}
		due := time.Now()
		if w.l.o.Rate > 0 {
			due = w.l.due(n)
			// Due at or after the end: not sent, even if the deadline's
			// timer fires late on a loaded machine.
			if end, ok := ctx.Deadline(); ok && !due.Before(end) {
				return false
			}
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		if ctx.Err() != nil {
			return false
		}
		w.do(&w.ses.Requests[i], due)
	}
	return true
}

// endSession hangs up and keeps what a fraudster's session sent.
func (w *worker) endSession() {
	w.hangUp()
	if len(w.fraudSent) == 0 {
		return
	}
	b := FraudBlock{Block: w.fraudBlock, Campaign: w.fraudCampaign, Pattern: w.ses.Pattern, Sent: maps.Clone(w.fraudSent)}
	clear(w.fraudSent)
	w.mu.Lock()
	w.fraud = append(w.fraud, b)
	w.mu.Unlock()
}

func (w *worker) hangUp() {
	if w.sc != nil {
		w.sc.Close()
		w.sc = nil
	}
}

// do sends one request and records its fate.
func (w *worker) do(r *Request, due time.Time) {
	sent := time.Now()
	status, err := w.roundTrip(r)
	done := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	k := &w.kinds[r.Kind]
	k.Sent++
	var e *Expected
	if r.Kind != Unknown {
		campaign, creator := w.l.o.Generator.m.LinkOwner(r.Link)
		e = &w.creators[creator]
		if r.Kind == Fraud {
			// Sent is what may have been counted, answered or not.
			if w.fraudSent == nil {
				w.fraudSent = make(map[byte]int64)
			}
			w.fraudCampaign = campaign
			w.fraudBlock, _ = r.From.Prefix(24)
			w.fraudSent[r.From.As4()[3]]++
		}
	}
	if err != nil {
		k.Errors++
		if e != nil {
			e.Unsure++
		}
		w.hangUp()
		return
	}
	latency, lag := max(done.Sub(due).Microseconds(), 1), max(sent.Sub(due).Microseconds(), 1)
	w.hist.RecordValue(latency)
	if w.l.o.Rate > 0 {
		w.lag.RecordValue(lag)
	}
	if w.l.o.Busy != nil {
		side := 0
		if w.l.o.Busy(due) {
			side = 1
		}
		w.split[side][0].RecordValue(latency)
		w.split[side][1].RecordValue(lag)
	}
	want := fasthttp.StatusFound
	switch r.Kind {
	case Preview:
		want = fasthttp.StatusOK
	case Unknown:
		want = fasthttp.StatusNotFound
	}
	if status != want || (want == fasthttp.StatusFound && len(w.res.Header.Peek("Location")) == 0) {
		k.Unexpected++
		if e != nil {
			e.Unsure++
		}
		return
	}
	k.OK++
	switch r.Kind {
	case Person:
		if r.First {
			e.Qualified++
		} else {
			e.Duplicates++
		}
	case Crawler:
		e.Bots++
	case Preview:
		e.Previews++
	case Prefetch, Head:
		e.Prefetches++
	case Fraud:
		e.Fraud++
	}
}

var (
	acceptHTML = "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nSec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\n"
	acceptAny  = "Accept: */*\r\n"
)

// roundTrip writes r and reads the answer into w.res.
func (w *worker) roundTrip(r *Request) (int, error) {
	o := &w.l.o
	src := w.ses.Addr
	if r.From.IsValid() && !w.ses.Forwarded {
		src = r.From
	}
	if w.sc != nil && src != w.src {
		w.hangUp()
	}
	if w.sc == nil {
		d := net.Dialer{Timeout: o.Timeout, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		c, err := d.Dial("tcp", w.target)
		if err != nil {
			return 0, err
		}
		w.sc, w.src = c.(*net.TCPConn), src
		w.br.Reset(w.sc)
	}
	w.sc.SetDeadline(time.Now().Add(o.Timeout))

	b := w.buf[:0]
	if r.Kind == Head {
		b = append(b, "HEAD /"...)
	} else {
		b = append(b, "GET /"...)
	}
	if r.Kind == Unknown {
		b = append(b, 'U')
		b = strconv.AppendInt(b, int64(r.Link), 10)
	} else {
		b = append(b, w.l.codes[r.Link]...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, w.host...)
	b = append(b, "\r\nUser-Agent: "...)
	b = append(b, Agent(r)...)
	b = append(b, "\r\n"...)
	if w.ses.Forwarded && r.From.IsValid() {
		b = append(b, "X-Forwarded-For: "...)
		b = r.From.AppendTo(b)
		b = append(b, "\r\n"...)
	}
	switch r.Kind {
	case Crawler, Preview:
		b = append(b, acceptAny...)
	default:
		b = append(b, acceptHTML...)
	}
	if r.Kind == Prefetch {
		b = append(b, "Sec-Purpose: prefetch\r\n"...)
	}
	// A person's later clicks, and a fraudster's replays, carry the cookie
	// the session got for that visitor.
	if r.Replay || r.Kind == Person && !r.First {
		if c := w.cookie(r.Visitor); len(*c) > 0 {
			b = append(b, "Cookie: "+redirect.VisitorCookie+"="...)
			b = append(b, *c...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "\r\n"...)
	w.buf = b
	if _, err := w.sc.Write(b); err != nil {
		return 0, err
	}
	w.res.Reset()
	w.res.SkipBody = r.Kind == Head
	if err := w.res.Read(w.br); err != nil {
		return 0, err
	}
	if r.Kind == Person && r.First && !w.ses.Forwarded || r.Kind == Fraud && !r.Replay {
		if c := w.res.Header.PeekCookie(redirect.VisitorCookie); len(c) > 0 {
			p := w.cookie(r.Visitor)
			*p = append((*p)[:0], cookieValue(c)...)
		}
	}
	if w.res.ConnectionClose() {
		w.hangUp()
	}
	return w.res.StatusCode(), nil
}

// cookie returns the cookie jar's slot of visitor v.
func (w *worker) cookie(v int) *[]byte {
	for len(w.jar) <= v {
		w.jar = append(w.jar, nil)
	}
	return &w.jar[v]
}

// cookieValue returns the value of a Set-Cookie header "name=value; ...".
func cookieValue(setCookie []byte) []byte {
	if i := bytes.IndexByte(setCookie, '='); i >= 0 {
		setCookie = setCookie[i+1:]
	}
	if i := bytes.IndexByte(setCookie, ';'); i >= 0 {
		setCookie = setCookie[:i]
	}
	return setCookie
}

// progress writes a line every second until the run ends.
func (l *loader) progress(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		h := newHist()
		var answered, errs int64
		for _, w := range l.workers {
			w.mu.Lock()
			h.Merge(w.hist)
			for _, k := range w.kinds {
				errs += k.Errors
			}
			w.mu.Unlock()
		}
		answered = h.TotalCount()
		fmt.Fprintf(l.o.Progress, "%5.1fs  %8.0f req/s  %d answered  %d errors  p99 %s\n",
			time.Since(l.start).Seconds(), float64(answered-last), answered, errs, us(h.ValueAtQuantile(99)))
		last = answered
	}
}
