package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/clickgate/clickgate/counter"
	"github.com/clickgate/clickgate/redirect/admin/adminclient"
)

// LagProbe measures how long a person's visit takes from its 302 to its
// creator's stats. Each probe is a new visitor (its own address in
// X-Forwarded-For, from ProxyAddr, which clickgate must trust) of a probe
// creator that nothing else clicks; then the admin API's stats of that
// creator are read every Poll until its clicks move. The lag runs from the
// 302 to the answer of the first read that counts the visit, so a read
// that waits inside the server (the Redis store waits for the judges to
// pass this node's own appends) is counted in it: it is when a reader of
// the stats sees the visit.
type LagProbe struct {
	Admin    *adminclient.Client
	Target   string // the public listener, host:port
	Campaign string // a campaign that exists
	// Creators is how many probe creators there are, each with one visit
	// in flight at a time. default: 4
	Creators int
	// Poll is the time between two reads of a creator's stats. default: 20ms
	Poll time.Duration
	// Pause is the time between one creator's probes. default: 100ms
	Pause time.Duration
	// Wait bounds how long a probe is waited for; one that is not in the
	// stats by then is lost. default: 15s
	Wait time.Duration

	sent atomic.Uint32 // probe visitors, for their addresses
	mu   sync.Mutex
	hist *hdrhistogram.Histogram // µs
	lost int64
}

// LagResult is what the probes saw.
type LagResult struct {
	Probes int64     `json:"probes"` // seen in the stats
	Lost   int64     `json:"lost"`   // not seen within Wait
	Lag    Latencies `json:"lag_ns"`
}

func (p *LagProbe) defaults() {
	if p.Creators <= 0 {
		p.Creators = 4
	}
	if p.Poll <= 0 {
		p.Poll = 20 * time.Millisecond
	}
	if p.Pause <= 0 {
		p.Pause = 100 * time.Millisecond
	}
	if p.Wait <= 0 {
		p.Wait = 15 * time.Second
	}
	p.mu.Lock()
	if p.hist == nil {
		p.hist = newHist()
	}
	p.mu.Unlock()
}

func probeCreator(i int) string { return fmt.Sprintf("probe-%d", i) }
func probeCode(i int) string    { return fmt.Sprintf("P%07d", i) }

// Seed creates the probe creators and their links; it is idempotent.
func (p *LagProbe) Seed(ctx context.Context) error {
	p.defaults()
	for i := range p.Creators {
		if err := putCreator(ctx, p.Admin, p.Campaign, probeCreator(i), fmt.Sprintf("@probe%d", i)); err != nil {
			return err
		}
		_, err := p.Admin.CreateLink(ctx, adminclient.NewLink{Campaign: p.Campaign, Creator: probeCreator(i), Code: probeCode(i),
			Destinations: counter.Destinations{Default: "https://app.example.com/probe"}})
		if err != nil && !errors.Is(err, adminclient.ErrConflict) {
			return err
		}
	}
	return nil
}

// Run sends probes until ctx is done, then waits for the ones in flight.
func (p *LagProbe) Run(ctx context.Context) error {
	p.defaults()
	errs := make(chan error, p.Creators)
	for i := range p.Creators {
		go func() { errs <- p.probe(ctx, i) }()
	}
	var err error
	for range p.Creators {
		err = errors.Join(err, <-errs)
	}
	return err
}

// Result returns what every Run so far measured.
func (p *LagProbe) Result() LagResult {
	p.defaults()
	p.mu.Lock()
	defer p.mu.Unlock()
	return LagResult{Probes: p.hist.TotalCount(), Lost: p.lost, Lag: latencies(p.hist)}
}

// probe runs probe creator i's visits one after another.
func (p *LagProbe) probe(ctx context.Context, i int) error {
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: ProxyAddr.AsSlice()}}).DialContext}
	defer tr.CloseIdleConnections()
	web := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// Reads outlive ctx: the probe in flight is waited for.
	bg := context.WithoutCancel(ctx)
	clicks, err := p.clicks(bg, i)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		redirected, err := p.click(ctx, web, i)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for {
			n, err := p.clicks(bg, i)
			if err != nil {
				return err
			}
			if n > clicks {
				lag := time.Since(redirected)
				clicks = n
				p.mu.Lock()
				p.hist.RecordValue(max(lag.Microseconds(), 1))
				p.mu.Unlock()
				break
			}
			if time.Since(redirected) > p.Wait {
				p.mu.Lock()
				p.lost++
				p.mu.Unlock()
				break
			}
			time.Sleep(p.Poll)
		}
		select {
		case <-ctx.Done():
		case <-time.After(p.Pause):
		}
	}
	return nil
}

// click sends one new visitor to probe creator i's link and returns when
// its 302 arrived.
func (p *LagProbe) click(ctx context.Context, web *http.Client, i int) (time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+p.Target+"/"+probeCode(i), nil)
	if err != nil {
		return time.Time{}, err
	}
	// 172.16.0.0/12, 254 visitors per /24: within any block budget.
	n := p.sent.Add(1) - 1
	block := n / 254
	from := netip.AddrFrom4([4]byte{172, byte(16 + block>>8&15), byte(block), byte(n%254 + 1)})
	req.Header.Set("X-Forwarded-For", from.String())
	req.Header.Set("User-Agent", PersonAgents[0])
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	req.Header.Set("Sec-Fetch-Dest", "document")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	resp, err := web.Do(req)
	if err != nil {
		return time.Time{}, err
	}
	at := time.Now()
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return time.Time{}, fmt.Errorf("probe %s: %s, want 302", probeCode(i), resp.Status)
	}
	return at, nil
}

// clicks reads probe creator i's clicks.
func (p *LagProbe) clicks(ctx context.Context, i int) (int64, error) {
	s, err := p.Admin.Stats(ctx, p.Campaign, probeCreator(i), "")
	return s.Clicks, err
}
