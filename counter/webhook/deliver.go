package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"time"
)

// DelivererOptions configure a Deliverer.
type DelivererOptions struct {
	// Timeout bounds one attempt: connect, send, and the receiver's
	// answer. default: 10s
	Timeout time.Duration
	// RetryMin is the backoff after the first failed attempt; it doubles
	// with each failure after it. default: 1s
	RetryMin time.Duration
	// RetryMax caps the backoff. A delivery is retried until it gets a
	// 2xx or its endpoint is removed. default: 1h
	RetryMax time.Duration
	// Workers are the attempts in flight at once. default: 4
	Workers int
	// UserAgent of the requests. default: "clickgate-webhook"
	UserAgent string
	// Logger receives failures, at most one line per 10s. default: slog.Default()
	Logger *slog.Logger
	// Claimer, when nodes share their endpoints (Shared), is asked
	// before each attempt whether this outbox is to make it; a delivery
	// it refuses is dropped, and one it cannot answer is tried again
	// later. default: nil, every delivery is this outbox's
	Claimer Claimer
}

// Deliverer sends the outbox's pending deliveries.
type Deliverer struct {
	o      *Outbox
	opt    DelivererOptions
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	lastLog    time.Time
	suppressed int
}

// NewDeliverer returns a deliverer of o's deliveries; Start starts it.
func NewDeliverer(o *Outbox, opt DelivererOptions) *Deliverer {
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.RetryMin <= 0 {
		opt.RetryMin = time.Second
	}
	if opt.RetryMax <= 0 {
		opt.RetryMax = time.Hour
	}
	opt.RetryMax = max(opt.RetryMax, opt.RetryMin)
	if opt.Workers <= 0 {
		opt.Workers = 4
	}
	if opt.UserAgent == "" {
		opt.UserAgent = "clickgate-webhook"
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Deliverer{o: o, opt: opt, done: make(chan struct{}), client: &http.Client{
		Timeout: opt.Timeout,
		// A redirect is not a 2xx: the receiver's URL is to be fixed,
		// and a signed body is not sent anywhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Start starts delivering.
func (d *Deliverer) Start() {
	d.ctx, d.cancel = context.WithCancel(context.Background())
	go d.run()
}

// Stop stops delivering and returns once no attempt is in flight. An
// attempt cut short stays pending, as it was before it, and is made
// again after a restart: the receiver may have processed it, which is why
// events carry their id.
func (d *Deliverer) Stop() {
	d.cancel()
	<-d.done
}

type result struct {
	a    attempt
	err  error // nil: a 2xx
	drop bool  // another node delivers it, or its endpoint is removed
}

func (d *Deliverer) run() {
	defer close(d.done)
	busy := map[uint64]bool{}
	results := make(chan result, d.opt.Workers)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var next time.Time
		if free := d.opt.Workers - len(busy); free > 0 {
			due, n, err := d.o.due(now, free, busy)
			if err != nil {
				d.logf("cannot read the webhook outbox", "err", err)
				n = now.Add(d.opt.RetryMin)
			}
			next = n
			for _, a := range due {
				busy[a.key] = true
				go func() { results <- d.attempt(a) }()
			}
		}
		wait := d.opt.RetryMax
		if !next.IsZero() {
			wait = max(next.Sub(now), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-d.ctx.Done():
			for len(busy) > 0 {
				r := <-results
				delete(busy, r.a.key)
			}
			return
		case r := <-results:
			delete(busy, r.a.key)
			d.record(r)
		case <-d.o.notify:
		case <-timer.C:
		}
	}
}

// record writes the result of an attempt to the outbox.
func (d *Deliverer) record(r result) {
	if d.ctx.Err() != nil {
		return // cut short by Stop: stays as it was
	}
	now := time.Now()
	if r.drop {
		if err := d.o.drop(r.a); err != nil {
			d.logf("cannot drop a webhook delivery", "event", r.a.event, "endpoint", r.a.endpoint, "err", err)
		}
		return
	}
	attemptsCounter.Inc()
	if r.err == nil {
		deliveredCounter.Inc()
		if err := d.o.delivered(r.a, now); err != nil {
			// Sent again later: at least once.
			d.logf("cannot record a webhook delivery", "event", r.a.event, "endpoint", r.a.endpoint, "err", err)
		}
		return
	}
	failuresCounter.Inc()
	next := now.Add(d.Backoff(r.a.attempts + 1))
	d.logf("webhook delivery failed; will retry", "event", r.a.event, "endpoint", r.a.endpoint, "url", r.a.url,
		"attempts", r.a.attempts+1, "next", next.UTC().Format(time.RFC3339), "err", r.err)
	if err := d.o.failed(r.a, now, next, r.err.Error()); err != nil {
		d.logf("cannot record a failed webhook delivery", "event", r.a.event, "endpoint", r.a.endpoint, "err", err)
	}
}

// Backoff returns the wait after the n-th failed attempt (n ≥ 1):
// RetryMin × 2^(n-1), at most RetryMax, of which a random half is
// jitter, so that deliveries that failed together do not come back
// together.
func (d *Deliverer) Backoff(n uint32) time.Duration {
	b := d.opt.RetryMin
	for i := uint32(1); i < n && b < d.opt.RetryMax && b <= math.MaxInt64/2; i++ {
		b *= 2
	}
	b = min(b, d.opt.RetryMax)
	return b/2 + rand.N(b/2+1)
}

// attempt claims a (with a Claimer) and sends it.
func (d *Deliverer) attempt(a attempt) result {
	if d.opt.Claimer != nil {
		ctx, cancel := context.WithTimeout(d.ctx, d.opt.Timeout)
		mine, err := d.opt.Claimer.ClaimDelivery(ctx, a.event, a.endpoint, d.o.Node())
		cancel()
		if err != nil {
			return result{a: a, err: fmt.Errorf("cannot claim the delivery: %w", err)}
		}
		if !mine {
			return result{a: a, drop: true}
		}
	}
	return result{a: a, err: d.send(a)}
}

// send makes one attempt; nil means the receiver answered 2xx.
func (d *Deliverer) send(a attempt) error {
	req, err := http.NewRequestWithContext(d.ctx, "POST", a.url, bytes.NewReader(a.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.opt.UserAgent)
	req.Header.Set(SignatureHeader, Sign(a.secret, a.body, time.Now()))
	req.Header.Set(IDHeader, a.event)
	req.Header.Set(TypeHeader, a.typ)
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Drained a little, so that the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the receiver answered %s", resp.Status)
	}
	return nil
}

// logf logs at most one line per 10s, with the count of lines it held
// back.
func (d *Deliverer) logf(msg string, args ...any) {
	now := time.Now()
	if now.Sub(d.lastLog) < 10*time.Second {
		d.suppressed++
		return
	}
	if d.suppressed > 0 {
		args = append(args, "suppressed", d.suppressed)
	}
	d.lastLog, d.suppressed = now, 0
	d.opt.Logger.Warn(msg, args...)
}
